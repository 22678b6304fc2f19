"""The mobilenet space's CPU paths are exact: fine-tuning on cached activations at the cut
trains the same model as fine-tuning through the image path."""

from __future__ import annotations

import keras
import keras_tuner
import numpy as np
import optuna
import pytest

from search.data import synthetic_data
from search.hyperparameters import DefineByRunHyperParameters, fixed_hyperparameters
from spaces import BuildContext, get_space
from spaces.mobilenet import MobileNetSpace, _crossing_tensors, phase_spans

CTX = BuildContext(num_classes=5, max_image_size=32, weights=None)
CONFIG = {
    "image_size": 224,
    "head_units": 16,
    "head_dropout": 0.0,
    "learning_rate": 0.01,
    "fine_tune_layers": 54,
    "fine_tune_lr_factor": 0.1,
    "fine_tune_epochs": 2,
    "fine_tune_schedule": "plateau",
    "fine_tune_weight_decay": 0.0,
    # Inference-mode BatchNorm keeps these tiny random-weight models well-conditioned:
    # batch statistics of near-constant synthetic features amplify rounding differences.
    "fine_tune_batch_norm": "frozen",
    "aug_enabled": False,
    "flip_views": False,
    "tta_flip": False,
    "head_inputs": "pooled",
}  # (only read where fine_tune_layers is 0)


def _data():
    return synthetic_data(n_train=40, n_val=20, n_test=20, image_size=32, seed=0)


def _train(space: MobileNetSpace, data, config=None, *, callbacks=(), predict=False) -> dict:
    """One fit of ``config`` (CONFIG: 2 head epochs, then 2 fine-tuning epochs at the published
    cut) and what the tests read of it: the history, the final weights, the backbone's BatchNorm
    moving statistics that moved, its unfrozen BatchNorm layers, whether the model computes the
    same in training and inference mode, and with ``predict`` the space's test predictions
    beside the model's own on the images. Each fit costs seconds (tracing MobileNetV2's
    training step), so the module's tests share the fits that train the same thing."""
    from search.data import predict_in_batches

    keras.utils.set_random_seed(0)
    hp = fixed_hyperparameters(config or CONFIG)
    model = space.build(hp, CTX)
    base = model.get_layer("backbone")
    stats = {w.path: w.numpy().copy() for w in base.non_trainable_weights if "moving" in w.path}
    history = keras.callbacks.History()
    space.fit(hp, model, data, CTX, epochs=4, callbacks=[history, *callbacks])
    run = {"history": history.history, "weights": [w.copy() for w in model.get_weights()]}
    run["moved"] = [
        w.path
        for w in base.weights
        if w.path in stats and not np.array_equal(w.numpy(), stats[w.path])
    ]
    run["tuned_norms"] = [
        layer.name
        for layer in base.layers[-54:]
        if layer.trainable and isinstance(layer, keras.layers.BatchNormalization)
    ]
    if predict:
        x, _ = data.arrays("test", 32)
        run["predicted"] = space.predict(hp, model, data, CTX, "test")
        run["direct"] = predict_in_batches(model, x)
    # Last: a training-mode call moves batch-statistics BatchNorm layers.
    x, _ = data.arrays("val", 32)
    run["same"] = np.allclose(model(x, training=True), model(x, training=False), atol=1e-6)
    keras.backend.clear_session()
    return run


class Steps(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.steps = []

    def on_epoch_end(self, epoch, logs=None):
        self.steps.append(epoch)


@pytest.fixture(scope="module")
def image_path_run():
    """Fine-tuning through the image path (no cached activations)."""
    return _train(MobileNetSpace(cache_activations=False), _data(), predict=True)


@pytest.fixture(scope="module")
def cached_run():
    """The default path, as a search runs it: cached activations in float16, with an engine
    callback (a pruner's) and a callback of the trial's own attached."""
    from search.training import EngineCallbacks

    judged, seen = Steps(), Steps()
    run = _train(MobileNetSpace(), _data(), callbacks=[seen, EngineCallbacks([judged])])
    return {**run, "judged": judged.steps, "seen": seen.steps}


@pytest.fixture(scope="module")
def cached_float32_run():
    """Cached activations in float32, with every image batch the data source made recorded."""
    data = _data()
    image_batches = []
    original = type(data).dataset
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            type(data),
            "dataset",
            lambda self, *a, **k: image_batches.append(a[:2]) or original(self, *a, **k),
        )
        space = MobileNetSpace()
        space.activation_dtype = "float32"
        run = _train(space, data, predict=True)
    return {**run, "image_batches": image_batches}


