"""kill -9 of the service in a loop during submissions (issue 12's fault test): a client submits trivial jobs
one after another while the service is killed with SIGKILL and started again several times, at random
moments. Afterwards no job is lost (acknowledged, or found existing, and never run), none ran twice (each
job appends a line to its own file per run) and none is stuck (every job ends), and every one succeeded.
The figures (lost / duplicated / stuck) are printed at the end of the run for issue 12's closing note."""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter

from batchai_jupyter.client import Client
from batchai_jupyter.errors import BatchAIError
from helpers.gates import append, lines
from helpers.service import TOKEN
from helpers.waits import wait_for

JOBS = 60
KILLS = 5
# Each kill comes after a random number of acknowledged submissions, then a random pause of up to this many
# seconds (so it lands inside a submission, a start or a task's end alike).
KILL_JITTER = 0.05


def _submit_all(
    url: str, marks: str, names: list[str], acknowledged: list[str], answers: Counter, failures: list[BaseException]
):
    """Submits each job until the service has it: a dead service is "not yet"; a job found existing (its
    submission reached a service that was killed before it answered) is acknowledged too."""
    client = Client(url, TOKEN, timeout=30)
    try:
        for name in names:
            spec = {"cluster": "c", "customToolkitSettings": {"commandLine": append(os.path.join(marks, name), "ran")}}
            while True:
                try:
                    client.create_job("default", "default", spec, name)
                    answers["created"] += 1
                except BatchAIError as refused:
                    answers[refused.code] += 1
                    if refused.code == "ServiceUnreachable":
                        time.sleep(0.05)
                        continue
                    if refused.code != "JobExists":
                        raise
                acknowledged.append(name)
                break
    except BaseException as failure:  # the test thread reports it
        failures.append(failure)


def _states(client: Client) -> dict[str, str]:
    return {job["name"]: job["executionState"] for job in client.list("workspaces/default/experiments/default/jobs")}


def _all_ended(client: Client) -> bool:
    return all(state in ("succeeded", "failed") for state in _states(client).values())


def test_kill_9_in_a_loop_during_submissions_loses_duplicates_and_strands_nothing(
    service_process, client, tmp_path, report_figure
):
    seed = random.randrange(1 << 30)
    chosen = random.Random(seed)
    marks = str(tmp_path / "marks")
    os.mkdir(marks)
    client.create_cluster("default", {"backend": "local", "nodeCount": 2}, "c")
    names = [f"k{index:03d}" for index in range(JOBS)]
    acknowledged: list[str] = []
    failures: list[BaseException] = []
    answers: Counter = Counter()
    submitter = threading.Thread(
        target=_submit_all, args=(service_process.url, marks, names, acknowledged, answers, failures), daemon=True
    )
    submitter.start()
    kills_during_submissions = 0
    for point in sorted(chosen.sample(range(1, JOBS * 3 // 4), KILLS)):  # the last quarter is submitted after
        wait_for(lambda point=point: len(acknowledged) >= point or failures, f"{point} submissions", timeout=120)
        time.sleep(chosen.uniform(0, KILL_JITTER))
        kills_during_submissions += submitter.is_alive()
        service_process.kill()
        client = service_process.start()
    submitter.join(timeout=120)
    assert not submitter.is_alive() and not failures, failures

    try:
        wait_for(lambda: _all_ended(client), f"all {JOBS} jobs to end", timeout=90)
    except AssertionError:
        pass  # those still not ended are counted as stuck below
    states = _states(client)
    runs = {name: len(lines(os.path.join(marks, name))) for name in names}
    lost = sorted(name for name in acknowledged if runs[name] == 0 or name not in states)
    duplicated = sorted(name for name, count in runs.items() if count > 1)
    stuck = sorted(name for name, state in states.items() if state not in ("succeeded", "failed"))
    failed = sorted(name for name, state in states.items() if state != "succeeded")
    report_figure(
        f"kill -9 loop (seed {seed}): {KILLS} kills of the service, {kills_during_submissions} while submitting; "
        f"{len(acknowledged)} jobs (submissions answered: {dict(answers)}): lost {len(lost)} / duplicated "
        f"{len(duplicated)} / stuck {len(stuck)} / not succeeded {len(failed)}"
    )
    assert sorted(acknowledged) == names
    assert (lost, duplicated, stuck, failed) == ([], [], [], []), (seed, states)
