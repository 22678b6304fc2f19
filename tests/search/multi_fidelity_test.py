"""A search over fidelity rungs (--rungs), end to end on tiny data: promotions by successive
halving, rows that keep every rung, the ladder kept on resume, --from-scratch, the same draws
for the same seed, and what the search refuses."""

from __future__ import annotations

import functools
import time

import optuna
import pytest

from search.engines.optuna import _samplers
from search.engines.optuna._evolution import RegularizedEvolutionSampler
from search.fidelity import RungNotAfforded
from search.hyperparameters import fixed_hyperparameters
from search.results import read_json, read_trials, rung_report
from search.run import main, run_search
from search.study import SearchError, Study
from search.trial import TrialRequest, TrialRunner
from spaces import BuildContext, get_space
from spaces.cnn import MODERN_START

pytestmark = pytest.mark.slow  # trains models

LADDER = "16:0.5:2,-:1:3"  # two epochs at rung 0: a later epoch is timed (the first traces)


@pytest.fixture
def quick_evolution(monkeypatch):
    """Evolution that starts its tournaments after three trials (the default waits for eight)."""
    monkeypatch.setitem(
        _samplers._SAMPLERS,
        "evolution",
        lambda seed: RegularizedEvolutionSampler(
            seed=seed, population_size=4, tournament_size=2, n_startup_trials=3
        ),
    )


def _search(data, root, *, trials=7, seed=0, **kwargs):
    return run_search(
        "cnn",
        data,
        engine="optuna",
        algorithm="evolution",
        trials=trials,
        epochs=3,
        rungs=kwargs.pop("rungs", LADDER),
        results=root,
        seed=seed,
        max_image_size=32,
        progress=False,
        isolate=False,
        references=False,
        starting_points=False,
        study="climb",
        measure_latency=False,
        **kwargs,
    )


def test_a_search_over_rungs(tiny_data, tmp_path, quick_evolution):
    outcome = _search(tiny_data, tmp_path)
    rows = read_trials(outcome["study_dir"] / "trials.jsonl")
    assert len(rows) == 7 and all(r.rungs for r in rows)
    by_id = {r.trial_id: r for r in rows}
    for r in rows:
        climbed = [g["rung"] for g in r.rungs]
        # A late promotion climbs on from the rung after the one its origin stopped at.
        origin = by_id[r.continued_from] if r.continued_from is not None else None
        first = origin.rungs[-1]["rung"] + 1 if origin is not None else 0
        assert origin is None or origin.rungs[-1]["weights_kept"]
        assert climbed == list(range(first, first + len(climbed)))
        assert [g["image_size"] for g in r.rungs] == [16, 32][first : first + len(climbed)]
        # A rung's wall time holds its fits and what it did around them.
        assert all(g["wall_seconds"] >= g["seconds"] > 0 for g in r.rungs)
        if r.state == "COMPLETE":
            assert climbed[-1] == 1 and r.input_size == 32
        else:
            assert r.state == "PRUNED" and "stopped after rung" in r.error
    assert sum(r.state == "PRUNED" for r in rows) >= 2  # successive halving stopped some
    best = read_json(outcome["study_dir"] / "best.json")
    assert next(r for r in rows if r.trial_id == best["trial_id"]).state == "COMPLETE"
    assert best["rungs"] == rung_report(rows)  # trials per rung, Spearman with the top
    settings = read_json(outcome["study_dir"] / "study.json")["config"]
    assert settings["rungs"]["rungs"][0] == {"image_size": 16, "fraction": 0.5, "epochs": 2}
    assert settings["references"] is False and settings["starting_points"] is False
    # Optuna saw one score per rung below the top: rung 0's, at step 1.
    storage = f"sqlite:///{outcome['study_dir'] / 'optuna.db'}"
    ostudy = optuna.load_study(study_name="climb", storage=storage)
    assert {s for t in ostudy.trials for s in t.intermediate_values} == {1}
    assert any("evolved_from" in t.user_attrs for t in ostudy.trials)
    # Predicted against actual: every rung after the first measured epoch has a prediction.
    assert any(g.get("predicted_s") for r in rows for g in r.rungs)

    # The same command with the same seed draws the same configurations, pruned ones too.
    twin = read_trials(_search(tiny_data, tmp_path / "twin")["study_dir"] / "trials.jsonl")
    assert [r.config for r in twin] == [r.config for r in rows]

    # A resumed study keeps its ladder; another ladder is refused.
    again = _search(tiny_data, tmp_path, trials=8, rungs=None)
    assert read_trials(again["study_dir"] / "trials.jsonl")[-1].rungs
    with pytest.raises(SearchError, match="was run with rungs"):
        _search(tiny_data, tmp_path, trials=9, rungs="16:1:1,-:1:2")