def test_the_published_cut_crosses_a_residual_block():
    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, weights=None)
    shapes = [tuple(t.shape[1:]) for t in _crossing_tensors(base, 154 - 54)]
    assert shapes == [(2, 2, 576), (2, 2, 96)]  # block 11's expanded tensor and its shortcut
    assert len(_crossing_tensors(base, 154 - 11)) == 1  # a block boundary: one tensor
    keras.backend.clear_session()


@pytest.mark.slow
def test_fine_tuning_on_cached_activations_is_the_image_path(cached_float32_run, image_path_run):
    run, expected = cached_float32_run, image_path_run
    assert run["image_batches"] == []  # neither phase passed images through the backbone per epoch
    assert len(run["history"]["val_accuracy"]) == 4
    np.testing.assert_allclose(run["history"]["loss"], expected["history"]["loss"], rtol=1e-4)
    np.testing.assert_allclose(run["history"]["val_accuracy"], expected["history"]["val_accuracy"])
    for got, want in zip(run["weights"], expected["weights"]):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5)


@pytest.mark.slow
def test_half_precision_activations_stay_close(cached_run, image_path_run):
    # float16, the default
    np.testing.assert_allclose(
        cached_run["history"]["loss"], image_path_run["history"]["loss"], rtol=2e-2
    )
    worst = max(
        float(np.max(np.abs(g - w)))
        for g, w in zip(cached_run["weights"], image_path_run["weights"])
    )
    assert worst < 1e-2


@pytest.mark.slow
@pytest.mark.parametrize("batch_norm", ["frozen", "batch"])
def test_fine_tuning_batch_norm_modes(batch_norm, request):
    """Keras 3 overrides a nested ``training=False`` with fit's ``training=True``: "batch" (the
    published code as it runs under Keras 3) trains the unfrozen BatchNorm layers on batch
    statistics; "frozen" keeps them on their pretrained statistics, in inference mode."""
    if batch_norm == "frozen":
        # Inference mode must hold on both paths (CONFIG's own mode: the shared fits).
        assert CONFIG["fine_tune_batch_norm"] == "frozen"
        for run in (
            request.getfixturevalue("cached_run"),
            request.getfixturevalue("image_path_run"),
        ):
            assert run["moved"] == [] and run["tuned_norms"] == [] and run["same"]
    else:  # batch statistics are shown on the cached path
        run = _train(MobileNetSpace(), _data(), {**CONFIG, "fine_tune_batch_norm": batch_norm})
        assert run["moved"] and run["tuned_norms"] and not run["same"]


@pytest.mark.slow
def test_a_fine_tuning_trial_is_judged_on_its_fine_tuning_epochs_alone(cached_run):
    """The engine's callbacks (the pruner's) see no head epoch of a fine-tuning trial; its
    k-th fine-tuning epoch is reported as step ``epochs + k``: the shared fit's budget is 4
    epochs, 2 of them fine-tuning."""
    assert cached_run["judged"] == [4, 5]
    assert cached_run["seen"] == list(range(4))  # the trial's own callbacks see every epoch
    assert len(cached_run["history"]["val_accuracy"]) == 4  # no early stop


@pytest.mark.parametrize(
    "space_name, cap, declared",
    [
        ("mobilenet", None, (128, 320, 224)),
        ("mobilenet", 288, (128, 288, 224)),  # 320 would train at 288: one config, two names
        ("mobilenet", 200, (128, 192, 192)),  # the published 224 px is above the cap
        ("mobilenet", 32, (128, 160, 160)),  # still two sizes to draw from
        ("mobilenet-cached", 288, (160, 288, 224)),
        ("mobilenet-head", 256, (128, 256, 224)),
    ],
)
def test_sizes_are_declared_up_to_the_cap(space_name, cap, declared):
    trial = optuna.create_study().ask()
    get_space(space_name).declare(
        DefineByRunHyperParameters(trial), BuildContext(5, max_image_size=cap)
    )
    size = trial.distributions["image_size"]
    assert (size.low, size.high, size.step) == (*declared[:2], 32)
    assert trial.params["image_size"] <= declared[1]
    defaults = keras_tuner.HyperParameters()  # keras-tuner's first trial: the defaults
    get_space(space_name).declare(defaults, BuildContext(5, max_image_size=cap))
    assert defaults.values["image_size"] == declared[2]
    keras.backend.clear_session()


