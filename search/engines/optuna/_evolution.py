"""Regularized evolution (Real et al. 2019, "Regularized Evolution for Image Classifier
Architecture Search") as an Optuna sampler: ``--engine optuna --algorithm evolution``.

Each new trial copies the winner of a tournament among the population (the most recent
``population_size`` scored trials: the oldest retire as new ones arrive, which is what
regularizes it) and changes one of its hyperparameters. Local search around the best known
is what a budget of a few dozen cheap trials can afford; TPE spends its first ten trials on
random draws and a Gaussian process more on its model than on trials.

- **Seeds:** the references and starting points a study queues first are trials like any
  other, so the first tournaments pick from them (``n_startup_trials`` random draws before
  any tournament fill the population when nothing was queued).
- **Fitness under multi-fidelity:** a pruned trial stopped at a low rung; one that went on
  beat its peers there. So trials are ranked by how far they got (complete above any pruned
  one, then the last reported step), then by their score there: :func:`fitness`.
- **Reproducible and worker-safe:** every random choice of trial N comes from
  ``trial_seed(seed, N)`` (trial numbers are handed out once by the storage), so one worker's search
  replays exactly and concurrent workers draw their own.
- **Define-by-run:** a hyperparameter the child has that its parent did not (a fifth block's
  width once ``conv_blocks`` grew) is drawn at random from its distribution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from search._request import trial_seed

# A child identical to a trial already run is drawn again, at most this many times.
_DUPLICATE_RETRIES = 20


def fitness(trial: FrozenTrial) -> tuple[float, float] | None:
    """A trial's rank key, larger is better (None: it has no score: failed or running).

    Complete trials come first (``inf``); a pruned trial ranks by the last step it reported
    (a later rung means it was promoted past its peers), then by its value there."""
    if trial.state == TrialState.COMPLETE and trial.value is not None:
        return (math.inf, float(trial.value))
    if trial.state == TrialState.PRUNED and trial.intermediate_values:
        step = max(trial.intermediate_values)
        value = float(trial.intermediate_values[step])
        return None if math.isnan(value) else (float(step), value)
    return None


def draw(distribution: BaseDistribution, rng: np.random.RandomState) -> Any:
    """A uniform draw from ``distribution`` (log-uniform where it is on a log scale)."""
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices[rng.randint(len(distribution.choices))]
    if isinstance(distribution, (IntDistribution, FloatDistribution)):
        low, high = distribution.low, distribution.high
        if distribution.step is not None:
            steps = int(round((high - low) / distribution.step))
            value = low + distribution.step * rng.randint(steps + 1)
        elif distribution.log:
            value = math.exp(rng.uniform(math.log(low), math.log(high)))
        else:
            value = rng.uniform(low, high)
        return int(round(value)) if isinstance(distribution, IntDistribution) else float(value)
    raise TypeError(f"regularized evolution cannot draw from {distribution!r}")


def fits(value: Any, distribution: BaseDistribution) -> bool:
    """Whether ``value`` is one of ``distribution``'s (a parent's value may not be, where a
    space declares a hyperparameter's range from other ones)."""
    if isinstance(distribution, CategoricalDistribution):
        return value in distribution.choices
    if isinstance(distribution, (IntDistribution, FloatDistribution)):
        return isinstance(value, (int, float)) and distribution.low <= value <= distribution.high
    return False


def mutate(value: Any, distribution: BaseDistribution, rng: np.random.RandomState) -> Any:
    """A value of ``distribution`` other than ``value`` where there is one: another choice of
    a categorical; for a number, half the time a neighbour (one step, or a factor of up to 2
    on a log scale, or a tenth of the range), else a fresh draw."""
    if isinstance(distribution, CategoricalDistribution):
        others = [c for c in distribution.choices if c != value]
        return others[rng.randint(len(others))] if others else value
    if not isinstance(distribution, (IntDistribution, FloatDistribution)):
        raise TypeError(f"regularized evolution cannot mutate {distribution!r}")
    if distribution.low == distribution.high:
        return value
    for _ in range(_DUPLICATE_RETRIES):
        candidate = (
            _neighbour(value, distribution, rng) if rng.rand() < 0.5 else draw(distribution, rng)
        )
        if candidate != value:
            return candidate
    return candidate


