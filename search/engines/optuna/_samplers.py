"""Samplers (tpe, tpe-multivariate, random, cmaes, evolution, nsga2) seeded per trial; pruners.

The names are checked once, by ``OptunaEngine`` (``ALGORITHMS``, ``PRUNERS``); the builders
here take a name that is known to be one of them.
"""

from __future__ import annotations

import math

from search._request import trial_seed
from search.engines.base import warn
from search.study import SearchError


def _tpe(seed: int, **model):
    import optuna

    # constant_liar: a running trial (another worker's) counts as a bad result while TPE
    # models the history, so concurrent workers do not all sample the same promising spot.
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True, **model)


def _tpe_multivariate(seed: int):
    import warnings

    import optuna

    # One joint density over the hyperparameters that occur together (group: a conditional
    # space, such as cnn's filters_i that exist only with more than i blocks, is split into
    # the groups of parameters that co-occur), where plain TPE models each one alone and
    # cannot learn that depth and width pay only together (Falkner et al. 2018, BOHB's
    # multivariate KDE; Optuna's benchmarks favour it). Optuna marks both options
    # experimental.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _tpe(seed, multivariate=True, group=True)


def _random(seed: int):
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


def _cmaes(seed: int):
    import optuna

    try:
        import cmaes  # noqa: F401  (CmaEsSampler imports it lazily, at the first trial)
    except ImportError:
        raise SearchError(
            "--algorithm cmaes needs the 'cmaes' package: pip install cmaes"
        ) from None
    # Categorical hps (and conditional ones) are outside CMA-ES's model; Optuna samples
    # them with the independent sampler, seeded too.
    return optuna.samplers.CmaEsSampler(
        seed=seed,
        independent_sampler=optuna.samplers.RandomSampler(seed=seed),
        warn_independent_sampling=False,
    )


def _evolution(seed: int):
    from search.engines.optuna._evolution import RegularizedEvolutionSampler

    return RegularizedEvolutionSampler(seed=seed)


def _nsga2(seed: int):
    import optuna

    # NSGA-II (Deb et al. 2002): a genetic algorithm that keeps the non-dominated trials of
    # several objectives; with one objective, elitist selection by the value.
    return optuna.samplers.NSGAIISampler(seed=seed)


_SAMPLERS = {
    "tpe": _tpe,
    "tpe-multivariate": _tpe_multivariate,
    "random": _random,
    "cmaes": _cmaes,
    "evolution": _evolution,
    "nsga2": _nsga2,
}
ALGORITHMS = tuple(_SAMPLERS)
# Those that handle several objectives (TPE as multi-objective TPE); NSGA-II and TPE also learn
# the limits (the constraints each trial sets), the others ignore them.
MULTI_OBJECTIVE_ALGORITHMS = ("nsga2", "tpe", "tpe-multivariate", "random")


def make_sampler(algorithm: str, seed: int):
    """The sampler of ``algorithm`` (one of ``ALGORITHMS``), seeded with ``seed``."""
    return _SAMPLERS[algorithm](seed)


def per_trial_seeded(sampler, seed: int):
    """``sampler`` whose random state is reset to ``trial_seed(seed, trial.number)`` before
    each trial.

    A sampler seeded once per process replays the same draws in every worker started at the
    same moment (each one builds it with the same seed); trial numbers are handed out once by
    the storage, so seeding by them gives each worker its own draws and keeps a single worker's
    search reproducible."""
    import optuna

    class PerTrialSeed(optuna.samplers.BaseSampler):
        def __init__(self, inner):
            self.inner = inner
            self.warned = False

        def __str__(self) -> str:
            return str(self.inner)

        def infer_relative_search_space(self, study, trial):
            return self.inner.infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return self.inner.sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self.inner.sample_independent(study, trial, param_name, param_distribution)

        def before_trial(self, study, trial):
            if getattr(self.inner, "seeds_each_trial", False):
                pass  # draws from trial_seed(seed, number) by itself (regularized evolution)
            elif not reseed(self.inner, trial_seed(seed, trial.number)):
                # An unknown layout: at least not the other workers' draws.
                self.inner.reseed_rng()
                if not self.warned:
                    self.warned = True
                    warn(
                        f"cannot seed {type(self.inner).__name__} per trial in this Optuna "
                        "version (its random state moved); its draws are not reproducible"
                    )
            self.inner.before_trial(study, trial)

        def after_trial(self, study, trial, state, values):
            self.inner.after_trial(study, trial, state, values)

        def reseed_rng(self) -> None:
            self.inner.reseed_rng()

    return PerTrialSeed(sampler)


