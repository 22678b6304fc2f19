"""The README's extension recipes, each one edit made from outside the package: a toy engine,
a toy space and a toy export format, registered here and used through the command line."""

from __future__ import annotations

from typing import Any

import pytest

import search.engines.base as engines
import spaces.registry as space_registry
from search.engines import Engine, register_engine
from search.hyperparameters import fixed_hyperparameters
from search.results import read_trials
from search.run import build_parser
from search.run import main as run_main
from search.trial import TrialRequest
from spaces import Space, get_space, register_space


class ToySpace(Space):
    """The least a space does: an input size and a learning rate, a softmax on pooled pixels."""

    description = "a toy space: pooled pixels into a softmax"

    def __init__(self, units: int = 0):
        self.units = units  # a keyword argument get_space passes through

    def build(self, hp: Any, ctx):
        import keras

        from search.training import compile_classifier

        size = ctx.image_size(hp.Int("image_size", 16, 32, step=16, default=16))
        rate = hp.Float("learning_rate", 1e-3, 1e-1, sampling="log", default=1e-2)
        inputs = keras.Input((size, size, 3))
        x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
        if self.units:
            x = keras.layers.Dense(self.units, activation="relu")(x)
        outputs = keras.layers.Dense(ctx.num_classes, activation="softmax")(x)
        return compile_classifier(keras.Model(inputs, outputs), keras.optimizers.Adam(rate))

    def reference_configs(self) -> list[dict[str, Any]]:
        return [{"image_size": 16, "learning_rate": 1e-2}]

    def starting_configs(self) -> list[dict[str, Any]]:
        return [{"image_size": 32, "learning_rate": 3e-2}]


class ToyEngine(Engine):
    """The least an engine does: run the space's first configurations, in order."""

    algorithms = ("in-order", "reversed")

    def run(self, runner, study, budget):
        trials, epochs = budget.trials, budget.epochs
        self.reconcile(runner, study, epochs=epochs)
        configs = [config for config, _ in self.first_configs(runner.space)]
        if self.algorithm == "reversed":
            configs.reverse()
        for number in range(len(study.records()), min(trials, len(configs))):
            runner.run(
                fixed_hyperparameters(configs[number]),
                TrialRequest(trial_id=str(number), number=number, epochs=epochs),
            )


@pytest.fixture
def registries(monkeypatch):
    """Registrations made by a test are undone after it (the registries are process-wide)."""
    monkeypatch.setattr(engines, "ENGINES", dict(engines.ENGINES))
    monkeypatch.setattr(space_registry, "_SPACES", dict(space_registry._SPACES))


def _run(tmp_path, *argv: str) -> int:
    return run_main(
        [
            *argv,
            "--synthetic",
            "--epochs",
            "1",
            "--results",
            str(tmp_path),
            "--in-process",
            "--no-progress",
        ]
    )


def test_a_toy_engine_registered_here_runs_from_the_command_line(registries, tmp_path):
    register_engine("toy")(ToyEngine)
    register_space("toy")(ToySpace)
    # The --algorithm help (argparse may wrap the printed help at a hyphen).
    (algorithm,) = [a for a in build_parser()._actions if a.dest == "algorithm"]
    assert "toy: in-order | reversed (default in-order)" in algorithm.help
    assert _run(tmp_path, "--space", "toy", "--engine", "toy", "--trials", "2") == 0
    study = tmp_path / "searches" / "toy-toy-in-order"  # its default algorithm names the study
    rows = read_trials(study / "trials.jsonl")
    assert [(r.engine, r.algorithm, r.state) for r in rows] == [("toy", "in-order", "COMPLETE")] * 2
    assert [r.config for r in rows] == [
        *ToySpace().reference_configs(),
        *ToySpace().starting_configs(),
    ]
    assert (study / "best.json").exists()


