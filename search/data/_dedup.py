"""Group exact and near-duplicate images so that no group is ever split across train/val/test.

Exact duplicates share the SHA-256 of their bytes. Near duplicates (the same picture
re-encoded, resized or re-saved in another format) have 64-bit perceptual hashes
(``imagehash.phash``: DCT of a 32x32 grayscale thumbnail) within ``NEAR_DUPLICATE_THRESHOLD``
bits of each other. Grouping is transitive (union-find): if a~b and b~c, all three are one
group, which errs on the side of keeping look-alikes together.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Hamming distance (out of 64 bits) at or below which two images count as the same picture.
# Measured on the art-images data (see README, "Duplicates"): copies of one picture differ
# by 0-4 bits after re-encoding and resizing; distinct artworks rarely come closer than ~10.
NEAR_DUPLICATE_THRESHOLD = 6


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:  # path compression
            self.parent[i], i = root, self.parent[i]
        return int(root)

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)


def phash_to_uint64(hex_hashes: Sequence[str]) -> np.ndarray:
    return np.array([int(h, 16) for h in hex_hashes], dtype=np.uint64)


def near_duplicate_pairs(
    hashes: np.ndarray, threshold: int, block: int = 1024
) -> list[tuple[int, int]]:
    """All index pairs i < j with Hamming distance <= threshold (blocked all-pairs, vectorised)."""
    pairs = []
    n = len(hashes)
    for start in range(0, n, block):
        chunk = hashes[start : start + block]
        # Distances from this chunk to every later-or-equal index.
        distances = np.bitwise_count(chunk[:, None] ^ hashes[None, start:])
        rows, cols = np.nonzero(distances <= threshold)
        cols = cols + start
        rows = rows + start
        keep = rows < cols
        pairs.extend(zip(rows[keep].tolist(), cols[keep].tolist()))
    return pairs


def group_duplicates(
    sha256: Sequence[str], phash: Sequence[str], threshold: int = NEAR_DUPLICATE_THRESHOLD
) -> tuple[np.ndarray, dict[str, int]]:
    """Group ids per image (0..G-1, numbered by first appearance) and counts for the report.

    Returns ``(group_of, stats)`` where stats has ``exact_groups`` / ``exact_files`` (groups of
    byte-identical files with 2+ members and their file count) and ``near_groups`` /
    ``near_files`` (final groups of 2+ members that needed a perceptual match).
    """
    n = len(sha256)
    uf = _UnionFind(n)
    first_with_digest: dict[str, int] = {}
    for i, digest in enumerate(sha256):
        if digest in first_with_digest:
            uf.union(first_with_digest[digest], i)
        else:
            first_with_digest[digest] = i
    exact_roots = np.array([uf.find(i) for i in range(n)])

    for i, j in near_duplicate_pairs(phash_to_uint64(phash), threshold):
        uf.union(i, j)
    roots = np.array([uf.find(i) for i in range(n)])

    _, group_of = np.unique(roots, return_inverse=True)
    # Renumber by first appearance so ids are stable for a given file order.
    order = {}
    group_of = np.array([order.setdefault(g, len(order)) for g in group_of])

    exact_sizes = np.bincount(np.unique(exact_roots, return_inverse=True)[1])
    final_sizes = np.bincount(group_of)
    # A final group "needed a perceptual match" when it holds more than one exact-group.
    exact_groups_per_final: dict[int, set[int]] = {}
    for g, e in zip(group_of, exact_roots):
        exact_groups_per_final.setdefault(int(g), set()).add(int(e))
    near = [g for g, members in exact_groups_per_final.items() if len(members) > 1]
    stats = {
        "exact_groups": int((exact_sizes > 1).sum()),
        "exact_files": int(exact_sizes[exact_sizes > 1].sum()),
        "near_groups": len(near),
        "near_files": int(sum(final_sizes[g] for g in near)),
        "groups": int(len(final_sizes)),
        "groups_with_copies": int((final_sizes > 1).sum()),
    }
    return group_of, stats


def find_copies(
    scanned: Sequence, entries: Sequence[dict], threshold: int = NEAR_DUPLICATE_THRESHOLD
) -> list[tuple[str, str]]:
    """Pairs ``(scanned file, manifest entry)`` that are exact or near copies of each other.

    ``scanned`` are readable ``ScannedFile``s (from ``scan_files``); ``entries`` are split
    manifest entries (``sha256``, ``phash``, ``path``). This is how a folder to be scored is
    checked against the images a model trained or was selected on.
    """
    if not scanned or not entries:
        return []
    by_digest = {e["sha256"]: e["path"] for e in entries}
    hashes = phash_to_uint64([e["phash"] for e in entries])
    pairs = []
    for s in scanned:
        if s.sha256 in by_digest:
            pairs.append((s.path, by_digest[s.sha256]))
            continue
        distances = np.bitwise_count(hashes ^ np.uint64(int(s.phash, 16)))
        j = int(np.argmin(distances))
        if distances[j] <= threshold:
            pairs.append((s.path, entries[j]["path"]))
    return pairs
