"""The Optuna internals the engine relies on, where Optuna has no public call: these fail when
an Optuna release moves them, instead of the engine silently losing reproducibility or
recovery."""

from __future__ import annotations

import warnings

import optuna
import pytest

from search.engines.optuna import make_sampler, per_trial_seeded
from search.engines.optuna._samplers import ALGORITHMS, reseed
from search.engines.optuna._storage import set_user_attr_of

SPACE = {
    "x": optuna.distributions.FloatDistribution(0, 1),
    "n": optuna.distributions.IntDistribution(1, 64),
}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_each_sampler_keeps_its_random_state_where_the_reseed_looks(algorithm):
    sampler = make_sampler(algorithm, 0)
    if getattr(sampler, "seeds_each_trial", False):  # this package's own: it needs no reseed
        assert type(sampler).__module__.startswith("search.")
        return
    assert reseed(sampler, 7), (
        f"Optuna moved the random state of its {algorithm} sampler: update _samplers.reseed"
    )


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_per_trial_seeding_makes_draws_follow_the_trial_number_without_a_warning(algorithm, capsys):
    def draws(seed: int, workers: int) -> list[dict]:
        # ``workers`` samplers built alike (N processes started at once), taking turns.
        samplers = [per_trial_seeded(make_sampler(algorithm, seed), seed) for _ in range(workers)]
        study = optuna.create_study()
        out = []
        for i in range(12):  # past TPE's and CMA-ES's random start-up trials
            study.sampler = samplers[i % workers]
            trial = study.ask(SPACE)
            study.tell(trial, float(trial.params["x"]) + i % 3)
            out.append(trial.params)
        return out

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        one, two, other = draws(3, workers=1), draws(3, workers=2), draws(4, workers=1)
    assert one == two != other
    assert "warning" not in capsys.readouterr().err


def test_a_sampler_whose_random_state_is_not_found_is_reseeded_at_random_and_said(capsys):
    class Opaque(optuna.samplers.BaseSampler):
        """A sampler keeping its random state where the reseed does not look."""

        def __init__(self):
            self._hidden = optuna.samplers.RandomSampler(seed=0)

        def infer_relative_search_space(self, study, trial):
            return {}

        def sample_relative(self, study, trial, search_space):
            return {}

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self._hidden.sample_independent(study, trial, param_name, param_distribution)

        def reseed_rng(self):
            self._hidden.reseed_rng()

    sampler = per_trial_seeded(Opaque(), 0)
    study = optuna.create_study(sampler=sampler)
    for _ in range(2):
        study.tell(study.ask(SPACE), 0.0)
    err = capsys.readouterr().err
    assert err.count("warning: cannot seed Opaque per trial") == 1 and "not reproducible" in err


def test_a_user_attr_is_set_on_a_trial_this_process_does_not_run():
    # recover_interrupted marks another process's trial: through Study._storage and
    # FrozenTrial._trial_id, which Optuna does not expose otherwise.
    study = optuna.create_study()
    study.ask()
    (frozen,) = study.get_trials(deepcopy=False)
    set_user_attr_of(study, frozen, "interrupted", True)
    assert study.get_trials(deepcopy=False)[0].user_attrs == {"interrupted": True}


def test_multivariate_tpe_models_a_conditional_spaces_groups_jointly():
    # cnn's filters_i exist only with more than i blocks: group=True splits the space into the
    # parameters that co-occur, so the joint model covers the conditional widths too; plain
    # TPE's relative space is at most what every trial has (the widths beyond the first are
    # drawn alone).
    def objective(trial):
        blocks = trial.suggest_int("conv_blocks", 1, 3)
        widths = [trial.suggest_int(f"filters_{i}", 16, 512, log=True) for i in range(blocks)]
        return blocks * 0.1 + sum(widths) / 1e4

    def relative_space(algorithm: str) -> set[str]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = make_sampler(algorithm, 0)
            study = optuna.create_study(direction="maximize", sampler=sampler)
            study.optimize(objective, n_trials=14)
        trial = study.ask()
        return set(sampler.infer_relative_search_space(study, trial))

    assert "filters_1" not in relative_space("tpe")
    assert {"conv_blocks", "filters_0", "filters_1", "filters_2"} <= relative_space(
        "tpe-multivariate"
    )