def _neighbour(
    value: Any, distribution: IntDistribution | FloatDistribution, rng: np.random.RandomState
) -> Any:
    low, high = distribution.low, distribution.high
    sign = 1 if rng.rand() < 0.5 else -1
    if distribution.step is not None:
        moved = value + sign * distribution.step
    elif distribution.log:
        moved = value * math.exp(sign * rng.uniform(0.1, 1.0) * math.log(2))
    else:
        moved = value + sign * rng.uniform(0.02, 0.1) * (high - low)
    moved = min(max(moved, low), high)
    return int(round(moved)) if isinstance(distribution, IntDistribution) else float(moved)


class RegularizedEvolutionSampler(BaseSampler):
    """Tournament selection, one mutation, oldest retired (see the module's docstring)."""

    # Every draw of trial N comes from trial_seed(seed, N) already: the engine need not reseed it.
    seeds_each_trial = True

    def __init__(
        self,
        *,
        population_size: int = 16,
        tournament_size: int = 4,
        n_startup_trials: int = 8,
        seed: int = 0,
    ):
        if not 1 <= tournament_size <= population_size:
            raise ValueError(
                f"tournament_size must be in [1, population_size], got "
                f"{tournament_size} and {population_size}"
            )
        self.population_size = population_size
        self.tournament_size = tournament_size
        self.n_startup_trials = n_startup_trials
        self.seed = seed
        # Trial number -> (parent number, mutated hyperparameter, child's values): what the
        # engine records beside the trial, and what sample_independent answers from.
        self.decisions: dict[int, dict[str, Any]] = {}
        self._rng = np.random.RandomState(seed)

    def __str__(self) -> str:
        return (
            f"RegularizedEvolutionSampler(population={self.population_size}, "
            f"tournament={self.tournament_size})"
        )

    def reseed_rng(self) -> None:
        self._rng = np.random.RandomState()

    def infer_relative_search_space(self, study, trial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study, trial, search_space) -> dict[str, Any]:
        return {}

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._rng = np.random.RandomState(trial_seed(self.seed, trial.number))
        if trial.system_attrs.get("fixed_params"):
            return  # an enqueued trial (a reference, a starting point, a retry): nothing to decide
        trials = study.get_trials(deepcopy=False)
        decision = self.choose(trials, trial.number)
        if decision is not None:
            self.decisions[trial.number] = decision

    def choose(self, trials: Sequence[FrozenTrial], number: int) -> dict[str, Any] | None:
        """The child of trial ``number``: ``{"parent", "mutated", "params"}``, or None for a
        random draw (the population is still smaller than ``n_startup_trials``)."""
        scored = [t for t in trials if t.number < number and fitness(t) is not None and t.params]
        population = sorted(scored, key=lambda t: t.number)[-self.population_size :]
        if len(population) < self.n_startup_trials:
            return None
        seen = [t.params for t in trials if t.number != number]
        for _ in range(_DUPLICATE_RETRIES):
            picks = self._rng.choice(
                len(population), size=min(self.tournament_size, len(population)), replace=False
            )
            parent = max((population[i] for i in picks), key=lambda t: (fitness(t), -t.number))
            name = sorted(parent.params)[self._rng.randint(len(parent.params))]
            params = dict(parent.params)
            params[name] = mutate(params[name], parent.distributions[name], self._rng)
            if params not in seen:
                break
        return {"parent": parent.number, "mutated": name, "params": params}

    def sample_independent(
        self, study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        child = self.decisions.get(trial.number)
        if child is not None and param_name in child["params"]:
            value = child["params"][param_name]
            if fits(value, param_distribution):
                return value
        return draw(param_distribution, self._rng)

    def after_trial(self, study, trial, state, values) -> None:
        self.decisions.pop(trial.number, None)
