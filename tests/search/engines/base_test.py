"""The engine base's helpers that need no engine: a re-derived row's sizes."""

from __future__ import annotations

import types

from search.engines.base import rederived_record
from spaces import BuildContext, get_space
from spaces.registry import Space


def _runner(space):
    labels = {"study": "s", "engine": "optuna", "algorithm": "tpe", "space": "cnn"}
    return types.SimpleNamespace(
        space=space, ctx=BuildContext(num_classes=5, max_image_size=32), labels=labels
    )


def test_a_rederived_row_counts_its_model_and_says_when_it_cannot(capsys):
    space = get_space("cnn")
    config = space.reference_configs()[0]
    row = rederived_record(
        _runner(space), trial_id="3", number=3, state="COMPLETE", config=config, note="re-derived"
    )
    assert row.params > 0 and 0 < row.trainable_params <= row.params and row.input_size == 32
    assert capsys.readouterr().err == ""

    class Broken(Space):
        def declare(self, hp, ctx):
            raise RuntimeError("no such backbone\nsecond line")

    row = rederived_record(
        _runner(Broken()),
        trial_id="4",
        number=4,
        state="COMPLETE",
        config=config,
        note="re-derived",
    )
    assert row.params is None and row.state == "COMPLETE"
    assert capsys.readouterr().err == (
        "warning: trial 4's re-derived row has no parameter counts: building its configuration "
        "failed (RuntimeError: no such backbone)\n"
    )