def test_an_unregistered_engine_or_algorithm_is_refused(registries, tmp_path, capsys):
    register_engine("toy")(ToyEngine)
    assert _run(tmp_path, "--space", "cnn", "--engine", "toy", "--algorithm", "tpe") == 2
    assert (
        "unknown algorithm 'tpe' for engine 'toy'; choices: in-order, reversed"
        in capsys.readouterr().err
    )
    assert _run(tmp_path, "--space", "cnn", "--engine", "toy", "--heartbeat", "5") == 2
    assert "--heartbeat applies to --engine optuna only" in capsys.readouterr().err
    with pytest.raises(TypeError, match="expects an Engine subclass"):
        register_engine("bad")(ToySpace)


def test_a_toy_space_registered_here_runs_from_the_command_line(registries, tmp_path, capsys):
    register_space("toy")(ToySpace)
    # A variant: the same space with preset keyword arguments, under its own name.
    register_space("toy-wide", ToySpace, description="the toy with a hidden layer", units=8)
    assert run_main(["--list-spaces"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert any(line.split()[0] == "toy" and "pooled pixels" in line for line in listed)
    assert any(line.split()[0] == "toy-wide" and "hidden layer" in line for line in listed)
    assert (get_space("toy-wide").units, get_space("toy-wide", units=4).units) == (8, 4)
    assert _run(tmp_path, "--space", "toy-wide", "--trials", "1") == 0
    rows = read_trials(tmp_path / "searches" / "toy-wide-optuna-tpe" / "trials.jsonl")
    assert [(r.space, r.state, r.config) for r in rows] == [
        ("toy-wide", "COMPLETE", ToySpace().reference_configs()[0])
    ]
    assert rows[0].params == (3 * 8 + 8) + (
        8 * 5 + 5
    )  # RGB means, the preset hidden layer, 5 classes


def _write_h5(model, path) -> None:
    from search._files import replaced_atomically

    with replaced_atomically(path) as tmp:  # model.tmp.h5: Keras picks HDF5 by the extension
        model.save(tmp)


def _load_h5(path):
    import keras

    from search.model_io import LoadedModel

    model = keras.saving.load_model(path, compile=False)
    return LoadedModel(
        path,
        "h5",
        f"Keras {keras.__version__} (legacy HDF5)",
        model.input_shape[1],
        model.output_shape[-1],
        model.predict_on_batch,
    )


@pytest.fixture
def h5_format():
    from search.model_io import FORMATS, Format, register_format

    yield register_format(
        Format(
            "h5",
            "model.h5",
            _write_h5,
            _load_h5,
            max_abs_diff=1e-6,
            min_agreement=1.0,
            preference=5,
            distributions=("h5py",),
        )
    )
    FORMATS.pop("h5")


def test_a_toy_format_registered_here_exports_and_loads_back(h5_format, tmp_path, capsys):
    import json

    import keras
    import numpy as np

    from search.data import decode_image
    from search.export import main as export_main
    from search.model_io import open_model, save_model
    from tests.fixtures import CLASSES, make_class_folders

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
    source = save_model(
        keras.Model(inputs, keras.layers.Dense(len(CLASSES), activation="softmax")(x)),
        tmp_path / "source" / "model.keras",
        list(CLASSES),
        16,
    )
    images = make_class_folders(tmp_path / "images", {c: 1 for c in CLASSES}, seed=1)
    (images / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "bundle"
    assert (
        export_main(
            [
                "--model",
                str(source),
                "--format",
                "keras,h5",
                "--sample",
                str(images),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    said = capsys.readouterr().out
    assert f"{len(CLASSES)} images from the folder {images} (1 undecodable file skipped)" in said
    record = json.loads((out / "export.json").read_text())
    assert record["formats"]["h5"]["status"] == "ok" and (out / "model.h5").exists()
    assert record["versions"]["h5py"] != "not installed"
    # Loaded back: by its file name, and from the bundle when asked for by name.
    loaded, meta = open_model(out / "model.h5")
    assert (loaded.format, meta["class_names"]) == ("h5", list(CLASSES))
    assert open_model(out, "h5")[0].format == "h5"
    assert open_model(out)[0].format == "keras"  # preference 0 comes first
    x = np.stack(
        [decode_image(p, 16) for p in sorted(images.rglob("*.jpg"))[:3] if p.name != "broken.jpg"]
    )
    np.testing.assert_allclose(loaded.predict(x), open_model(source)[0].predict(x), atol=1e-6)
