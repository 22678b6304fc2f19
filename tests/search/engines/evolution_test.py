"""Regularized evolution (search.engines.optuna._evolution): tournament, one mutation, retirement,
multi-fidelity fitness, reproducibility. Pure Optuna: no TensorFlow, nothing trains."""

import subprocess
import sys

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from search.engines.optuna._evolution import (
    RegularizedEvolutionSampler,
    draw,
    fitness,
    fits,
    mutate,
)

optuna.logging.set_verbosity(optuna.logging.ERROR)

DISTS = {
    "blocks": IntDistribution(1, 5),
    "width": CategoricalDistribution([16, 32, 64, 128]),
    "lr": FloatDistribution(1e-4, 1e-2, log=True),
    "dropout": FloatDistribution(0.0, 0.5, step=0.1),
    "gap": CategoricalDistribution([True, False]),
}


def _complete(number, value, **params):
    full = {"blocks": 3, "width": 32, "lr": 1e-3, "dropout": 0.2, "gap": True, **params}
    trial = create_trial(params=full, distributions=DISTS, value=value)
    trial.number = number
    return trial


def _pruned(number, steps: dict, **params):
    full = {"blocks": 3, "width": 32, "lr": 1e-3, "dropout": 0.2, "gap": True, **params}
    trial = create_trial(
        params=full, distributions=DISTS, state=TrialState.PRUNED, intermediate_values=steps
    )
    trial.number = number
    return trial


def test_fitness_ranks_complete_then_by_rung_reached_then_score():
    keys = {
        "complete_low": fitness(_complete(0, 0.5)),
        "pruned_late_high": fitness(_pruned(1, {1: 0.6, 3: 0.7})),
        "pruned_late_low": fitness(_pruned(2, {1: 0.9, 3: 0.6})),
        "pruned_early_high": fitness(_pruned(3, {1: 0.95})),
    }
    order = sorted(keys, key=keys.get, reverse=True)
    assert order == ["complete_low", "pruned_late_high", "pruned_late_low", "pruned_early_high"]
    failed = create_trial(params={}, distributions={}, state=TrialState.FAIL)
    assert fitness(failed) is None
    assert fitness(_pruned(4, {1: float("nan")})) is None


def test_draws_and_mutations_stay_in_their_distributions():
    rng = np.random.RandomState(0)
    for name, dist in DISTS.items():
        for _ in range(200):
            value = draw(dist, rng)
            assert fits(value, dist), (name, value)
            child = mutate(value, dist, rng)
            assert fits(child, dist), (name, child)
            assert child != value, (name, value)
    assert isinstance(draw(DISTS["blocks"], rng), int)
    assert round(mutate(0.2, DISTS["dropout"], rng) * 10, 9) % 1 == 0  # stays on its step


def test_too_few_scored_trials_means_a_random_draw():
    sampler = RegularizedEvolutionSampler(n_startup_trials=3, seed=0)
    trials = [_complete(0, 0.5), _complete(1, 0.6, width=64)]
    assert sampler.choose(trials, 2) is None


def test_child_is_the_tournament_winner_with_one_hyperparameter_changed():
    # Tournament as large as the population: the winner is always the best trial.
    sampler = RegularizedEvolutionSampler(
        population_size=4, tournament_size=4, n_startup_trials=2, seed=3
    )
    trials = [
        _complete(0, 0.5),
        _complete(1, 0.8, width=128, blocks=4),
        _pruned(2, {1: 0.99}),
        _complete(3, 0.6, lr=5e-3),
    ]
    for number in range(4, 30):
        child = sampler.choose(trials, number)
        assert child["parent"] == 1
        parent = trials[1].params
        changed = [k for k in parent if child["params"][k] != parent[k]]
        assert changed == [child["mutated"]]


def test_the_oldest_retire_from_the_population():
    sampler = RegularizedEvolutionSampler(
        population_size=3, tournament_size=3, n_startup_trials=1, seed=0
    )
    # Trial 0 is the best ever, but three younger trials have pushed it out.
    trials = [
        _complete(0, 0.99),
        _complete(1, 0.5, width=16),
        _complete(2, 0.7, width=64),
        _complete(3, 0.6, width=128),
    ]
    for number in range(4, 20):
        assert sampler.choose(trials, number)["parent"] == 2


def _objective(trial):
    blocks = trial.suggest_int("blocks", 1, 5)
    widths = [trial.suggest_categorical(f"width_{i}", [16, 32, 64]) for i in range(blocks)]
    lr = trial.suggest_float("lr", 1e-4, 1e-2, log=True)
    score = sum(widths) / 320 + blocks / 10 - abs(np.log10(lr) + 3) / 10
    trial.report(score / 2, step=1)
    if trial.number % 3 == 1:
        raise optuna.TrialPruned()
    return score


def _search(seed, n=30):
    sampler = RegularizedEvolutionSampler(
        population_size=8, tournament_size=3, n_startup_trials=5, seed=seed
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial({"blocks": 1, "width_0": 16, "lr": 1e-3})
    study.optimize(_objective, n_trials=n)
    return study


def test_same_seed_same_draws_pruned_trials_included():
    a, b = _search(seed=7), _search(seed=7)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert any(t.state == TrialState.PRUNED for t in a.trials)
    assert [t.params for t in _search(seed=8).trials] != [t.params for t in a.trials]


def test_two_seeds_draw_unrelated_sequences_not_one_shifted():
    from search._request import trial_seed

    # With seed + N, seed 8's random draws (trials 1-4, before the first tournament; trial 0
    # is the queued one in both) were seed 7's, one trial on.
    seven, eight = _search(seed=7, n=5).trials, _search(seed=8, n=5).trials
    assert [t.params for t in seven[2:5]] != [t.params for t in eight[1:4]]
    assert not {trial_seed(0, n) for n in range(100)} & {trial_seed(1, n) for n in range(100)}
    assert trial_seed(3, 5) == trial_seed(3, 5) and 0 <= trial_seed(-1, 0) < 2**32


def test_evolution_climbs_beyond_its_random_start():
    study = _search(seed=0, n=60)
    startup_best = max(t.value for t in study.trials[:6] if t.value is not None)
    assert study.best_value > startup_best
    # Evolved children differ from every earlier trial (no duplicate spent).
    params = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(params)) >= 55
    assert study.trials[0].params == {"blocks": 1, "width_0": 16, "lr": 1e-3}  # the queued seed


def test_the_sampler_needs_no_tensorflow():
    code = (
        "import sys, search.engines.optuna._evolution; "
        "print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_bad_tournament_size_is_refused():
    with pytest.raises(ValueError, match="tournament_size"):
        RegularizedEvolutionSampler(population_size=4, tournament_size=5)