def test_fine_tune_depths_are_block_boundaries_and_the_published_cut():
    from spaces.backbones import BACKBONES
    from spaces.mobilenet import fine_tune_depths

    spec = BACKBONES["mobilenet_v2"]
    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, weights=None)
    assert len(base.layers) == spec.num_layers
    for depth in spec.block_starts:  # a block boundary: exactly one tensor crosses
        assert len(_crossing_tensors(base, spec.num_layers - depth)) == 1, depth
    assert fine_tune_depths(spec)[:3] == [0, 3, 11] and 54 in fine_tune_depths(spec)
    assert fine_tune_depths(spec)[-1] == 154  # the whole network
    keras.backend.clear_session()


def test_cosine_schedule_warms_up_then_decays():
    space = MobileNetSpace()
    hp = fixed_hyperparameters({**CONFIG, "fine_tune_schedule": "cosine"})
    space.declare(hp, CTX)  # a trial's values exist once the space has declared them
    (scheduler,) = space.fine_tune_callbacks(hp, first_epoch=5, epochs=4)
    rates = [scheduler.schedule(epoch, 0.0) for epoch in range(5, 9)]
    peak = 0.01 * 0.1
    assert rates[0] == pytest.approx(peak / 10) and rates[1] == pytest.approx(peak)
    assert rates[1] > rates[2] > rates[3] > 0 and rates[3] == pytest.approx(peak / 4)


