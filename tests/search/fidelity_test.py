"""Fidelity rungs (search.fidelity): the ladder, nested data fractions, the training view,
weights carried to a larger input, and a trial climbing rungs with its engine judging each."""

import numpy as np
import optuna
import pytest

from search.fidelity import (
    FidelityError,
    Ladder,
    Rung,
    default_ladder,
    nested_fraction,
    parse_ladder,
    train_fraction,
)

optuna.logging.set_verbosity(optuna.logging.ERROR)


def test_parse_ladder_and_its_steps():
    ladder = parse_ladder("64:0.25:4, 96:0.5:8, -:1:16")
    assert ladder.rungs == (Rung(64, 0.25, 4), Rung(96, 0.5, 8), Rung(None, 1.0, 16))
    assert ladder.epochs == 16
    assert [ladder.step(k) for k in range(3)] == [1, 3, 9]
    assert ladder.rung_of_step(3) == 1 and ladder.rung_of_step(2) is None
    assert Ladder.from_dict(ladder.to_dict()) == ladder


@pytest.mark.parametrize(
    "spec, message",
    [
        ("64:0.25", "not size:fraction:epoch"),
        ("64:abc:4", "not size:fraction:epoch"),
        ("64:0:4", "fraction 0.0 must be in"),
        ("64:0.5:4,96:0.25:8", "fractions only grow"),
        ("96:0.5:4,64:1:8", "sizes only grow"),
        ("-:0.5:4,64:1:8", "sizes only grow"),
        ("64:0.5:4,96:1:4", "later epoch"),
        ("8:1:2", "at least 16 px"),
    ],
)
def test_bad_ladders_are_refused_with_the_rung_named(spec, message):
    with pytest.raises(FidelityError, match=message):
        parse_ladder(spec)


def test_default_ladder_splits_the_epochs():
    ladder = default_ladder((64, 96, None), 24)
    assert [(r.image_size, r.fraction, r.epochs) for r in ladder.rungs] == [
        (64, 0.25, 8),
        (96, 0.5, 16),
        (None, 1.0, 24),
    ]
    with pytest.raises(FidelityError, match="too few"):
        default_ladder((64, 96, None), 2)


def test_auto_rungs_resize_a_transfer_head_only_where_the_backbone_runs_every_epoch():
    from spaces import get_space

    # With augmentation each epoch runs the backbone (cost grows with the size); on cached
    # features a head costs about the same at any size, so every rung is at the trial's own.
    assert get_space("mobilenet").fidelity_sizes == (160, 224, None)
    assert get_space("mobilenet-cached").fidelity_sizes == (None, None, None)
    assert get_space("mobilenet-head").fidelity_sizes == (None, None, None)
    assert get_space("cnn").fidelity_sizes == (64, 96, None)


def test_a_ladder_whose_rung_0_is_uncapped_is_read_after_a_space():
    from search.run import _joined_rungs, build_parser

    argv = ["--space", "mobilenet-head", "--rungs", "-:0.5:5,-:1:10", "--epochs", "10"]
    args = build_parser().parse_args(_joined_rungs(argv))
    assert args.rungs == "-:0.5:5,-:1:10"
    assert parse_ladder(args.rungs).rungs[0].image_size is None
    assert args.epochs == 10


def test_nested_fraction_is_stratified_and_nested():
    labels = np.repeat(np.arange(5), [100, 40, 10, 3, 1])
    small, large = nested_fraction(labels, 0.25, seed=1), nested_fraction(labels, 0.5, seed=1)
    assert set(small) <= set(large)
    assert np.bincount(labels[small]).tolist() == [25, 10, 2, 1, 1]  # at least one per class
    assert np.bincount(labels[large]).tolist() == [50, 20, 5, 2, 1]
    assert nested_fraction(labels, 1.0).tolist() == list(range(len(labels)))
    assert nested_fraction(labels, 0.25, seed=2).tolist() != small.tolist()


