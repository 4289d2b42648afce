"""A sweep's optuna study: its samplers (grid, random, TPE) pick each trial's parameters, its pruners
(median stopping, truncation, ASHA, and a Bandit slack policy of ours, which optuna lacks) judge the
metrics running trials log.

The study lives in memory and is rebuilt from the trials the store keeps (their parameters, states,
values, intermediate values and the attributes optuna's samplers and pruners set on them), so a
restarted service goes on with the same study. A rebuilt random sampler is seeded with the sweep's seed
plus the number of trials so far: it does not draw the first trials' values again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState

from .sweep_spec import EarlyTermination, Parameter, StoredTrial, SweepSpec

optuna.logging.set_verbosity(optuna.logging.WARNING)

# Our trial states and optuna's.
TRIAL_STATES = {
    "running": TrialState.RUNNING,
    "completed": TrialState.COMPLETE,
    "pruned": TrialState.PRUNED,
    "failed": TrialState.FAIL,
    "cancelled": TrialState.FAIL,
}


def distribution(parameter: Parameter) -> BaseDistribution:
    if parameter.kind in ("choice", "grid"):
        return CategoricalDistribution(list(parameter.values))
    if parameter.kind == "uniform":
        return FloatDistribution(parameter.low, parameter.high)
    if parameter.kind == "loguniform":
        return FloatDistribution(parameter.low, parameter.high, log=True)
    values = parameter.enumerated() or ()
    if all(isinstance(v, int) for v in values):
        return IntDistribution(int(values[0]), int(values[-1]), step=int(round(parameter.q)))
    return FloatDistribution(float(values[0]), float(values[-1]), step=parameter.q)


class BanditPruner(BasePruner):
    """Azure ML's Bandit policy: at each evaluation, a trial whose value is not within the slack of the
    best value any trial logged at that step is stopped (slack factor: relative; slack amount: absolute)."""

    def __init__(self, slack_factor: float, slack_amount: float, delay: int, interval: int):
        self.slack_factor, self.slack_amount = slack_factor, slack_amount
        self.delay, self.interval = delay, interval

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.delay or (step - self.delay) % self.interval:
            return False
        others = [
            other.intermediate_values[step]
            for other in study.get_trials(deepcopy=False)
            if other.number != trial.number and step in other.intermediate_values
        ]
        if not others:
            return False
        value = trial.intermediate_values[step]
        if study.direction == optuna.study.StudyDirection.MINIMIZE:
            best = min(others)
            return bool(value > best + self._slack(best))
        best = max(others)
        return bool(value < best - self._slack(best))

    def _slack(self, best: float) -> float:
        if self.slack_factor:
            return abs(best) * self.slack_factor
        return self.slack_amount


def pruner(policy: EarlyTermination) -> BasePruner:
    if policy.policy == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=policy.startup_trials,
            n_warmup_steps=policy.delay_evaluation,
            interval_steps=policy.evaluation_interval,
        )
    if policy.policy == "truncation":
        return optuna.pruners.PercentilePruner(
            100.0 - policy.truncation_percentage,
            n_startup_trials=policy.startup_trials,
            n_warmup_steps=policy.delay_evaluation,
            interval_steps=policy.evaluation_interval,
        )
    if policy.policy == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=policy.min_resource, reduction_factor=policy.reduction_factor
        )
    if policy.policy == "bandit":
        return BanditPruner(
            policy.slack_factor, policy.slack_amount, policy.delay_evaluation, policy.evaluation_interval
        )
    return optuna.pruners.NopPruner()


class GridSampler(optuna.samplers.GridSampler):
    """optuna's grid sampler, which does not stop the study once every point has run: a sweep has no
    optimize() loop to stop (optuna raises there), and its maxTrials is at most the grid's size."""

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        return None


def sampler(spec: SweepSpec, seed: int) -> optuna.samplers.BaseSampler:
    if spec.sampler == "grid":
        space = {p.name: list(p.enumerated() or ()) for p in spec.parameters}
        return GridSampler(space, seed=seed)
    if spec.sampler == "tpe":
        startup = spec.startup_trials or min(10, max(2, spec.max_trials // 3))
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True)
    return optuna.samplers.RandomSampler(seed=seed)


class SweepStudy:
    """The optuna study of one sweep, rebuilt from its stored trials."""

    def __init__(self, spec: SweepSpec, trials: Sequence[StoredTrial], seed: int):
        self.spec = spec
        self.distributions = {p.name: distribution(p) for p in spec.parameters}
        direction = (
            optuna.study.StudyDirection.MINIMIZE if spec.goal == "minimize" else optuna.study.StudyDirection.MAXIMIZE
        )
        self.study = optuna.create_study(
            direction=direction,
            sampler=sampler(spec, (seed + len(trials)) % 2**31),
            pruner=pruner(spec.early_termination),
        )
        self.live: dict[int, optuna.trial.Trial] = {}
        for stored in sorted(trials, key=lambda t: t.number):
            self._add(stored)

    def _add(self, stored: StoredTrial) -> None:
        state = TRIAL_STATES[stored.state]
        frozen = optuna.trial.create_trial(
            state=state,
            value=stored.value if state == TrialState.COMPLETE else None,
            params={name: stored.params[name] for name in self.distributions},
            distributions=self.distributions,
            system_attrs=stored.system_attrs,
            intermediate_values=stored.intermediate,
        )
        self.study.add_trial(frozen)
        added = self.study.get_trials(deepcopy=False)[-1]
        if added.number != stored.number:
            raise RuntimeError(f"sweep trial {stored.number} was rebuilt as optuna trial {added.number}")
        if state == TrialState.RUNNING:
            self.live[stored.number] = optuna.trial.Trial(self.study, added._trial_id)

    def ask(self) -> tuple[int, dict[str, Any]]:
        trial = self.study.ask(self.distributions)
        self.live[trial.number] = trial
        return trial.number, dict(trial.params)

    def report(self, number: int, step: int, value: float) -> None:
        trial = self.live[number]
        if math.isfinite(value) and step not in self.frozen(number).intermediate_values:
            trial.report(value, step)

    def should_prune(self, number: int) -> bool:
        return bool(self.live[number].should_prune())

    def tell(self, number: int, state: str, value: float | None = None) -> None:
        trial = self.live.pop(number)
        if state == "completed":
            self.study.tell(trial, value)
        else:
            self.study.tell(trial, state=TRIAL_STATES[state])

    def frozen(self, number: int) -> FrozenTrial:
        return self.study.get_trials(deepcopy=False)[number]

    def system_attrs(self, number: int) -> dict[str, Any]:
        return dict(self.frozen(number).system_attrs)

    def intermediate(self, number: int) -> dict[int, float]:
        return dict(self.frozen(number).intermediate_values)
