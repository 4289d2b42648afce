"""Sweeps: a resource of an experiment that runs trials (ordinary jobs of that experiment, named
<sweep>-<number>) with parameters an optuna sampler picks, at most `maxConcurrentTrials` at a time, up
to `maxTrials`, and stops the trials its early termination policy prunes on the metrics they log.

The sweep's loop is a periodic cycle the engine asks for (Engine.periodic), run on the sweep's own
worker thread: it never runs on a request's thread, and a slow sweep delays only itself. Everything a
cycle decides is in the store before it acts (a trial's row before its job is submitted), and the optuna
study is rebuilt from the stored trials, so a service killed at any point goes on where it was: no trial
is lost, none runs twice.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import BatchAIError, Conflict, NotFound
from .engine import Engine
from .events import EventBus
from .jobrun import error
from .records import Job
from .runs import PRUNED_CODE, MetricPoint, parse_metric_lines
from .store import Store
from .sweep_spec import (
    ENDED_TRIAL_STATES,
    StoredTrial,
    SweepSpec,
    parameter_view,
    parse_sweep_spec,
    sweep_spec_from_stored,
    sweep_spec_to_stored,
)

if TYPE_CHECKING:
    from .sweep_study import SweepStudy

log = logging.getLogger("batchai")

SWEEP_STATES = ("running", "cancelling", "completed", "cancelled", "failed")
ACTIVE_SWEEP_STATES = ("running", "cancelling")
FINAL_JOB_STATES = ("succeeded", "failed")
CANCELLED_CODE = "SweepCancelled"

SubmitJob = Callable[[str, str, dict[str, Any], str], Any]  # (workspace, experiment, document, name)


def trial_job_name(sweep: str, number: int) -> str:
    return f"{sweep}-{number}"


def worker_key(workspace: str, experiment: str, name: str) -> str:
    """The sweep's worker among the engine's (cluster workers are keyed workspace/cluster)."""
    return f"sweep:{workspace}/{experiment}/{name}"


class Sweeps:
    def __init__(
        self,
        store: Store,
        events: EventBus,
        engine: Engine,
        submit_job: SubmitJob,
        read_metrics: Callable[[Job, int], bytes],
    ):
        self.store = store
        self.events = events
        self.engine = engine
        self.submit_job = submit_job
        self.read_metrics = read_metrics
        self._studies: dict[int, SweepStudy] = {}  # by sweep id; touched only by that sweep's worker
        # (sweep id, trial) -> (job uuid, bytes of its metrics.jsonl read, the unfinished last line): each cycle
        # reads only what a trial logged since the last one (a restart reads from the start; steps seen are skipped).
        self._read: dict[tuple[int, int], tuple[str, int, bytes]] = {}
        self._last: dict[tuple[int, int], float] = {}  # (sweep id, trial) -> the last value of its primary metric
        # A job that ends may free a sweep's slot: its next trial starts now, not at the engine's next poll.
        events.subscribe(self._on_event)

    def _on_event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "job" and event.get("state") in FINAL_JOB_STATES and self._studies:
            self.engine.wake()

    # -- the API -------------------------------------------------------------------------------------

    def create(
        self, workspace: str, experiment: str, document: Any, name: str | None = None, cluster: str | None = None
    ) -> dict[str, Any]:
        self._check_experiment(workspace, experiment)
        if importlib.util.find_spec("optuna") is None:
            raise BatchAIError(
                "SweepsUnavailable",
                "sweeps need optuna in the service's Python; install it with "
                "`pip install 'batchai-jupyter[sweeps]'` and restart the service",
                status=501,
            )
        spec = parse_sweep_spec(document, name, cluster)
        if not self.store.query_one(
            "SELECT 1 FROM clusters WHERE workspace = ? AND name = ?", workspace, spec.trial["cluster"]
        ):
            raise NotFound("cluster", spec.trial["cluster"], f"list them with `batchai cluster list -w {workspace}`")
        seed = spec.seed if spec.seed is not None else random.SystemRandom().randrange(2**31)
        try:
            self.store.insert(
                "sweeps",
                workspace=workspace,
                experiment=experiment,
                name=spec.name,
                spec=sweep_spec_to_stored(spec),
                secrets=dict(spec.secrets),
                state="running",
                seed=seed,
                created=time.time(),
            )
        except Exception as failure:
            if "UNIQUE" in str(failure):
                raise Conflict(
                    "SweepExists",
                    f"sweep '{spec.name}' already exists in experiment '{experiment}'; delete it or pick another name",
                ) from None
            raise
        self._publish(workspace, experiment, spec.name, "running")
        self.engine.wake()
        return self.get(workspace, experiment, spec.name)

    def get(self, workspace: str, experiment: str, name: str) -> dict[str, Any]:
        return self._view(self._row(workspace, experiment, name))

    def list_sweeps(self, workspace: str, experiment: str) -> list[dict[str, Any]]:
        self._check_experiment(workspace, experiment)
        rows = self.store.query(
            "SELECT * FROM sweeps WHERE workspace = ? AND experiment = ? ORDER BY id", workspace, experiment
        )
        return [self._view(row) for row in rows]

    def trials(self, workspace: str, experiment: str, name: str) -> list[dict[str, Any]]:
        row = self._row(workspace, experiment, name)
        states = self._job_states(row)
        return [_trial_view(trial, states.get(trial["job"])) for trial in self._trial_rows(row["id"])]

    def cancel(self, workspace: str, experiment: str, name: str) -> dict[str, Any]:
        """Stops the sweep: no new trials; its running trials are terminated (recorded as cancelled)."""
        row = self._row(workspace, experiment, name)
        if row["state"] == "running":
            self.store.update("sweeps", {"id": row["id"]}, state="cancelling")
            self._publish(workspace, experiment, name, "cancelling")
            self.engine.wake()
        return self.get(workspace, experiment, name)

    def delete(self, workspace: str, experiment: str, name: str) -> None:
        """Forgets the sweep (its trials' jobs stay, as jobs of the experiment); running trials are terminated."""
        row = self._row(workspace, experiment, name)
        for trial in self._trial_rows(row["id"]):
            job = self.store.job_by_name(workspace, experiment, trial["job"])
            if job is not None and job.state in ("queued", "running"):
                self.engine.terminate_job(job, CANCELLED_CODE, f"sweep '{name}' was deleted")
        self.forget(row["id"])

    def forget(self, sweep_id: int) -> None:
        with self.store.transaction():
            self.store.delete("sweep_trials", sweep_id=sweep_id)
            self.store.delete("sweeps", id=sweep_id)

    def forget_experiment(self, workspace: str, experiment: str) -> None:
        for row in self.store.query(
            "SELECT id FROM sweeps WHERE workspace = ? AND experiment = ?", workspace, experiment
        ):
            self.forget(row["id"])

    # -- the engine's side ------------------------------------------------------------------------

    def cycles(self) -> Mapping[str, Callable[[], object]]:
        """{worker key: cycle} of every sweep that still has work."""
        marks = ", ".join("?" for _ in ACTIVE_SWEEP_STATES)
        rows = self.store.query(
            f"SELECT id, workspace, experiment, name FROM sweeps WHERE state IN ({marks})", *ACTIVE_SWEEP_STATES
        )
        return {
            worker_key(row["workspace"], row["experiment"], row["name"]): functools.partial(self.cycle, row["id"])
            for row in rows
        }

    def cycle(self, sweep_id: int) -> None:
        """One turn of a sweep's loop: read what its trials logged, prune, record ended trials, start new ones."""
        row = self.store.query_one("SELECT * FROM sweeps WHERE id = ?", sweep_id)
        if row is None or row["state"] not in ACTIVE_SWEEP_STATES:
            self._studies.pop(sweep_id, None)
            return
        spec = sweep_spec_from_stored(row["spec"], row["secrets"])
        trials = self._trial_rows(sweep_id)
        study = self._studies.get(sweep_id)
        if study is None:
            from .sweep_study import SweepStudy  # optuna: loaded once a sweep runs

            study = self._studies[sweep_id] = SweepStudy(spec, [_stored(t) for t in trials], row["seed"])
        try:
            active = self._follow_trials(row, spec, study, trials)
            if row["state"] == "running":
                active = self._start_trials(row, spec, study, len(trials), active)
        except BatchAIError as failure:  # e.g. the trial's cluster was deleted: the sweep says why
            self._studies.pop(sweep_id, None)
            self._end(row, "failed", [error(failure.code, failure.message)])
            return
        trials = self._trial_rows(sweep_id)
        if active:
            return
        if row["state"] == "cancelling":
            self._end(row, "cancelled")
        elif len(trials) >= spec.max_trials:
            self._end(row, "completed")

    def _follow_trials(
        self, row: dict[str, Any], spec: SweepSpec, study: SweepStudy, trials: list[dict[str, Any]]
    ) -> int:
        """Moves each unfinished trial on; returns how many trials' jobs have not ended."""
        active = 0
        for trial in trials:
            job = self.store.job_by_name(row["workspace"], row["experiment"], trial["job"])
            if job is None and trial["state"] in ENDED_TRIAL_STATES:
                continue
            if job is None and trial["submitted"]:  # someone deleted the trial's job: it is not run again
                self._record(row, study, trial["number"], "failed")
                continue
            if job is None:  # recorded, then the service stopped before it was submitted
                job = self._submit(row, spec, trial["number"], trial["params"])
            if not trial["submitted"]:
                self.store.update("sweep_trials", {"sweep_id": row["id"], "number": trial["number"]}, submitted=1)
            if job.state not in FINAL_JOB_STATES:
                active += 1
            if trial["state"] in ENDED_TRIAL_STATES:
                continue
            self._follow(row, spec, study, trial, job)
        return active

    def _follow(self, row: dict[str, Any], spec: SweepSpec, study: SweepStudy, trial: dict[str, Any], job: Job) -> None:
        number = trial["number"]
        points = self._new_points(row["id"], number, job, spec.primary_metric)
        for point in points:
            if point.step in study.intermediate(number):
                continue
            study.report(number, point.step, point.value)
            if job.state == "running" and row["state"] == "running" and study.should_prune(number):
                self.engine.terminate_job(
                    job,
                    PRUNED_CODE,
                    f"sweep '{row['name']}' pruned this trial at step {point.step} "
                    f"({spec.primary_metric} {point.value:g})",
                )
                self._record(
                    row, study, number, "pruned", pruned_step=point.step, pruned_at=time.time(), metric_time=point.time
                )
                return
        if job.state in FINAL_JOB_STATES and any(e.get("code") == PRUNED_CODE for e in job.errors):
            self._record(row, study, number, "pruned")  # pruned just before a restart: the job says so
        elif row["state"] == "cancelling" and job.state in ("queued", "running"):
            self.engine.terminate_job(job, CANCELLED_CODE, f"sweep '{row['name']}' was cancelled")
            self._record(row, study, number, "cancelled")
        elif job.state == "succeeded" and study.intermediate(number):
            self._record(row, study, number, "completed", value=self._final_value(row["id"], number, study))
        elif job.state in FINAL_JOB_STATES:
            self._record(row, study, number, "failed")
        else:
            self.store.update(
                "sweep_trials",
                {"sweep_id": row["id"], "number": number},
                intermediate=_json_keys(study.intermediate(number)),
            )

    def _new_points(self, sweep_id: int, number: int, job: Job, metric: str) -> list[MetricPoint]:
        uuid, offset, partial = self._read.get((sweep_id, number), (job.uuid, 0, b""))
        if uuid != job.uuid:  # another job of that name (the trial was submitted again): from the start
            offset, partial = 0, b""
        data = self.read_metrics(job, offset)
        whole, _, rest = (partial + data).rpartition(b"\n")
        self._read[(sweep_id, number)] = (job.uuid, offset + len(data), rest)
        points = parse_metric_lines(whole.decode("utf-8", errors="replace")).get(metric, [])
        if points:
            self._last[(sweep_id, number)] = points[-1].value
        return points

    def _final_value(self, sweep_id: int, number: int, study: SweepStudy) -> float:
        """The last value the trial logged (as read in order); after a restart, its last step's."""
        last = self._last.get((sweep_id, number))
        if last is not None:
            return last
        steps = study.intermediate(number)
        return steps[max(steps)]

    def _start_trials(self, row: dict[str, Any], spec: SweepSpec, study: SweepStudy, count: int, active: int) -> int:
        while active < spec.max_concurrent_trials and count < spec.max_trials:
            number, params = study.ask()
            self.store.insert(
                "sweep_trials",
                sweep_id=row["id"],
                number=number,
                job=trial_job_name(spec.name, number),
                params=params,
                state="running",
                system_attrs=study.system_attrs(number),
                created=time.time(),
            )
            self._submit(row, spec, number, params)
            self.store.update("sweep_trials", {"sweep_id": row["id"], "number": number}, submitted=1)
            self._publish(row["workspace"], row["experiment"], row["name"], row["state"], trial=number)
            count, active = count + 1, active + 1
        return active

    def _submit(self, row: dict[str, Any], spec: SweepSpec, number: int, params: dict[str, Any]) -> Job:
        document = copy.deepcopy(spec.trial)
        document["params"] = {**(document.get("params") or {}), **params}
        if spec.secrets:
            document["secrets"] = dict(spec.secrets)
        name = trial_job_name(spec.name, number)
        self.submit_job(row["workspace"], row["experiment"], document, name)
        job = self.store.job_by_name(row["workspace"], row["experiment"], name)
        if job is None:
            raise BatchAIError("TrialNotSubmitted", f"trial {number} of sweep '{spec.name}' was not submitted")
        return job

    def _record(
        self, row: dict[str, Any], study: SweepStudy, number: int, state: str, value: float | None = None, **extra: Any
    ) -> None:
        study.tell(number, state, value)
        self._read.pop((row["id"], number), None)
        self._last.pop((row["id"], number), None)
        self.store.update(
            "sweep_trials",
            {"sweep_id": row["id"], "number": number},
            state=state,
            value=value,
            intermediate=_json_keys(study.intermediate(number)),
            system_attrs=study.system_attrs(number),
            ended=time.time(),
            **extra,
        )
        self._publish(row["workspace"], row["experiment"], row["name"], row["state"], trial=number, trialState=state)

    def _end(self, row: dict[str, Any], state: str, errors: list[dict[str, Any]] | None = None) -> None:
        self.store.update("sweeps", {"id": row["id"]}, state=state, ended=time.time(), errors=errors or [])
        self._studies.pop(row["id"], None)
        self._publish(row["workspace"], row["experiment"], row["name"], state)

    # -- reading ------------------------------------------------------------------------------------

    def _check_experiment(self, workspace: str, experiment: str) -> None:
        if not self.store.query_one(
            "SELECT 1 FROM experiments WHERE workspace = ? AND name = ?", workspace, experiment
        ):
            raise NotFound(
                "experiment", experiment, f"create it with `batchai experiment create -w {workspace} -n {experiment}`"
            )

    def _row(self, workspace: str, experiment: str, name: str) -> dict[str, Any]:
        self._check_experiment(workspace, experiment)
        row = self.store.query_one(
            "SELECT * FROM sweeps WHERE workspace = ? AND experiment = ? AND name = ?", workspace, experiment, name
        )
        if row is None:
            raise NotFound("sweep", name, f"list them with `batchai sweep list -w {workspace} -e {experiment}`")
        return row

    def _trial_rows(self, sweep_id: int) -> list[dict[str, Any]]:
        return self.store.query("SELECT * FROM sweep_trials WHERE sweep_id = ? ORDER BY number", sweep_id)

    def _job_states(self, row: dict[str, Any]) -> dict[str, str]:
        return {
            r["name"]: r["state"]
            for r in self.store.query(
                "SELECT j.name, j.state FROM jobs j JOIN sweep_trials t ON t.job = j.name "
                "WHERE t.sweep_id = ? AND j.workspace = ? AND j.experiment = ?",
                row["id"],
                row["workspace"],
                row["experiment"],
            )
        }

    def _view(self, row: dict[str, Any]) -> dict[str, Any]:
        spec = sweep_spec_from_stored(row["spec"], {})
        trials = self._trial_rows(row["id"])
        counts = {state: 0 for state in ("running", "completed", "pruned", "failed", "cancelled")}
        for trial in trials:
            counts[trial["state"]] += 1
        completed = [t for t in trials if t["state"] == "completed" and t["value"] is not None]
        best = None
        if completed:
            pick = min if spec.goal == "minimize" else max
            chosen = pick(completed, key=lambda t: t["value"])
            best = {
                "number": chosen["number"],
                "job": chosen["job"],
                "value": chosen["value"],
                "params": chosen["params"],
            }
        policy = spec.early_termination
        return {
            "name": row["name"],
            "workspace": row["workspace"],
            "experiment": row["experiment"],
            "state": row["state"],
            "creationTime": row["created"],
            "endTime": row["ended"],
            "cluster": spec.trial.get("cluster"),
            "sampler": spec.sampler,
            "seed": row["seed"],
            "primaryMetric": {"name": spec.primary_metric, "goal": spec.goal},
            "parameters": {p.name: parameter_view(p) for p in spec.parameters},
            "maxTrials": spec.max_trials,
            "maxConcurrentTrials": spec.max_concurrent_trials,
            "earlyTermination": {
                "policy": policy.policy,
                "evaluationInterval": policy.evaluation_interval,
                "delayEvaluation": policy.delay_evaluation,
                "startupTrials": policy.startup_trials,
                **(
                    {"slackFactor": policy.slack_factor, "slackAmount": policy.slack_amount}
                    if policy.policy == "bandit"
                    else {}
                ),
                **({"truncationPercentage": policy.truncation_percentage} if policy.policy == "truncation" else {}),
                **(
                    {"minResource": policy.min_resource, "reductionFactor": policy.reduction_factor}
                    if policy.policy == "asha"
                    else {}
                ),
            },
            "trialCounts": counts,
            "trialsStarted": len(trials),
            "bestTrial": best,
            "errors": row["errors"],
        }

    def _publish(self, workspace: str, experiment: str, name: str, state: str, **extra: Any) -> None:
        self.events.publish("sweep", workspace=workspace, experiment=experiment, name=name, state=state, **extra)


def _json_keys(values: dict[int, float]) -> dict[str, float]:
    return {str(step): value for step, value in values.items()}


def _stored(row: dict[str, Any]) -> StoredTrial:
    return StoredTrial(
        number=row["number"],
        params=row["params"],
        state=row["state"],
        value=row["value"],
        intermediate={int(step): value for step, value in row["intermediate"].items()},
        system_attrs=row["system_attrs"],
    )


def _trial_view(row: dict[str, Any], job_state: str | None) -> dict[str, Any]:
    return {
        "number": row["number"],
        "job": row["job"],
        "state": row["state"],
        "jobState": job_state,
        "params": row["params"],
        "value": row["value"],
        "intermediateValues": {int(step): value for step, value in row["intermediate"].items()},
        "prunedStep": row["pruned_step"],
        "prunedAt": row["pruned_at"],
        "prunedMetricTime": row["metric_time"],
        "creationTime": row["created"],
        "endTime": row["ended"],
    }
