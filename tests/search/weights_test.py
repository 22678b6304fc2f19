"""Pretrained weights: one ImageNet file for every input size, found in Keras' cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from search.weights import MOBILENET_V2_NO_TOP, keras_weights_argument, mobilenet_v2_weights

SHARED_WEIGHTS = Path(__file__).resolve().parents[2].parent / "shared" / "weights" / MOBILENET_V2_NO_TOP


@pytest.mark.skipif(not SHARED_WEIGHTS.is_file(), reason="../shared/weights is not here")
def test_imagenet_resolves_to_the_cached_224_file_without_network(tmp_path, monkeypatch):
    models = tmp_path / "keras" / "models"
    models.mkdir(parents=True)
    shutil.copyfile(SHARED_WEIGHTS, models / MOBILENET_V2_NO_TOP)
    import keras

    monkeypatch.setattr(keras.utils, "get_file", _cache_only(keras.utils.get_file, tmp_path / "keras"))
    assert Path(keras_weights_argument("imagenet")) == models / MOBILENET_V2_NO_TOP
    from search.weights import mobilenet_v2_backbone

    backbone = mobilenet_v2_backbone(96, "imagenet")  # another size, same file, no download
    assert backbone.input_shape == (None, 96, 96, 3)


def test_other_weights_pass_through_and_bad_paths_are_named(tmp_path):
    assert keras_weights_argument(None) is None
    assert mobilenet_v2_weights() == "imagenet"
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        mobilenet_v2_weights(tmp_path / "missing.h5")
    with_top = tmp_path / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5"
    with_top.write_bytes(b"x")
    with pytest.raises(ValueError, match="no_top"):
        mobilenet_v2_weights(with_top)


def _cache_only(get_file, cache_dir):
    def wrapped(fname, origin, **kwargs):
        # Keras reads $KERAS_HOME once at import, so the test's cache is passed explicitly;
        # any download attempt fails the test: the cached (hash-checked) file must be used.
        return get_file(fname, "http://127.0.0.1:9/never-downloaded", cache_dir=str(cache_dir), **kwargs)
    return wrapped