def test_train_fraction_thins_training_only():
    from search.data import synthetic_data

    data = synthetic_data(n_train=40, n_val=20, n_test=20)
    view = train_fraction(data, 0.5)
    x, y = view.arrays("train", 32)
    assert len(x) == len(y) == 20 and np.bincount(y).tolist() == [4] * 5
    assert len(view.arrays("val", 32)[0]) == 20 and len(view.labels("test")) == 20
    assert train_fraction(data, 1.0) is data
    assert view.describe()["train_fraction"] == 0.5


# The cnn space's starting point, made small: two narrow separable blocks, global pooling.
SMALL = {
    "conv_blocks": 2,
    "filters_0": 8,
    "filters_1": 8,
    "dense_units": 64,
    "aug_enabled": False,
    "schedule": "cosine",
}


def _hp(**values):
    from search.hyperparameters import fixed_hyperparameters
    from spaces.cnn import MODERN_START

    config = {k: v for k, v in MODERN_START.items() if not k.startswith("filters_")}
    return fixed_hyperparameters({**config, **SMALL, **values})


@pytest.mark.slow
def test_weights_carry_to_a_larger_input_with_global_pooling_only():
    from search.fidelity import carry_weights
    from spaces import BuildContext, get_space

    space = get_space("cnn")
    small = space.build(_hp(), BuildContext(5, max_image_size=16))
    large = space.build(_hp(), BuildContext(5, max_image_size=32))
    assert carry_weights(small, large)
    assert all(np.array_equal(a, b) for a, b in zip(small.get_weights(), large.get_weights()))
    flat_small = space.build(_hp(pooling="flatten"), BuildContext(5, max_image_size=16))
    flat_large = space.build(_hp(pooling="flatten"), BuildContext(5, max_image_size=32))
    before = [w.copy() for w in flat_large.get_weights()]
    assert not carry_weights(flat_small, flat_large)
    assert all(np.array_equal(a, b) for a, b in zip(before, flat_large.get_weights()))


def test_a_rung_keeps_the_best_epoch_of_the_rung_below_at_the_same_size():
    import keras

    from search.training import BestWeights

    def dense(inputs: int):
        keras.utils.set_random_seed(inputs)
        return keras.Sequential([keras.Input((inputs,)), keras.layers.Dense(2)])

    below, top, other = dense(4), dense(4), dense(5)
    carried = BestWeights(below)
    carried.on_epoch_end(0, {"val_accuracy": 0.9})
    # The top rung (a new model of the same size, continued) ends worse: the rung below wins.
    worse = BestWeights(top, carried=carried)
    worse.on_epoch_end(1, {"val_accuracy": 0.8})
    worse.restore()
    assert all(np.array_equal(a, b) for a, b in zip(top.get_weights(), below.get_weights()))
    # It ends better: its own epoch wins.
    better = BestWeights(top, carried=carried)
    top.layers[0].kernel.assign(np.ones((4, 2)))
    better.on_epoch_end(1, {"val_accuracy": 0.95})
    better.restore()
    assert better.best == 0.95 and np.all(top.get_weights()[0] == 1)
    # Another input size cannot take the weights: nothing is carried.
    assert BestWeights(other, carried=carried).weights is None


class _Judge:
    """An engine callback standing in for Optuna's: records what each rung reported."""

    def __init__(self, stop_after=None):
        self.seen, self.stop_after = [], stop_after

    def set_model(self, model):
        pass

    def on_epoch_end(self, epoch, logs=None):
        if "rung" in logs:
            self.seen.append((epoch, int(logs["rung"]), logs["rung_score"]))
            if self.stop_after is not None and int(logs["rung"]) == self.stop_after:
                raise optuna.TrialPruned("judged")


