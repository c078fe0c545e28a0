"""Helpers shared by the sample-data generators: write options, random streams, argument checks, 2-D geometry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unet_lib.errors import InputError

# Paint colours with the shares of car colours on the road: mostly white, black, grey and silver.
# fmt: off
PAINTS = [
    (0.24, (232, 233, 235)), (0.18, (22, 23, 26)), (0.14, (118, 121, 125)), (0.14, (176, 179, 183)),
    (0.09, (28, 52, 110)), (0.09, (150, 22, 28)), (0.05, (160, 140, 110)), (0.04, (40, 80, 55)),
    (0.03, (200, 160, 30)),
]
# fmt: on


@dataclass(frozen=True)
class WriteOptions:
    """How a sample is written, the same for every dataset: its seed, whether to overwrite, processes, a bar."""

    seed: int = 0  # same seed, byte-identical files (whatever the number of workers)
    overwrite: bool = False  # write into a non-empty folder, replacing the sample's own folders and files
    workers: int | None = None  # processes writing at once; None for one per core
    progress: bool | None = False  # a progress bar, one step per car or picture (None: on a terminal only)


def rng_stream(seed: int, *stream: int) -> np.random.Generator:
    """An independent random stream per (seed, kind, item): adding items never changes earlier ones."""
    return np.random.default_rng([seed, *stream])


def check_positive(**values: int) -> None:
    """Raise an ``InputError`` naming the first argument that is not a positive integer."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
            raise InputError(f"{name}: expected a positive integer, got {value!r}")


def check_size(size: tuple[int, int], minimum: int = 16) -> tuple[int, int]:
    """``(width, height)`` as ints, each at least ``minimum`` pixels, or an ``InputError``."""
    try:
        width, height = (int(n) for n in size)
    except (TypeError, ValueError):
        raise InputError(f"size: expected (width, height), got {size!r}") from None
    if width < minimum or height < minimum:
        raise InputError(f"size: expected (width, height) of at least {minimum}x{minimum} pixels, got {size!r}")
    return width, height


def prepare_root(root: str | Path, overwrite: bool) -> Path:
    """Create ``root``, refusing to write into a non-empty folder unless told to."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise InputError(f"{root}: exists and is not a folder; expected a folder to write sample data into")
    if root.is_dir() and any(root.iterdir()) and not overwrite:
        raise InputError(f"{root}: folder is not empty; pass overwrite=True (CLI: --overwrite) to write into it anyway")
    root.mkdir(parents=True, exist_ok=True)
    return root


def arc(cx, cz, radius, start, stop, n):
    """``n`` points on a circle around (cx, cz), from angle ``start`` to ``stop`` (radians): (n, 2)."""
    angles = np.linspace(start, stop, n)
    return np.column_stack([cx + radius * np.cos(angles), cz + radius * np.sin(angles)])


def clip(polygon: np.ndarray, x0: float, sign: int, axis: int = 0) -> np.ndarray:
    """The part of a polygon where sign * (p[axis] - x0) >= 0 (one Sutherland-Hodgman step)."""
    kept = []
    for p, q in zip(polygon, np.roll(polygon, -1, axis=0), strict=True):
        fp, fq = sign * (p[axis] - x0), sign * (q[axis] - x0)
        if fp >= 0:
            kept.append(p)
        if fp * fq < 0:
            kept.append(p + (q - p) * fp / (fp - fq))
    return np.array(kept)


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Convex hull of 2-D points, counter-clockwise (Andrew's monotone chain)."""
    pts = sorted(map(tuple, np.round(points, 3)))
    if len(pts) < 3:
        return np.array(pts)

    def half(seq):
        out = []
        for p in seq:
            while (
                len(out) >= 2
                and (out[-1][0] - out[-2][0]) * (p[1] - out[-2][1]) - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0])
                <= 0
            ):
                out.pop()
            out.append(p)
        return out[:-1]

    return np.array(half(pts) + half(pts[::-1]))
