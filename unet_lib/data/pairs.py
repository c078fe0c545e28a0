"""Finding (picture, mask) pairs in a tree: the helpers each dataset's ``list_pairs`` is written with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from unet_lib.data.io import Colors, read_class_mask
from unet_lib.data.rle import rle_decode
from unet_lib.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")  # pictures a dataset reads
MASK_SUFFIXES = (".png", ".gif", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")  # found, so that a JPEG mask is named
MASK_NAME_ENDINGS = ("_mask", "_L", "_label", "_labels", "_gt")  # x.png pairs with x.png, x_mask.png, x_L.png, ...


def mask_stem(path: Path) -> str:
    """The picture name a mask file belongs to: its stem without a mask ending (``x_mask.png`` -> ``x``)."""
    for ending in MASK_NAME_ENDINGS:
        if path.stem.endswith(ending) and len(path.stem) > len(ending):
            return path.stem.removesuffix(ending)
    return path.stem


@dataclass(frozen=True)
class Layout:
    """How a tree is read: where a folder tree keeps its pictures and masks (relative to its root), its void value
    (``ignore_index``, read as 255: ignored), and Cityscapes' labels (``mode``). Built by :meth:`of` from a config."""

    images: str = "images"
    masks: str = "masks"
    val_images: str = "val/images"  # the defaults are optional: without them a seeded share is held out
    val_masks: str = "val/masks"
    ignore_index: int | None = None
    mode: str = "fine"

    @classmethod
    def of(cls, config) -> Layout:
        """The layout a ``TrainConfig`` names."""
        return cls(
            config.images_dir,
            config.masks_dir,
            config.val_images_dir,
            config.val_masks_dir,
            config.ignore_index,
            config.mode,
        )

    @property
    def default_val(self) -> bool:
        """The validation folders are the defaults (absent: fine), not named by the user (absent: a problem)."""
        return (self.val_images, self.val_masks) == (Layout.val_images, Layout.val_masks)


DEFAULT_LAYOUT = Layout()  # images/, masks/, val/images/, val/masks/; no void value but 255


@dataclass(frozen=True)
class Pair:
    """A picture and its mask file (Carvana's CSV: the CSV, and the mask's RLE row; a test picture: None), and the
    class colours when masks may be colour-coded."""

    image: Path
    mask: Path | None
    rle: str | None = None
    colors: Colors | None = None

    @property
    def id(self) -> str:
        """The picture's name without its suffix (Cityscapes: without ``_leftImg8bit``)."""
        return self.image.stem.removesuffix("_leftImg8bit")

    def read_mask(self, shape: tuple[int, int] | None = None) -> tuple[np.ndarray, str]:
        """The mask as stored, uint8 [H, W], and its PIL mode; an RLE row is decoded at ``shape`` ``(H, W)``."""
        if self.rle is None:
            return read_class_mask(self.mask, self.colors)
        try:
            return rle_decode(self.rle, shape), "RLE"
        except InputError as err:
            raise InputError(f"{self.mask}: row {self.image.name}: {err}") from None


@dataclass
class Listing:
    """What a tree holds: the pairs of each part (``"train"``, ``"val"``...), one problem per stray or bad file (the
    dataset stops at the first, check-data names them all), and where the pairs are, in words."""

    parts: dict[str, list[Pair]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    where: str = ""

    @property
    def pairs(self) -> list[Pair]:
        return [pair for pairs in self.parts.values() for pair in pairs]

    def raise_first(self, root: Path) -> None:
        """Stop at the first problem, in one line that says how to see them all."""
        if self.problems:
            more = len(self.problems) - 1
            tail = f" (and {more} more: python -m unet_lib check-data {root})" if more else ""
            raise InputError(self.problems[0] + tail)


def by_stem(
    folder: Path, suffixes: tuple[str, ...], problems: list[str], name=lambda p: p.stem, keep=lambda p: True
) -> dict[str, Path]:
    """``{name(file): file}`` of the files in ``folder`` with one of ``suffixes`` that ``keep`` accepts; a second
    file of a name is a problem."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else ():
        if path.is_file() and path.suffix.lower() in suffixes and keep(path):
            if (stem := name(path)) in found:
                problems.append(f"{path}: a second file named {stem} (also {found[stem].name}); expected one per name")
            else:
                found[stem] = path
    return found


def match(
    images: dict[str, Path],
    masks: dict[str, Path],
    mask_for: Callable[[str], str],
    image_for: Callable[[str], str],
    noun: str = "mask",
) -> tuple[list[Pair], list[str]]:
    """Pairs of the names in both; one problem per image without mask (``noun``) and per mask without image."""
    pairs = [Pair(images[s], masks[s]) for s in sorted(images) if s in masks]
    problems = [f"{images[s]}: image without {noun} (expected {mask_for(s)})" for s in sorted(set(images) - set(masks))]
    problems += [
        f"{masks[s]}: {noun} without image (expected {image_for(s)})" for s in sorted(set(masks) - set(images))
    ]
    return pairs, problems