def test_from_scratch_queues_nothing_written_in(tiny_data, tmp_path):
    outcome = run_search(
        "cnn",
        tiny_data,
        engine="optuna",
        algorithm="random",
        trials=1,
        epochs=1,
        results=tmp_path,
        max_image_size=16,
        progress=False,
        isolate=False,
        references=False,
        starting_points=False,
    )
    (row,) = read_trials(outcome["study_dir"] / "trials.jsonl")
    space = get_space("cnn")
    assert row.config not in [*space.reference_configs(), MODERN_START]


def test_a_rung_the_time_left_cannot_pay_for_is_not_started(tiny_data, tmp_path):
    study = Study("clock", engine="optuna", algorithm="random", space="cnn", root=tmp_path)
    study.open(seed=0, settings={}, data=tiny_data.describe(), reference_configs=[])
    hp = fixed_hyperparameters(
        {**MODERN_START, "conv_blocks": 1, "filters_0": 8, "aug_enabled": False}
    )
    ctx = BuildContext(num_classes=5, max_image_size=16)
    measured = TrialRunner(get_space("cnn"), tiny_data, study, ctx=ctx).run(
        hp, TrialRequest(trial_id="0", number=0, epochs=3)
    )
    assert measured.state == "COMPLETE" and measured.predicted_s is None  # nothing timed before
    hurried = TrialRunner(get_space("cnn"), tiny_data, study, ctx=ctx, stop_at=time.time() + 0.01)
    record = hurried.run(hp, TrialRequest(trial_id="1", number=1, epochs=3))
    assert record.state == "PRUNED" and record.error.startswith("not started: 3 epochs at 16 px")
    assert record.epochs_run == 0


def test_a_space_that_cannot_climb_is_refused_rungs(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(type(get_space("cnn")), "climbs_rungs", False)
    args = ["--space", "cnn", "--synthetic", "--results", str(tmp_path), "--rungs", "auto"]
    assert main([*args, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot carry a trial from one rung to the next" in err[0]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--engine", "keras-tuner", "--rungs", "auto"], "--rungs needs --engine optuna"),
        (["--pruner", "hyperband", "--rungs", "auto"], "judges epochs, not rungs"),
        (["--rungs", "64:2:4"], "fraction 2.0 must be in (0, 1]"),
        (["--rungs", "auto", "--epochs", "2"], "--epochs 2 is too few for 3 rungs"),
    ],
)
def test_what_a_search_over_rungs_refuses(argv, message, tmp_path, capsys):
    args = ["--space", "cnn", "--synthetic", "--results", str(tmp_path), "--no-progress", *argv]
    if args.count("--space") == 2:
        args = args[2:]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def _timed_model(data):
    """A small cnn at 16 px and the history of a fit of it measured at 1 s an epoch after a
    first epoch of 5 s (4 s of start-up): ``(space, ctx, model, history)``."""
    from search.cost import batches, model_macs

    space = get_space("cnn")
    ctx = BuildContext(num_classes=5, max_image_size=16)
    model = space.build(fixed_hyperparameters({**MODERN_START, "aug_enabled": False}), ctx)
    steps = batches(len(data.labels("train")), 1.0, 32)
    history = {
        "epoch_time_s": [5.0, 1.0, 1.0],
        "phase": [1, 1, 1],
        "macs": [model_macs(model)] * 3,
        "train_batches": [steps] * 3,
    }
    return space, ctx, model, history