@pytest.mark.slow
@pytest.mark.parametrize("fine_tune_layers, cache", [(0, True), (54, True), (54, False)])
def test_predict_through_the_cached_paths_is_the_models_prediction(
    fine_tune_layers, cache, request
):
    """The head on cached features (fine_tune_layers 0), the tuned top on cached activations,
    and the image path: the space's predictions are the model's own on the images. The
    fine-tuned models are the shared float32 fits."""
    if fine_tune_layers:
        run = request.getfixturevalue("cached_float32_run" if cache else "image_path_run")
    else:
        space = MobileNetSpace(cache_activations=cache)
        space.activation_dtype = "float32"
        run = _train(space, _data(), {**CONFIG, "fine_tune_layers": fine_tune_layers}, predict=True)
    np.testing.assert_allclose(run["predicted"], run["direct"], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("fine_tune_layers, cache", [(54, True)])
def test_flip_views_train_and_flip_averaging_is_the_saved_models_prediction(
    fine_tune_layers, cache, tmp_path
):
    """Mirror images train the searched path (cached features for the head, then cached
    activations for fine-tuning), and a trial that averages over flips predicts what its
    saved inference model computes on the images: the mean of the image's and its mirror
    image's probabilities. (The image path, cache=False, mirrors half of each batch instead;
    it ran here as a second parameter and passed, and was dropped for the suite's time
    budget: 25 s.)"""
    from search.data import predict_in_batches
    from spaces.backbones import BACKBONES

    try:  # random-init backbones answer every tiny image alike; a mirror image must matter
        ctx = BuildContext(
            num_classes=5,
            max_image_size=32,
            weights=BACKBONES["mobilenet_v2"].keras_weights("imagenet"),
        )
    except RuntimeError:
        pytest.skip("no MobileNetV2 ImageNet weights in Keras' cache (README: Quick start)")
    data = synthetic_data(n_train=40, n_val=20, n_test=20, image_size=32, seed=0)
    space = MobileNetSpace(cache_activations=cache)
    space.activation_dtype = "float32"
    keras.utils.set_random_seed(0)
    hp = fixed_hyperparameters(
        {**CONFIG, "fine_tune_layers": fine_tune_layers, "flip_views": True, "tta_flip": True}
    )
    model = space.build(hp, ctx)
    history = keras.callbacks.History()
    space.fit(hp, model, data, ctx, epochs=2, callbacks=[history])
    assert len(history.history["val_accuracy"]) == 2  # both phases trained
    x, _ = data.arrays("test", 32)
    plain = predict_in_batches(model, x)
    mirrored = predict_in_batches(model, np.ascontiguousarray(x[:, :, ::-1]))
    predicted = space.predict(hp, model, data, ctx, "test")
    np.testing.assert_allclose(predicted, (plain + mirrored) / 2, rtol=1e-4, atol=1e-5)
    features = keras.Model(model.input, model.get_layer("features").output)
    assert not np.allclose(
        predict_in_batches(features, x),  # the mirror image is another input
        predict_in_batches(features, np.ascontiguousarray(x[:, :, ::-1])),
    )

    saved = tmp_path / "m.keras"
    space.inference_model(hp, model).save(saved)
    keras.backend.clear_session()
    loaded = keras.saving.load_model(saved, compile=False)
    np.testing.assert_allclose(predict_in_batches(loaded, x), predicted, rtol=1e-4, atol=1e-5)
    keras.backend.clear_session()


def test_a_transfer_trial_is_priced_as_it_trains():
    """``training_work``: the head alone on cached features, then the tuned top alone on cached
    activations; the whole model in each phase where the trial augments its images."""
    from search.cost import model_activations, model_macs

    space = MobileNetSpace()
    hp = fixed_hyperparameters(CONFIG)  # 2 fine-tuning epochs at the published cut
    model = space.build(hp, CTX)
    head, whole = model_macs(model.get_layer("head")), model_macs(model)
    (head_work, head_epochs), (top_work, top_epochs) = [
        ((m, a), n) for m, a, n in space.training_work(hp, model, 10)
    ]
    assert head_work == (head, 0) and (head_epochs, top_epochs) == (8, 2)
    assert head < top_work[0] < whole / 2 and 0 < top_work[1] < model_activations(model)
    # A fidelity rung's piece of a 10-epoch trial: the head's last epochs and the top's.
    pieces = space.training_work(hp, model, 9, initial_epoch=6, trial_epochs=10)
    assert [n for _, _, n in pieces] == [2, 1]
    assert [n for _, _, n in space.training_work(hp, model, 4, trial_epochs=10)] == [4]
    frozen = fixed_hyperparameters({**CONFIG, "fine_tune_layers": 0})
    assert space.training_work(frozen, space.build(frozen, CTX), 10) == [(head, 0, 10)]
    flips = {"aug_enabled": True, "aug_flip": "horizontal"}
    no_other = ("rotation", "zoom", "translation", "contrast", "brightness")
    augmented = fixed_hyperparameters({**CONFIG, **flips, **{f"aug_{k}": 0.0 for k in no_other}})
    model = space.build(augmented, CTX)
    assert [m for m, _, _ in space.training_work(augmented, model, 10)] == [whole, whole]
    keras.backend.clear_session()


def test_a_fine_tuning_trial_recorded_before_texture_heads_builds_again():
    """A committed study's fine-tuning trial has no head_inputs (its head saw the pooled
    features): ``complete`` names that, so it is retrained as it was."""
    import json
    from pathlib import Path

    rows = Path(__file__).parents[2] / "results/searches/mobilenet-cached-tpe/trials.jsonl"
    config = json.loads(rows.read_text().splitlines()[0])["config"]
    assert config["fine_tune_layers"] > 0 and "head_inputs" not in config
    space = get_space("mobilenet-cached")
    model = space.build(fixed_hyperparameters(space.complete(config)), CTX)
    assert model.get_layer("features").output.shape == (None, 1280)
    keras.backend.clear_session()


def test_without_flip_averaging_the_inference_model_is_the_model():
    space = MobileNetSpace()
    hp = fixed_hyperparameters({**CONFIG, "flip_views": False, "tta_flip": False})
    model = space.build(hp, CTX)
    assert space.inference_model(hp, model) is model
    keras.backend.clear_session()


@pytest.mark.slow
def test_a_texture_head_sees_earlier_blocks_channel_statistics_and_fine_tunes(tmp_path):
    """``head_inputs="pooled+texture"``: the head's input is the pooled final features and
    the per-channel mean and standard deviation of the backbone table's texture layers. It
    fine-tunes on cached activations at the published cut: the statistics of the texture
    layer below the cut (block 5) are read from the cache and stay as they were, those of the
    one above it (block 12) are tuned with the top; and the cached path predicts what the
    saved model computes on the images."""
    from search.data import predict_in_batches
    from spaces.backbones import BACKBONES

    data = synthetic_data(n_train=40, n_val=20, n_test=20, image_size=32, seed=0)
    space = MobileNetSpace()
    space.activation_dtype = "float32"
    hp = fixed_hyperparameters({**CONFIG, "head_inputs": "pooled+texture"})
    model = space.build(hp, CTX)
    assert model.get_layer("features").output.shape == (None, 1280 + 2 * (32 + 96))
    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, weights=None)
    x, _ = data.arrays("test", 32)
    mid = keras.Model(
        base.input, base.get_layer(BACKBONES["mobilenet_v2"].texture_layers[0]).output
    )
    mid.set_weights(model.get_layer("backbone").get_weights()[: len(mid.get_weights())])
    maps = np.asarray(mid.predict(x / 127.5 - 1, verbose=0), dtype=np.float64)
    extractor = keras.Model(model.input, model.get_layer("features").output)
    before = extractor.predict(x, verbose=0)
    np.testing.assert_allclose(before[:, 1280 : 1280 + 32], maps.mean(axis=(1, 2)), atol=1e-4)
    np.testing.assert_allclose(before[:, 1312:1344], maps.std(axis=(1, 2)), atol=1e-3)

    space.fit(hp, model, data, CTX, epochs=2)  # one head epoch, one fine-tuning epoch
    after = extractor.predict(x, verbose=0)
    np.testing.assert_array_equal(after[:, 1280:1344], before[:, 1280:1344])  # below the cut
    assert not np.array_equal(after[:, 1344:], before[:, 1344:])  # block 12, above it, tuned
    model.save(tmp_path / "t.keras")
    predicted = space.predict(hp, model, data, CTX, "test")
    keras.backend.clear_session()
    loaded = keras.saving.load_model(tmp_path / "t.keras", compile=False)
    np.testing.assert_allclose(predict_in_batches(loaded, x), predicted, rtol=1e-4, atol=1e-5)
    keras.backend.clear_session()