def _climb(ladder, judge, allowance=None, **values):
    import keras

    from search.data import synthetic_data
    from search.fidelity import climb
    from search.training import EngineCallbacks, HistoryRecorder
    from spaces import BuildContext, get_space

    keras.utils.set_random_seed(0)
    recorder, log = HistoryRecorder(), []
    model = climb(
        get_space("cnn"),
        _hp(**values),
        synthetic_data(),
        BuildContext(5, max_image_size=32),
        ladder,
        trial_callbacks=lambda model, kept: [recorder],
        rungs_log=log,
        engine_callbacks=EngineCallbacks([judge]),
        allowance=allowance,
        batch_size=8,
    )
    return model, log, recorder


@pytest.mark.slow
def test_a_continued_trial_keeps_what_it_kept_unless_its_next_rung_beats_it(tmp_path):
    import keras

    from search.data import synthetic_data
    from search.fidelity import climb
    from search.study import WarmStart
    from search.training import BestWeights, EngineCallbacks
    from spaces import BuildContext, get_space

    space, hp, ctx = get_space("cnn"), _hp(), BuildContext(5, max_image_size=32)
    ladder = parse_ladder("-:0.5:1,-:1:2")  # one size: the kept weights fit the top rung
    keras.utils.set_random_seed(0)
    stopped = space.build(hp, ctx)
    stopped.save_weights(tmp_path / "kept.weights.h5")

    def continued(score):
        bests = []

        def trial_callbacks(model, kept):
            bests.append(BestWeights(model, carried=kept))
            return [bests[-1]]

        model = climb(
            space,
            hp,
            synthetic_data(),
            ctx,
            ladder,
            trial_callbacks=trial_callbacks,
            rungs_log=[],
            engine_callbacks=EngineCallbacks([]),
            resume=WarmStart("0", str(tmp_path / "kept.weights.h5"), 1, score=score),
            batch_size=8,
        )
        bests[-1].restore()
        return [w.copy() for w in model.get_weights()], bests[-1].best

    def same(weights):
        return all(np.array_equal(a, b) for a, b in zip(weights, stopped.get_weights()))

    # No epoch of the top rung beats a kept score of 1.0: the kept weights are the trial's.
    weights, best = continued(1.0)
    assert best == 1.0 and same(weights)
    # Kept at 0.0, the top rung's own epoch wins.
    weights, best = continued(0.0)
    assert best > 0.0 and not same(weights)


@pytest.mark.slow
def test_a_trial_climbs_its_rungs_continuing_its_weights():
    ladder = parse_ladder("16:0.5:1,24:0.5:2,-:1:4")
    judge = _Judge()
    model, log, recorder = _climb(ladder, judge)
    assert int(model.input_shape[1]) == 32  # the run's --max-image-size at the top rung
    assert [
        (r["rung"], r["image_size"], r["fraction"], r["epochs"], r["continued"]) for r in log
    ] == [(0, 16, 0.5, 1, False), (1, 24, 0.5, 2, True), (2, 32, 1.0, 4, True)]
    # The engine saw each rung's last epoch, with that rung's best score.
    assert [(e, k) for e, k, _ in judge.seen] == [(0, 0), (1, 1), (3, 2)]
    assert [s for _, _, s in judge.seen] == [r["val_accuracy"] for r in log]
    # Epochs continue: 4 in all, one history, one phase per rung.
    assert len(recorder.history["val_accuracy"]) == 4
    assert recorder.history["phase"] == [1, 2, 3, 3]


@pytest.mark.slow
def test_a_flattening_net_restarts_each_rung_and_a_stopped_trial_keeps_its_rungs():
    ladder = parse_ladder("16:0.5:1,-:1:2")
    judge = _Judge()
    _, log, recorder = _climb(ladder, judge, pooling="flatten")
    assert [r["continued"] for r in log] == [False, False]
    assert len(recorder.history["val_accuracy"]) == 1 + 2  # the top rung trained from epoch 0

    stopped = _Judge(stop_after=0)
    with pytest.raises(optuna.TrialPruned):
        _climb(parse_ladder("16:0.5:1,-:1:3"), stopped)
    assert [k for _, k, _ in stopped.seen] == [0]