def test_one_rung_may_not_spend_more_than_its_share_of_the_time_left(tiny_data):
    from search.trial import RUNG_SHARE

    space, ctx, model, history = _timed_model(tiny_data)
    runner = TrialRunner(space, tiny_data, None, ctx=ctx, stop_at=time.time() + 30)
    assert runner._price(model, 15, 1.0, history=history) == pytest.approx(19.0)
    with pytest.raises(RungNotAfforded, match=r"more than 33% of the \d+ s --max-time leaves"):
        runner._price(model, 15, 1.0, history=history, share=RUNG_SHARE)


def test_a_prediction_far_beyond_what_was_timed_refuses_nothing(tiny_data, monkeypatch):
    """A transfer search times heads first; priced from them, fine-tuning (hundreds of times
    the work) is a guess, shown but not allowed to refuse the trial (cost.EXTRAPOLATION)."""
    from search.cost import EXTRAPOLATION, model_macs

    space, ctx, model, history = _timed_model(tiny_data)
    runner = TrialRunner(space, tiny_data, None, ctx=ctx, stop_at=time.time() + 30)
    macs = model_macs(model)
    far = int(macs * EXTRAPOLATION * 2)
    monkeypatch.setattr(space, "training_work", lambda hp, m, epochs, **_: [(far, 0, 15)])
    assert runner._price(model, 15, 1.0, history=history) > 30  # predicted, not refused
    monkeypatch.setattr(space, "training_work", lambda hp, m, epochs, **_: [(macs * 4, 0, 15)])
    with pytest.raises(RungNotAfforded, match="--max-time leaves"):
        runner._price(model, 15, 1.0, history=history)


def test_a_trial_is_priced_fit_by_fit_as_its_space_trains_it(tiny_data, monkeypatch):
    """``Space.training_work``: a space that trains in two fits (a transfer trial's head on
    cached features, then its top on cached activations) pays each fit's start-up."""
    from search.cost import model_macs

    space, ctx, model, history = _timed_model(tiny_data)
    runner = TrialRunner(space, tiny_data, None, ctx=ctx)
    macs = model_macs(model)
    asked = []

    def work(hp, m, epochs, **span):
        asked.append((epochs, span))
        return [(macs, 0, 5), (macs, 0, 10)]

    monkeypatch.setattr(space, "training_work", work)
    assert runner._price(model, 15, 1.0, history=history) == pytest.approx(23.0)  # 2 x 4 + 15
    # A rung's fit is asked for by its span of the trial's epochs, not by its length alone.
    runner._price(model, 6, 1.0, history=history, first_epoch=7, trial_epochs=20)
    assert asked[-1] == (13, {"initial_epoch": 7, "trial_epochs": 20})


def test_the_top_rung_may_take_all_the_time_left_the_others_a_third(tiny_data, monkeypatch):
    from search.fidelity import parse_ladder
    from search.trial import RUNG_SHARE

    seen = {}
    monkeypatch.setattr("search.fidelity.climb", lambda *a, **kw: seen.update(kw))
    space, ctx, model, history = _timed_model(tiny_data)
    runner = TrialRunner(space, tiny_data, None, ctx=ctx, stop_at=time.time() + 300)
    request = TrialRequest(trial_id="0", number=0, epochs=3, ladder=parse_ladder(LADDER))
    priced = functools.partial(runner._price, history=history)
    runner._climb(fixed_hyperparameters({}), request, None, [], priced, lambda: None)
    assert seen["allowance"](0)[0] == pytest.approx(300 * RUNG_SHARE, rel=0.05)
    assert seen["allowance"](1)[0] == pytest.approx(300, rel=0.05)  # the top rung: all of it
    # 190 epochs cost about 190 s (1 s an epoch): over a third of 300 s, within all of it.
    with pytest.raises(RungNotAfforded, match="more than 33% of the"):
        seen["price"](model, 190, 1.0, rung=0)
    assert seen["price"](model, 190, 1.0, rung=1) == pytest.approx(194.0, rel=0.05)


