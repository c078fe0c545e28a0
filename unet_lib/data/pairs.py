"""Finding (picture, mask) pairs in a tree: the helpers each dataset's ``list_pairs`` is written with.

A dataset describes its layout once, in its ``list_pairs``; the dataset reads the pairs it lists and
check-data reports every stray file it finds, so one run of check-data names all of them.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from unet_lib.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")  # pictures a dataset reads
OUTSIDE = -1  # in a mask value -> class table: a value that is no label at all
MASK_SUFFIXES = (".png", ".gif", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")  # found, so that a JPEG mask is named


@dataclass(frozen=True)
class Pair:
    """A picture and its mask file (for Carvana's CSV: the CSV, and the mask's RLE row)."""

    image: Path
    mask: Path
    rle: str | None = None

    @property
    def id(self) -> str:
        """The picture's name without its suffix (Cityscapes: without ``_leftImg8bit``)."""
        return self.image.stem.removesuffix("_leftImg8bit")


@dataclass
class Listing:
    """What a tree holds: the pairs of each part (``"train"``, ``"val"``...), one problem per stray or bad
    file, and where the pairs are, in words (check-data prints it)."""

    parts: dict[str, list[Pair]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    where: str = ""

    @property
    def pairs(self) -> list[Pair]:
        """Every pair, part after part."""
        return [pair for pairs in self.parts.values() for pair in pairs]

    def raise_first(self, root: Path) -> None:
        """Stop at the first problem, in one line that says how to see them all."""
        if self.problems:
            more = len(self.problems) - 1
            tail = f" (and {more} more: python -m unet_lib check-data {root})" if more else ""
            raise InputError(self.problems[0] + tail)


def by_stem(folder: Path, suffixes: tuple[str, ...], problems: list[str], name=lambda p: p.stem) -> dict[str, Path]:
    """``{name(file): file}`` of the files in ``folder`` with one of ``suffixes``; a second file of a name is a problem."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else ():
        if path.is_file() and path.suffix.lower() in suffixes:
            if (stem := name(path)) in found:
                problems.append(f"{path}: a second file named {stem} (also {found[stem].name}); expected one per name")
            else:
                found[stem] = path
    return found


def match(
    images: dict[str, Path], masks: dict[str, Path], mask_for: Callable[[str], str], image_for: Callable[[str], str]
) -> tuple[list[Pair], list[str]]:
    """Pairs of the names in both; one problem per image without mask and per mask without image."""
    pairs = [Pair(images[s], masks[s]) for s in sorted(images) if s in masks]
    problems = [f"{images[s]}: image without mask (expected {mask_for(s)})" for s in sorted(set(images) - set(masks))]
    problems += [f"{masks[s]}: mask without image (expected {image_for(s)})" for s in sorted(set(masks) - set(images))]
    return pairs, problems


def read_rle_rows(path: Path) -> tuple[dict[str, str], list[str]]:
    """The ``{image stem: rle}`` rows of a Kaggle ``train_masks.csv``, and its problems."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as err:
        return {}, [f"{path}: cannot read ({err.__class__.__name__}); expected a CSV with header img,rle_mask"]
    if not rows or [c.strip() for c in rows[0][:2]] != ["img", "rle_mask"]:
        return {}, [f"{path}: expected a CSV with header img,rle_mask"]
    problems = [
        f"{path}:{n}: expected 2 columns (img,rle_mask), got {len(r)}" for n, r in enumerate(rows[1:], 2) if len(r) != 2
    ]
    return {Path(r[0]).stem: r[1] for r in rows[1:] if len(r) == 2}, problems