@pytest.mark.slow
def test_a_rung_that_runs_past_its_allowance_stops_the_trial_there():
    from search.fidelity import RungNotAfforded

    judge = _Judge()
    allowance = {0: None, 1: (0.0, "over the 0 s a test allows")}
    with pytest.raises(
        RungNotAfforded, match=r"stopped in rung 1 \(epoch 2 of 3\): it ran \d+ s, over"
    ):
        _climb(parse_ladder("16:0.5:1,-:1:3"), judge, allowance=allowance.get)
    assert [k for _, k, _ in judge.seen] == [0]  # rung 0 was judged, rung 1 never finished


def test_rung_pruning_is_successive_halving_per_rung():
    from search.engines.optuna._rungs import RungPruning
    from search.engines.optuna._samplers import make_pruner

    ladder = parse_ladder("16:0.25:1,24:0.5:2,-:1:3")
    study = optuna.create_study(direction="maximize", pruner=make_pruner(None, 3, rungs=True))
    study.enqueue_trial({}, user_attrs={"starting": True})  # a yardstick: it always climbs
    outcomes = []
    for score in (0.1, 0.5, 0.9, 0.4, 0.3, 0.95, 0.2):
        trial = study.ask()
        callback = RungPruning(trial, ladder)
        try:
            callback.on_epoch_end(0, {"val_accuracy": score})  # not a rung's end: ignored
            callback.on_epoch_end(0, {"rung": 0.0, "rung_score": score})
            callback.on_epoch_end(2, {"rung": 2.0, "rung_score": score})  # the top: never judged
            study.tell(trial, score)
            outcomes.append("promoted")
        except optuna.TrialPruned as exc:
            assert "rung 0 (16 px, 25% of train, to epoch 1)" in str(exc)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            outcomes.append("pruned")
    # ASHA: a trial goes on only in the best third of the trials that reached the rung, and
    # not before three have (the first two stop there); the yardstick goes on whatever it
    # scores, and counts among the others' competitors.
    assert outcomes == ["promoted", "pruned", "promoted", "pruned", "pruned", "promoted", "pruned"]
    assert all(list(t.intermediate_values) == [1] for t in study.trials)


def test_above_rung_0_too_the_first_two_arrivals_stop_whatever_they_scored():
    from search.engines.optuna._rungs import RungPruning
    from search.engines.optuna._samplers import make_pruner

    ladder = parse_ladder("16:0.25:1,24:0.5:2,-:1:3")
    study = optuna.create_study(direction="maximize", pruner=make_pruner(None, 3, rungs=True))
    outcomes = []
    # (rung 0, rung 1) scores: the first two stop at rung 0; the others pass it (each the best
    # third there) and meet at rung 1, where again the first two stop, even the second, the
    # best so far there and above every rung-0 score (a higher rung scores higher anyway):
    # late promotion continues them once they rank. From the third on the best third goes on.
    for first, second in ((0.1, 0), (0.2, 0), (0.5, 0.45), (0.6, 0.65), (0.7, 0.7), (0.8, 0.55)):
        trial = study.ask()
        callback = RungPruning(trial, ladder)
        try:
            callback.on_epoch_end(0, {"rung": 0.0, "rung_score": first})
            callback.on_epoch_end(1, {"rung": 1.0, "rung_score": second})
            study.tell(trial, second)
            outcomes.append("top")
        except optuna.TrialPruned as exc:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            outcomes.append(f"stopped at rung {1 if 'rung 1' in str(exc) else 0}")
    assert outcomes == [
        "stopped at rung 0",
        "stopped at rung 0",
        "stopped at rung 1",  # the first at rung 1
        "stopped at rung 1",  # 0.65: the best so far at rung 1, but only the second there
        "top",  # 0.7: the best third of three
        "stopped at rung 1",  # 0.55: not in the best of four
    ]


