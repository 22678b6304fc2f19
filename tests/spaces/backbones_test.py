"""Pretrained backbones: one table; one ImageNet file for every input size, from Keras' cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from spaces.backbones import BACKBONES, get_backbone

MOBILENET = BACKBONES["mobilenet_v2"]
SHARED_WEIGHTS = (
    Path(__file__).resolve().parents[2].parent / "shared" / "weights" / MOBILENET.weights_file
)


@pytest.mark.skipif(not SHARED_WEIGHTS.is_file(), reason="../shared/weights is not here")
def test_imagenet_resolves_to_the_cached_224_file_without_network(tmp_path, monkeypatch):
    models = tmp_path / "keras" / "models"
    models.mkdir(parents=True)
    shutil.copyfile(SHARED_WEIGHTS, models / MOBILENET.weights_file)
    import keras

    monkeypatch.setattr(
        keras.utils, "get_file", _cache_only(keras.utils.get_file, tmp_path / "keras")
    )
    assert Path(MOBILENET.keras_weights("imagenet")) == models / MOBILENET.weights_file
    backbone = MOBILENET.build(96, "imagenet")  # another size, same file, no download
    assert backbone.input_shape == (None, 96, 96, 3)
    assert len(backbone.layers) == MOBILENET.num_layers


def test_weights_flags_resolve_and_bad_paths_are_named(tmp_path):
    assert MOBILENET.keras_weights(None) is None
    assert MOBILENET.resolve_weights(None) == MOBILENET.resolve_weights("ImageNet") == "imagenet"
    assert MOBILENET.resolve_weights("none") is None
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        MOBILENET.resolve_weights(tmp_path / "missing.h5")
    with_top = tmp_path / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5"
    with_top.write_bytes(b"x")
    with pytest.raises(ValueError, match="no_top"):
        MOBILENET.resolve_weights(with_top)
    with pytest.raises(ValueError, match="unknown backbone 'resnet'; choices: mobilenet_v2"):
        get_backbone("resnet")


def test_feature_keys_name_backbone_weights_and_size(tmp_path):
    assert MOBILENET.feature_key(224, "imagenet") == "mobilenet_v2-imagenet-224"
    assert MOBILENET.feature_key(224, None) is None  # random init: never shared
    a, b = tmp_path / "a_no_top.h5", tmp_path / "b_no_top.h5"
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    assert MOBILENET.feature_key(160, str(a)) != MOBILENET.feature_key(160, str(b))
    assert MOBILENET.feature_key(160, str(a)).endswith("-160")


def _cache_only(get_file, cache_dir):
    def wrapped(fname, origin, **kwargs):
        # Keras reads $KERAS_HOME once at import, so the test's cache is passed explicitly;
        # any download attempt fails the test: the cached (hash-checked) file must be used.
        return get_file(
            fname, "http://127.0.0.1:9/never-downloaded", cache_dir=str(cache_dir), **kwargs
        )

    return wrapped
