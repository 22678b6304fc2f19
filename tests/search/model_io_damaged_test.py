"""A 0-byte or truncated ``.keras`` file is called empty or damaged, not "File not found"."""

from __future__ import annotations

import pytest

from search._formats import FormatError
from search.model_io import load_model


def test_an_empty_keras_file_is_called_empty(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"")
    with pytest.raises(FormatError) as exc:
        load_model(path)
    assert "is empty (0 bytes)" in str(exc.value) and "not found" not in str(exc.value)


def test_a_truncated_keras_file_is_called_damaged(tmp_path):
    import keras

    whole = tmp_path / "whole.keras"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(whole)
    cut = tmp_path / "model.keras"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(FormatError) as exc:
        load_model(cut)
    message = str(exc.value)
    assert "is damaged" in message and "not found" not in message.lower()
    assert "\n" not in message
    assert load_model(whole)[0] is not None  # a whole file still loads