@pytest.mark.slow
def test_each_rung_decays_the_cosine_schedule_to_its_own_end():
    judge = _Judge()
    _, _, recorder = _climb(parse_ladder("16:0.5:2,-:1:4"), judge, learning_rate=0.01)
    # Rung 0 decays over its 2 epochs; rung 1 goes on along the 4-epoch curve (a restart).
    assert recorder.history["learning_rate"] == pytest.approx(
        [0.01, 0.005, 0.005, 0.01 * 0.5 * (1 + np.cos(np.pi * 3 / 4))], rel=1e-4
    )


def _paced(monkeypatch, epoch_seconds: list[float], allowance: float, epochs: int):
    """Run a RungAllowance over epochs of the given lengths on a fake clock (2 batches an
    epoch); returns it and the epochs that ran."""
    from types import SimpleNamespace

    from search.training import RungAllowance

    clock = [1000.0]
    monkeypatch.setattr("search.training.time.time", lambda: clock[0])
    timer = RungAllowance(allowance, epochs)
    timer.set_model(SimpleNamespace(stop_training=False))
    timer.on_train_begin()
    ran = []
    for epoch, seconds in enumerate(epoch_seconds):
        timer.on_epoch_begin(epoch)
        for _ in range(2):
            clock[0] += seconds / 2
            timer.on_train_batch_end(0)
        timer.on_epoch_end(epoch)
        ran.append(epoch)
        if timer.model.stop_training:
            break
    return timer, ran


def test_a_rung_a_little_over_its_allowance_finishes(monkeypatch):
    # 8 epochs of 1.4 s: 11.2 s against 10 s, within the quarter of grace.
    timer, ran = _paced(monkeypatch, [1.4] * 8, allowance=10, epochs=8)
    assert ran == list(range(8)) and timer.stopped_in_epoch is None


def test_a_rung_that_cannot_finish_stops_at_an_epoch_end_by_its_pace(monkeypatch):
    # 3 s for the first epoch (it traces), then 2 s: after epoch 2, 5 s + 6 x 2 s = 17 s.
    timer, ran = _paced(monkeypatch, [3.0] + [2.0] * 7, allowance=10, epochs=8)
    assert ran == [0, 1] and timer.stopped_in_epoch == 1
    assert timer.projected_s == pytest.approx(17.0)


def test_a_rung_whose_epoch_runs_past_the_grace_stops_in_it(monkeypatch):
    # One 30 s epoch: the clock passes 12.5 s within it (at its second batch).
    timer, ran = _paced(monkeypatch, [30.0, 1.0], allowance=10, epochs=2)
    assert ran == [0] and timer.stopped_in_epoch == 0 and timer.projected_s is None


def test_a_rung_of_two_fits_has_one_allowance(monkeypatch):
    """A transfer trial's rung may run two fits (the head's last epochs, then the top's
    first): one allowance counts the seconds in both, not the cache computed between them,
    and a rung stopped in its first fit stops the second at its first batch."""
    from types import SimpleNamespace

    timer, _ = _paced(monkeypatch, [2.0] * 3, allowance=20, epochs=8)  # 6 s of 25 s
    timer.on_train_end()
    from search import training

    now = training.time.time() + 100.0  # the top's activations are cached meanwhile
    monkeypatch.setattr("search.training.time.time", lambda: now)
    timer.set_model(SimpleNamespace(stop_training=False))
    timer.on_train_begin()
    assert timer.elapsed_s() == pytest.approx(6.0)
    assert timer.stop_at == pytest.approx(now + 25.0 - 6.0)

    stopped, _ = _paced(monkeypatch, [3.0] + [2.0] * 7, allowance=10, epochs=8)
    stopped.on_train_end()
    second = SimpleNamespace(stop_training=False)  # the second fit's model (the tuned top)
    stopped.set_model(second)
    stopped.on_train_begin()
    stopped.on_train_batch_end(0)
    assert second.stop_training