def test_phase_spans_cut_a_trials_phases_at_a_fits_epochs():
    """A fit of epochs first .. end - 1 covers this much of the head phase and of fine-tuning."""
    phases = (16, 4)  # a 20-epoch trial that fine-tunes for 4
    assert phase_spans(phases, 0, 7) == ((0, 7), (16, 16))  # head only
    assert phase_spans(phases, 13, 20) == ((13, 16), (16, 20))  # the head's end, then tuning
    assert phase_spans(phases, 17, 20) == ((16, 16), (17, 20))  # tuning only
    assert phase_spans((20, 0), 0, 20) == ((0, 20), (20, 20))  # never tunes


class _Judge(keras.callbacks.Callback):
    """Where an engine judges a climbing trial: the rung ends' logs."""

    def __init__(self):
        super().__init__()
        self.rungs: list[tuple[int, float]] = []

    def on_epoch_end(self, epoch, logs=None):
        if logs and "rung" in logs:
            self.rungs.append((int(logs["rung"]), epoch))


@pytest.mark.slow
def test_a_transfer_trial_climbs_rungs_head_first_then_its_tuned_top():
    """Under --rungs the head, then the fine-tuned top, continue from rung to rung: rung 0
    trains the head alone, the next rung takes the head's weights on, ends the head phase and
    starts fine-tuning, and the last continues the tuned top; every rung end is judged, in
    whichever phase it falls (a trial's own early stopping cannot cut a rung short)."""
    from search.fidelity import Ladder, Rung, climb

    space = MobileNetSpace(augment=False)
    hp = fixed_hyperparameters(CONFIG)  # 2 fine-tuning epochs of a 4-epoch trial: phases (2, 2)
    ladder = Ladder((Rung(None, 0.5, 1), Rung(None, 0.5, 3), Rung(None, 1.0, 4)))
    seen = []  # per rung: its model, and its top convolution's and head's kernels at the start

    def kernels(model):
        top = model.get_layer("backbone").get_layer("Conv_1").kernel.numpy().copy()
        return top, model.get_layer("head").layers[0].kernel.numpy().copy()

    def trial_callbacks(model, kept):
        seen.append((model, *kernels(model)))
        return []

    keras.utils.set_random_seed(0)
    judge, log = _Judge(), []
    climb(
        space,
        hp,
        _data(),
        CTX,
        ladder,
        trial_callbacks=trial_callbacks,
        engine_callbacks=judge,
        rungs_log=log,
    )
    assert [r["rung"] for r in log] == [0, 1, 2] and [r["continued"] for r in log] == [
        False,
        True,
        True,
    ]
    assert [rung for rung, _ in judge.rungs] == [0, 1, 2]
    (m0, top0, head0), (m1, top1, head1), (m2, top2, _) = seen
    after0, after1 = kernels(m0), kernels(m1)
    np.testing.assert_array_equal(after0[0], top0)  # rung 0: the backbone stayed frozen
    assert not np.array_equal(after0[1], head0)  # ... and the head trained
    np.testing.assert_array_equal(head1, after0[1])  # rung 1 took the head on
    np.testing.assert_array_equal(top1, after0[0])
    assert not np.array_equal(after1[0], top1)  # ... and tuned the top in its last epoch
    np.testing.assert_array_equal(top2, after1[0])  # rung 2 took the tuned top on
    assert not np.array_equal(kernels(m2)[0], top2)
    keras.backend.clear_session()