# Optuna samplers take a seed only when built, and reseed_rng() draws a fresh random one; so
# setting a given seed means reaching their numpy state: LazyRandomState attributes (_rng,
# CMA-ES's _cma_rng), and inner samplers (_random_sampler, _independent_sampler).
# tests/search/engines/optuna_internals_test.py fails if that layout changes.
_RNG_ATTRIBUTES = ("_rng", "_cma_rng")
_INNER_SAMPLERS = ("_random_sampler", "_independent_sampler")


def reseed(sampler, seed: int) -> bool:
    """Set ``sampler``'s random state (and its inner samplers') to ``seed``; False when one of
    them keeps no random state where this looks (an Optuna version that moved it)."""
    own = False
    for attr in _RNG_ATTRIBUTES:
        state = getattr(sampler, attr, None)
        if state is not None and hasattr(state, "rng"):
            state.rng.seed(seed % 2**32)
            own = True
    inners = [
        getattr(sampler, attr)
        for attr in _INNER_SAMPLERS
        if getattr(sampler, attr, None) is not None
    ]
    return all([own, *(reseed(inner, seed) for inner in inners)])


def _median(epochs: int):
    import optuna

    # Wait for a few full trials and one epoch before comparing.
    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)


def _hyperband(epochs: int):
    import optuna

    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1))


def _no_pruning(epochs: int):
    import optuna

    return optuna.pruners.NopPruner()


def _halving(epochs: int, *, rungs: int | None = None):
    """Successive halving; over ``rungs`` rungs under a time limit, also balanced: a trial in
    the best share stops while the next rung has had more time than its own
    (``search.engines.optuna._rungs.has_time_share``), and waits for a late promotion."""
    import optuna

    from search.engines.optuna._rungs import halving_stops, has_time_share, rung_seconds, scores_at
    from search.fidelity import REDUCTION_FACTOR

    # Asynchronous successive halving: at step 1, 3, 9, ... a trial goes on only if it is in
    # the best third of the trials that reached that step (the rules and why:
    # search.engines.optuna._rungs.halving_stops). Over --rungs, step 3**k is rung k.
    class RungHalving(optuna.pruners.BasePruner):
        def __init__(self):
            # Trial number -> why a trial in the best share was stopped (the balance), for
            # the message of its row (search.engines.optuna._rungs.RungPruning).
            self.reasons: dict[int, str] = {}

        def prune(self, study, trial) -> bool:
            step = trial.last_step
            if step is None:
                return False
            rung = round(math.log(step, REDUCTION_FACTOR))
            if REDUCTION_FACTOR**rung != step:  # not a rung's end (epochs, without --rungs)
                return False
            others = [t for t in study.get_trials(deepcopy=False) if t.number != trial.number]

            def reported(at: int) -> list[float]:
                return scores_at([*others, trial], at)

            score = float(trial.intermediate_values[step])
            if halving_stops(score, reported(step), REDUCTION_FACTOR):
                return True
            if rungs is None or rung + 1 >= rungs:
                return False
            spent = rung_seconds(others, rungs)
            if has_time_share(spent, rung + 1):
                return False
            self.reasons[trial.number] = (
                f"is in the best 1/{REDUCTION_FACTOR} of the trials that reached it, but rung "
                f"{rung + 1} has had more of the time ({spent[rung + 1]:.0f} s) than rung "
                f"{rung} ({spent[rung]:.0f} s); kept for a later promotion"
            )
            return True

    return RungHalving()


_PRUNERS = {"median": _median, "hyperband": _hyperband, "halving": _halving, "none": _no_pruning}
PRUNERS = tuple(_PRUNERS)
DEFAULT_PRUNER = "median"
# With --rungs a trial reports one score per rung (search.engines.optuna._rungs), at steps
# 1, 3, 9: successive halving judges exactly those; Hyperband's brackets count epochs.
RUNG_PRUNERS = ("halving", "median", "none")
DEFAULT_RUNG_PRUNER = "halving"


def make_pruner(name: str | None, epochs: int, *, rungs: bool = False, balanced: int | None = None):
    """The pruner ``name`` (one of ``PRUNERS``; None: the default) for trials of at most
    ``epochs`` epochs, or for trials that climb fidelity rungs (``rungs``). ``balanced``: the
    number of rungs, under a time limit, over which successive halving also balances the
    time each rung gets (``_halving``)."""
    name = name or (DEFAULT_RUNG_PRUNER if rungs else DEFAULT_PRUNER)
    if name == "halving":
        return _halving(epochs, rungs=balanced)
    return _PRUNERS[name](epochs)
