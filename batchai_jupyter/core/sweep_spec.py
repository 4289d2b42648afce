"""A sweep's spec: the trial job, the parameter space, the sampler, the primary metric and its goal, the
trial limits and the early termination policy. Parsed once at create (every error a SpecError naming
the field), stored as JSON, read back with `sweep_spec_from_stored`.

    {"name": "lr", "trial": {<native job spec>}, "cluster": "gpu",
     "parameters": {"lr": {"type": "loguniform", "min": 1e-4, "max": 1e-1},
                    "width": {"type": "choice", "values": [32, 64, 128]}},
     "sampler": "tpe", "primaryMetric": "loss", "goal": "minimize",
     "maxTrials": 20, "maxConcurrentTrials": 2,
     "earlyTermination": {"policy": "median", "evaluationInterval": 1, "delayEvaluation": 2}}
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import SpecError
from .limits import check_spec_limits
from .names import MAX_NAME_LENGTH, validate_name
from .spec import Fields, named_values, parse_job_spec

PARAMETER_TYPES = ("choice", "grid", "uniform", "loguniform", "quniform")
SAMPLERS = ("random", "grid", "tpe")
SAMPLER_ALIASES = {"bayesian": "tpe"}
GOALS = ("minimize", "maximize")
POLICIES = ("none", "median", "bandit", "truncation", "asha")
MAX_TRIALS = 1000
ENDED_TRIAL_STATES = ("completed", "pruned", "failed", "cancelled")
# Trials are jobs named <sweep>-<number>: the sweep's name leaves room for "-999".
MAX_SWEEP_NAME = MAX_NAME_LENGTH - 4
STORED_VERSION = 1


@dataclass(frozen=True)
class Parameter:
    name: str
    kind: str  # one of PARAMETER_TYPES
    values: tuple[Any, ...] = ()  # choice, grid
    low: float = 0.0
    high: float = 0.0
    q: float = 0.0  # quniform's step

    def enumerated(self) -> tuple[Any, ...] | None:
        """Every value a grid can take, or None for a continuous range."""
        if self.kind in ("choice", "grid"):
            return self.values
        if self.kind == "quniform":
            count = int(math.floor((self.high - self.low) / self.q + 1e-9)) + 1
            return tuple(_tidy(self.low + i * self.q) for i in range(count))
        return None


@dataclass(frozen=True)
class EarlyTermination:
    policy: str = "none"  # one of POLICIES
    evaluation_interval: int = 1  # steps between evaluations
    delay_evaluation: int = 0  # steps before the first evaluation
    startup_trials: int = 2  # completed trials before median/truncation prune anything
    slack_factor: float = 0.0  # bandit
    slack_amount: float = 0.0  # bandit
    truncation_percentage: float = 20.0  # truncation: the worst percentage is stopped
    min_resource: int = 1  # asha: steps of the first rung
    reduction_factor: int = 3  # asha


@dataclass(frozen=True)
class SweepSpec:
    name: str
    trial: dict[str, Any]  # the native job spec every trial is made from, without secret values
    parameters: tuple[Parameter, ...]
    primary_metric: str
    goal: str = "minimize"
    sampler: str = "random"
    seed: int | None = None
    startup_trials: int = 0  # tpe: random trials before the model is used (0: chosen from max_trials)
    max_trials: int = 1
    max_concurrent_trials: int = 1
    early_termination: EarlyTermination = field(default_factory=EarlyTermination)
    secrets: dict[str, str] = field(default_factory=dict)  # the trial's secret values (stored apart)

    def grid_size(self) -> int:
        size = 1
        for parameter in self.parameters:
            size *= len(parameter.enumerated() or ())
        return size


@dataclass
class StoredTrial:
    """What the store keeps of a trial (core/sweeps.py reads and writes it)."""

    number: int
    params: dict[str, Any]
    state: str
    value: float | None = None
    intermediate: dict[int, float] = field(default_factory=dict)
    system_attrs: dict[str, Any] = field(default_factory=dict)


def _tidy(value: float) -> float | int:
    rounded = round(value, 12)
    return int(rounded) if float(rounded).is_integer() else rounded


def _number(fields: Fields, key: str, required: bool = True) -> float | None:
    if not fields.has(key):
        if required:
            raise fields.missing(key, "a number")
        return None
    value = fields.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(fields.at(key), value, "a finite number")
    return float(value)


def _parameter(name: str, fields: Fields) -> Parameter:
    kind = fields.choice("type", PARAMETER_TYPES, "")
    if not kind:
        raise fields.missing("type", "one of " + ", ".join(PARAMETER_TYPES))
    if kind in ("choice", "grid"):
        values = fields.get("values")
        if not isinstance(values, list) or not values:
            raise SpecError(fields.at("values"), values, "a non-empty list of values")
        for index, value in enumerate(values):
            if value is not None and not isinstance(value, (str, int, float, bool)):
                raise SpecError(f"{fields.at('values')}[{index}]", value, "a string, a number, true, false or null")
        if len({repr(v) for v in values}) != len(values):
            raise SpecError(fields.at("values"), values, "each value once")
        return Parameter(name, kind, values=tuple(values))
    low, high = _number(fields, "min"), _number(fields, "max")
    assert low is not None and high is not None
    if not low < high:
        raise SpecError(fields.at("max"), high, f"a number above min ({low:g})")
    if kind == "loguniform" and low <= 0:
        raise SpecError(fields.at("min"), low, "a number above 0 (loguniform samples the logarithm)")
    q = 0.0
    if kind == "quniform":
        q = _number(fields, "q") or 0.0
        if q <= 0 or q > high - low:
            raise SpecError(fields.at("q"), q, f"a step above 0 and at most max - min ({high - low:g})")
    return Parameter(name, kind, low=low, high=high, q=q)


def _parameters(body: Fields) -> tuple[Parameter, ...]:
    space = body.obj("parameters")
    if space is None:
        raise body.missing("parameters", 'the parameter space, e.g. {"lr": {"type": "uniform", "min": 0, "max": 1}}')
    if not space.data:
        raise SpecError(space.path, space.data, "at least one parameter")
    parameters = []
    for name in space.data:
        if not isinstance(name, str) or not name.isidentifier():
            raise SpecError(space.at(str(name)), name, "parameter names are Python identifiers (letters, digits, _)")
        parameters.append(_parameter(name, space.present_obj(name)))
    return tuple(parameters)


def _sampler(body: Fields) -> tuple[str, int | None, int]:
    value = body.get("sampler")
    fields = body.obj("sampler") if isinstance(value, dict) else None
    if fields is not None:
        value = fields.get("type")
    if value is None:
        name = "random"
    elif isinstance(value, str) and value.strip().lower() in (*SAMPLERS, *SAMPLER_ALIASES):
        name = SAMPLER_ALIASES.get(value.strip().lower(), value.strip().lower())
    else:
        raise SpecError(body.at("sampler"), value, "one of " + ", ".join(SAMPLERS) + ' (or {"type": ..., "seed": N})')
    seed = fields.integer("seed", minimum=0, maximum=2**31 - 1) if fields is not None else None
    startup = fields.integer("startupTrials", 0, minimum=0, maximum=MAX_TRIALS) if fields is not None else 0
    return name, seed, startup


def _primary_metric(body: Fields) -> tuple[str, str]:
    value = body.get("primaryMetric")
    if isinstance(value, dict):
        metric = body.present_obj("primaryMetric")
        return metric.text("name", required="the metric trials log"), metric.choice("goal", GOALS, "minimize")
    name = body.text("primaryMetric", required="the metric trials log with log_metric (e.g. loss) and goal")
    if not name:
        raise body.missing("primaryMetric", "the metric trials log with log_metric")
    return name, body.choice("goal", GOALS, "minimize")


def _early_termination(body: Fields) -> EarlyTermination:
    fields = body.obj("earlyTermination")
    if fields is None:
        return EarlyTermination()
    policy = fields.choice("policy", POLICIES, "none")
    startup_default = 2 if policy in ("median", "truncation") else 0
    result = EarlyTermination(
        policy=policy,
        evaluation_interval=fields.integer("evaluationInterval", 1, minimum=1),
        delay_evaluation=fields.integer("delayEvaluation", 0, minimum=0),
        startup_trials=fields.integer("startupTrials", startup_default, minimum=0, maximum=MAX_TRIALS),
        slack_factor=_number(fields, "slackFactor", required=False) or 0.0,
        slack_amount=_number(fields, "slackAmount", required=False) or 0.0,
        truncation_percentage=_number(fields, "truncationPercentage", required=False) or 20.0,
        min_resource=fields.integer("minResource", 1, minimum=1),
        reduction_factor=fields.integer("reductionFactor", 3, minimum=2),
    )
    if policy == "bandit" and (result.slack_factor <= 0) == (result.slack_amount <= 0):
        raise SpecError(
            fields.at("slackFactor"),
            fields.get("slackFactor"),
            "bandit needs one of slackFactor or slackAmount above 0",
        )
    if not 0 < result.truncation_percentage < 100:
        raise SpecError(fields.at("truncationPercentage"), result.truncation_percentage, "a percentage from 1 to 99")
    return result


def parse_sweep_spec(doc: Any, name: str | None = None, cluster: str | None = None) -> SweepSpec:
    """A SweepSpec from a sweep document; `name` and `cluster` (the CLI's -n/-c) override the document's.
    The trial spec is checked as a job would be at submit."""
    check_spec_limits(doc)
    body = Fields(doc, "")
    sweep_name = validate_name("sweep", name if name is not None else body.get("name"), "name")
    if len(sweep_name) > MAX_SWEEP_NAME:
        raise SpecError("name", sweep_name, f"sweep names are at most {MAX_SWEEP_NAME} characters (trials add -N)")
    trial_fields = body.obj("trial")
    if trial_fields is None:
        raise body.missing("trial", "the native job spec each trial runs (its toolkit, nodeCount, ...)")
    trial = {key: copy.deepcopy(value) for key, value in trial_fields.data.items() if key not in ("name", "secrets")}
    given_cluster = cluster if cluster is not None else body.get("cluster")
    if given_cluster is not None:
        trial["cluster"] = validate_name("cluster", given_cluster, "cluster")
    secrets = named_values(trial_fields, "secrets", secret=True)
    parse_job_spec({**trial, "name": f"{sweep_name}-0", "secrets": secrets})  # refused now, not at the first trial
    parameters = _parameters(body)
    sampler, seed, startup = _sampler(body)
    metric, goal = _primary_metric(body)
    spec = SweepSpec(
        name=sweep_name,
        trial=trial,
        parameters=parameters,
        primary_metric=metric,
        goal=goal,
        sampler=sampler,
        seed=seed,
        startup_trials=startup,
        early_termination=_early_termination(body),
        secrets=secrets,
    )
    return _with_limits(spec, body)


def _with_limits(spec: SweepSpec, body: Fields) -> SweepSpec:
    if spec.sampler == "grid":
        continuous = [p.name for p in spec.parameters if p.enumerated() is None]
        if continuous:
            raise SpecError(
                f"parameters.{continuous[0]}",
                next(p.kind for p in spec.parameters if p.name == continuous[0]),
                "the grid sampler enumerates values: use choice, grid or quniform, or another sampler",
            )
        size = spec.grid_size()
        max_trials = body.integer("maxTrials", min(size, MAX_TRIALS), minimum=1, maximum=MAX_TRIALS)
    else:  # a grid parameter is a choice to the random and TPE samplers
        max_trials = body.integer("maxTrials", minimum=1, maximum=MAX_TRIALS, required=True)
    concurrent_key = "maxConcurrentTrials" if body.has("maxConcurrentTrials") else "maxConcurrent"
    concurrent = body.integer(concurrent_key, 1, minimum=1, maximum=MAX_TRIALS)
    return dataclasses.replace(spec, max_trials=max_trials, max_concurrent_trials=min(concurrent, max_trials))


# ---- the stored form --------------------------------------------------------------------------------


def sweep_spec_to_stored(spec: SweepSpec) -> dict[str, Any]:
    stored = dataclasses.asdict(spec)
    stored.pop("secrets")
    stored["parameters"] = [dict(p, values=list(p["values"])) for p in stored["parameters"]]
    return {"v": STORED_VERSION, **stored}


def sweep_spec_from_stored(stored: dict[str, Any], secrets: dict[str, str]) -> SweepSpec:
    data = {key: value for key, value in stored.items() if key != "v"}
    data["parameters"] = tuple(Parameter(**dict(p, values=tuple(p["values"]))) for p in data["parameters"])
    data["early_termination"] = EarlyTermination(**data["early_termination"])
    return SweepSpec(**data, secrets=dict(secrets))


def parameter_view(parameter: Parameter) -> dict[str, Any]:
    if parameter.kind in ("choice", "grid"):
        return {"type": parameter.kind, "values": list(parameter.values)}
    view: dict[str, Any] = {"type": parameter.kind, "min": parameter.low, "max": parameter.high}
    if parameter.kind == "quniform":
        view["q"] = parameter.q
    return view
