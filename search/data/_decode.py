"""Decode every file with Pillow, once, into RGB; hash it for duplicate detection."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps

# Art scans reach tens of megapixels; they are images, not decompression bombs. Pillow's
# default refuses ~179 MP and warns from ~89 MP. Its limit is one process-wide setting, read
# by every decoding thread, so it is raised once here (to 1 gigapixel) rather than per call.
MAX_IMAGE_PIXELS = 1_000_000_000
if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_IMAGE_PIXELS:
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


@dataclasses.dataclass
class ScannedFile:
    """What one pass over a file learns: readable or not, and its fingerprints."""

    path: str  # relative to the data root, POSIX separators
    label: str
    sha256: str  # of the file's bytes: exact duplicates
    ok: bool
    reason: str | None = None  # why it could not be decoded
    mode: str | None = None  # Pillow mode before conversion to RGB
    width: int = 0
    height: int = 0
    phash: str | None = None  # 64-bit perceptual hash, hex: near duplicates


def open_rgb(path: str | os.PathLike, max_side: int | None = None) -> Image.Image:
    """Open and fully decode an image as RGB; raises on anything undecodable.

    Palette, alpha, grayscale, 16-bit and CMYK images are converted; transparent pixels are
    composited onto white (artwork scans are shown on white), not left as black.
    ``max_side`` lets JPEG decode at a reduced scale (draft mode), which is much faster for
    big scans when only a small thumbnail is needed. An EXIF orientation tag (phone photos)
    is applied, so the network sees the picture upright, as a photo viewer shows it.
    """
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set: truncated files would "
            "be padded with grey instead of reported; unset it"
        )
    with Image.open(path) as img:
        if max_side is not None and img.format == "JPEG":
            img.draft("RGB", (max_side, max_side))
        img.load()
        # exif_transpose returns a new, rotated image (or a copy when there is no tag to apply).
        return to_rgb(ImageOps.exif_transpose(img))


def to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img.copy()
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: scale to 8 bits instead of clipping everything to white.
        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() or 1.0
        img = Image.fromarray((arr * (255.0 / hi)).astype(np.uint8))
    return img.convert("RGB")


def scan_file(args: tuple[str, str, str]) -> ScannedFile:
    """Decode and fingerprint one file. ``args`` = (absolute path, relative path, label)."""
    import imagehash

    abs_path, rel_path, label = args
    with open(abs_path, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    try:
        with Image.open(abs_path) as probe:
            mode = probe.mode
        img = open_rgb(abs_path)
    except Exception as exc:  # Pillow raises many types for bad files; all mean "skip"
        return ScannedFile(rel_path, label, digest, ok=False, reason=f"{type(exc).__name__}: {exc}")
    width, height = img.size
    if width < 2 or height < 2:
        return ScannedFile(
            rel_path,
            label,
            digest,
            ok=False,
            mode=mode,
            reason=f"image is {width}x{height} pixels, too small to use",
        )
    return ScannedFile(
        rel_path,
        label,
        digest,
        ok=True,
        mode=mode,
        width=width,
        height=height,
        phash=str(imagehash.phash(img)),
    )


def scan_files(
    root: Path,
    labelled_files: Sequence[tuple[Path, str]],
    workers: int | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> list[ScannedFile]:
    """Scan files in parallel processes (decoding is CPU bound); order is preserved."""
    jobs = [(str(p), p.relative_to(root).as_posix(), label) for p, label in labelled_files]
    workers = workers or min(len(jobs), os.cpu_count() or 1) or 1
    if workers <= 1 or len(jobs) < 64:
        results: Iterable[ScannedFile] = map(scan_file, jobs)
        return list(progress(results) if progress else results)
    # Threads, not processes: Pillow releases the GIL while decoding and resizing, and a
    # forked process could deadlock on TensorFlow's threads in the caller.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(scan_file, jobs)
        return list(progress(results) if progress else results)
