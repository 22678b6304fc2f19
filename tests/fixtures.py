"""Small synthetic datasets in the Kaggle layout, made with Pillow, with the real data's traps.

Each class has its own colour tint over a random 6x6 block pattern, so a tiny model can learn
the classes in an epoch or two, and every image is perceptually distinct (random patterns
give unrelated perceptual hashes). The traps, each at a known path:

- ``corrupt``:    a file of random bytes and a truncated JPEG (both must be skipped);
- ``exact``:      a byte-identical copy of a training image, in validation_set;
- ``near``:       the same picture re-encoded smaller at another quality, in validation_set;
- ``conflict``:   a copy of a drawing filed under engraving (conflicting labels: left out);
- ``converted``:  RGBA PNG, palette PNG with transparency, grayscale, 16-bit grayscale and
  CMYK JPEG files (converted to RGB, kept);
- ``large``:      a JPEG over Pillow's decompression-bomb warning size (kept).
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("drawings", "engraving", "iconography", "painting", "sculpture")
_TINTS = {
    "drawings": (230, 230, 230),
    "engraving": (60, 60, 60),
    "iconography": (220, 170, 40),
    "painting": (40, 120, 200),
    "sculpture": (170, 60, 60),
}


def pattern_image(label: str, rng: np.random.Generator, size: int = 48) -> Image.Image:
    blocks = rng.integers(0, 256, (6, 6), dtype=np.uint8)
    gray = (
        np.asarray(
            Image.fromarray(blocks).resize((size, size), Image.Resampling.NEAREST), dtype=np.float32
        )
        / 255.0
    )
    tint = np.array(_TINTS[label], dtype=np.float32)
    rgb = 0.55 * tint[None, None, :] + 0.45 * 255 * gray[..., None]
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def make_art_dataset(
    root: Path,
    per_class: int = 24,
    seed: int = 0,
    size: int = 48,
    with_traps: bool = True,
    large_side: int = 9600,
) -> dict[str, list[str]]:
    """Write a Kaggle-layout dataset under ``root``; return the trap files' relative paths."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    traps: dict[str, list[str]] = {
        k: [] for k in ("corrupt", "exact", "near", "conflict", "converted", "large")
    }
    for label in CLASSES:
        for i in range(per_class):
            split = "validation_set" if i % 6 == 0 else "training_set"
            path = root / split / label / f"{i:04d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            pattern_image(label, rng, size).save(path, quality=95)
    if not with_traps:
        return traps

    def rel(p: Path) -> str:
        return p.relative_to(root).as_posix()

    train_dir = root / "training_set"
    val_dir = root / "validation_set"
    # Corrupt: random bytes with an image name, and a JPEG cut in half.
    bad = train_dir / "drawings" / "random_bytes.jpg"
    bad.write_bytes(rng.integers(0, 256, 2000, dtype=np.uint8).tobytes())
    buf = io.BytesIO()
    pattern_image("drawings", rng, 96).save(buf, "JPEG", quality=95)
    truncated = train_dir / "painting" / "truncated.jpg"
    truncated.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    traps["corrupt"] += [rel(bad), rel(truncated)]

    # Exact duplicate across the Kaggle split folders.
    source = train_dir / "painting" / "0001.jpg"
    exact = val_dir / "painting" / "copy_of_0001.jpg"
    shutil.copyfile(source, exact)
    traps["exact"] += [rel(source), rel(exact)]

    # Near duplicate: same picture, smaller, another format and quality.
    source = train_dir / "sculpture" / "0002.jpg"
    near = val_dir / "sculpture" / "near_0002.png"
    Image.open(source).resize((40, 40), Image.Resampling.BILINEAR).save(near)
    traps["near"] += [rel(source), rel(near)]

    # Conflicting labels: a drawing also filed under engraving.
    source = train_dir / "drawings" / "0003.jpg"
    conflict = train_dir / "engraving" / "drawing_0003.jpg"
    shutil.copyfile(source, conflict)
    traps["conflict"] += [rel(source), rel(conflict)]

    # Modes that must be converted, not dropped.
    rgba = pattern_image("iconography", rng, size).convert("RGBA")
    alpha = np.full((size, size), 255, dtype=np.uint8)
    alpha[: size // 2] = 0  # top half fully transparent -> must become white
    rgba.putalpha(Image.fromarray(alpha))
    p = train_dir / "iconography" / "alpha.png"
    rgba.save(p)
    traps["converted"].append(rel(p))
    p = train_dir / "engraving" / "palette.png"
    pal = pattern_image("engraving", rng, size).convert(
        "P", palette=Image.Palette.ADAPTIVE, colors=16
    )
    pal.info["transparency"] = 0
    pal.save(p, transparency=0)
    traps["converted"].append(rel(p))
    p = train_dir / "drawings" / "gray.jpg"
    pattern_image("drawings", rng, size).convert("L").save(p)
    traps["converted"].append(rel(p))
    p = train_dir / "engraving" / "gray16.png"
    g16 = np.asarray(pattern_image("engraving", rng, size).convert("L"), dtype=np.uint16) * 257
    Image.fromarray(g16).save(p)
    traps["converted"].append(rel(p))
    p = train_dir / "painting" / "cmyk.jpg"
    pattern_image("painting", rng, size).convert("CMYK").save(p)
    traps["converted"].append(rel(p))

    # Very large: above Pillow's 89.5 MP decompression-bomb warning.
    if large_side:
        p = train_dir / "sculpture" / "large.jpg"
        pattern_image("sculpture", rng, 64).resize(
            (large_side, large_side), Image.Resampling.NEAREST
        ).save(p, quality=50)
        traps["large"].append(rel(p))
    return traps


def make_class_folders(root: Path, counts: dict[str, int], seed: int = 0, size: int = 48) -> Path:
    """A plain ``<class>/`` dataset with ``counts[label]`` distinct pictures per class (0 makes
    an empty class folder); labels outside CLASSES get a grey tint."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for label, n in counts.items():
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            tinted = label if label in _TINTS else "engraving"
            pattern_image(tinted, rng, size).save(folder / f"{i:04d}.jpg", quality=95)
    return root


def save_constant_model(
    path: Path,
    outputs: int,
    answer: int,
    image_size: int = 16,
    class_names: list[str] | None = None,
) -> Path:
    """An untrained ``.keras`` classifier that always predicts output ``answer``; with
    ``class_names`` it gets the project's sidecar, without them it is a foreign model."""
    import keras

    inputs = keras.Input((image_size, image_size, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(outputs, activation="softmax")
    model = keras.Model(inputs, dense(x))
    bias = np.zeros(outputs, dtype="float32")
    bias[answer] = 10.0
    dense.set_weights([np.zeros((3, outputs), dtype="float32"), bias])
    path = Path(path)
    if class_names is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save(path)
    else:
        from search.model_io import save_model

        save_model(model, path, class_names, image_size)
    return path


def make_split_folders(
    root: Path, splits: dict[str, dict[str, int]], seed: int = 0, size: int = 48, mode: str = "RGB"
) -> Path:
    """A dataset in the train/val(/test) layout: ``splits[folder][label]`` distinct pictures
    under ``root/folder/label/`` (folder names as given: ``train``, ``valid``, ``Test``...);
    ``mode`` "L" writes grayscale JPEGs."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for folder, counts in splits.items():
        for label, n in counts.items():
            target = root / folder / label
            target.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                tinted = label if label in _TINTS else "engraving"
                pattern_image(tinted, rng, size).convert(mode).save(
                    target / f"{i:04d}.jpg", quality=95
                )
    return root


# EXIF orientation 6: the stored pixels are turned 90 degrees counter-clockwise; a viewer turns
# them back clockwise. Phones write it instead of rotating the pixels.
EXIF_ORIENTATION = 0x0112


def write_rotated_jpeg(path: Path, width: int = 24, height: int = 48) -> None:
    """A JPEG whose upright picture (``width`` x ``height``) is red above and blue below,
    stored sideways with EXIF orientation 6: decoded without the tag, the red half is on the
    right instead of on top."""
    upright = np.zeros((height, width, 3), dtype=np.uint8)
    upright[: height // 2] = (220, 30, 30)
    upright[height // 2 :] = (30, 30, 220)
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # counter-clockwise
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stored.save(path, quality=95, exif=exif)


def completed_trial(study: str, number: int, val: float, config: dict, **fields):
    """A COMPLETE row of a hand-made multi-objective study ``study`` (optuna, nsga2, cnn) with
    the figures given (``fields``: latency_ms, size_mb, params, ...)."""
    from search.results import TrialRecord

    return TrialRecord(
        study=study,
        engine="optuna",
        algorithm="nsga2",
        space="cnn",
        trial_id=str(number),
        number=number,
        state="COMPLETE",
        config=config,
        val_accuracy=val,
        **fields,
    )