def test_a_rung_many_times_dearer_than_the_others_took_is_skipped(tiny_data, monkeypatch):
    from types import SimpleNamespace

    monkeypatch.setattr("search.trial.TRUSTED_KINDS", 1)  # the timed history has one model

    space, ctx, model, history = _timed_model(tiny_data)
    rows = [SimpleNamespace(history={}, rungs=[{"rung": 0, "seconds": s}]) for s in (1, 2, 3)]
    study = SimpleNamespace(records=lambda: rows)
    runner = TrialRunner(space, tiny_data, study, ctx=ctx)
    assert runner._price(model, 15, 1.0, history=history, rung=1) == pytest.approx(19.0)
    assert runner._price(model, 2, 1.0, history=history, rung=0) == pytest.approx(6.0)
    with pytest.raises(RungNotAfforded, match="over 3x the 2 s that rung 0 took the median of 3"):
        runner._price(model, 15, 1.0, history=history, rung=0)


def test_under_a_time_limit_each_rung_may_take_three_times_a_first_look(tiny_data, monkeypatch):
    from types import SimpleNamespace

    from search.fidelity import FIRST_LOOKS, first_look_seconds, look_seconds, parse_ladder
    from search.trial import RUNG_SHARE

    ladder = parse_ladder(LADDER)
    assert first_look_seconds(5400, ladder) == 5400 / (2 * FIRST_LOOKS)
    assert first_look_seconds(None, ladder) is None and first_look_seconds(60, None) is None
    assert look_seconds(None, ladder) is None
    # The top rung of "64:0.25:8,96:0.5:16,-:1:40" at 128 px does 48x rung 0's work (24
    # epochs, all of train, 4x the pixels, against 8 epochs on a quarter at 64 px): its trials
    # may take 48 first looks, not 9. Rung 1 does 4.5x.
    first, second, top = look_seconds(900, parse_ladder("64:0.25:8,96:0.5:16,-:1:40"), 128)
    assert first == 10.0 and second == pytest.approx(45.0) and top == pytest.approx(480.0)
    # A ladder whose later rungs do little more work keeps successive halving's 3x per rung.
    assert look_seconds(900, parse_ladder("64:1:8,64:1:9,64:1:10"))[1:] == (30.0, 90.0)
    space, ctx, model, history = _timed_model(tiny_data)
    rows = [SimpleNamespace(history={}, rungs=[{"rung": 0, "seconds": s}]) for s in (1, 2, 3)]
    study = SimpleNamespace(records=lambda: rows)
    runner = TrialRunner(
        space, tiny_data, study, ctx=ctx, stop_at=time.time() + 3000, look_s=(5.0, 15.0, 45.0)
    )
    # Successive halving's even split, not the median of what the cheapest trials took.
    assert runner._allowance(0) == (5.0, "over the 5 s a first look may take")
    assert runner._allowance(1) == (15.0, "over the 15 s a look at rung 1 may take")
    assert runner._allowance(2)[0] == 45.0
    runner.stop_at = time.time() + 60  # then a third of the time left is the tighter limit
    seconds, reason = runner._allowance(2)
    assert seconds == pytest.approx(60 * RUNG_SHARE, rel=0.05) and "--max-time" in reason
    # A cost model that timed one kind of model does not refuse a look (predicted 19 s) ...
    assert runner._price(model, 15, 1.0, history=history, rung=0) == pytest.approx(19.0)
    # ... one that timed three kinds does.
    monkeypatch.setattr("search.trial.TRUSTED_KINDS", 1)
    with pytest.raises(RungNotAfforded, match="over the 5 s a first look may take"):
        runner._price(model, 15, 1.0, history=history, rung=0)


def test_the_rung_sizes_are_decoded_before_the_first_trial():
    from search.fidelity import parse_ladder
    from search.run import _decode_rung_sizes

    class Spy:
        def __init__(self):
            self.asked = []

        def arrays(self, split, size):
            self.asked.append((split, size))

    spy = Spy()
    _decode_rung_sizes(spy, parse_ladder("64:0.25:8,96:0.5:16,-:1:24"), 128)
    assert spy.asked == [(s, n) for n in (64, 96, 128) for s in ("train", "val")]
    spy.asked.clear()
    _decode_rung_sizes(spy, parse_ladder("-:0.5:1,-:1:2"), None)  # no size named: nothing
    assert spy.asked == []
