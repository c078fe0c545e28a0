"""The Kaggle Carvana Image Masking data: 1918x1280 car photos and their binary masks."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from unet_lib.config import TrainConfig
from unet_lib.data.dataset import PairDataset, hold_out, train_or_val, value_lut, value_table
from unet_lib.data.pairs import DEFAULT_LAYOUT, IMAGE_SUFFIXES, MASK_SUFFIXES, Layout, Listing, Pair, by_stem, match
from unet_lib.data.transforms import build_transforms
from unet_lib.errors import InputError

EXPECTED_LAYOUT = """expected a Kaggle Carvana folder like
  data/carvana/
    train/<car>_<view>.jpg
    train_masks/<car>_<view>_mask.gif   (or train_masks.csv)
    test/<car>_<view>.jpg               (optional)
Download it from the Carvana Image Masking Challenge on Kaggle, or make sample data with
  python -m unet_lib sample-data carvana data/carvana"""

CAR_ID_LENGTH = 12  # ids are <car>_<view> (00087a6bd4dc_01): the 16 views of one car share the first 12 characters
SPLITS = ("train", "val", "test")
SPLIT_SEED = 0  # which cars are held out; fixed, so every run and every notebook holds out the same cars
MASK_VALUES = ({0, 1}, {0, 255})  # a mask holds 0/1 (the GIFs' palette indices) or 0/255: 255 is the car


def car_of(image_id: str) -> str:
    """The car an image id belongs to (its first 12 characters)."""
    return image_id[:CAR_ID_LENGTH]


def split_by_car(ids: list[str], val_fraction: float = 0.2, seed: int = SPLIT_SEED) -> tuple[list[str], list[str]]:
    """Split image ids into (train, val) by car: no car is seen from one side in training and another in validation."""
    val_cars = hold_out(sorted({car_of(i) for i in ids}), val_fraction, seed)
    return [i for i in ids if car_of(i) not in val_cars], [i for i in ids if car_of(i) in val_cars]


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


def list_pairs(root: Path, layout: Layout = DEFAULT_LAYOUT) -> Listing:
    """``train/`` with ``train_masks/`` (or ``train_masks.csv``), and ``val/`` likewise (``layout``: folder trees')."""
    if not (root / "train").is_dir():
        raise InputError(f"{root / 'train'}: folder not found; {EXPECTED_LAYOUT}")
    listing, where = Listing(), []
    for name in ("train", "val") if (root / "val").is_dir() else ("train",):
        image_dir, mask_dir, csv_path = root / name, root / f"{name}_masks", root / f"{name}_masks.csv"
        images = by_stem(image_dir, IMAGE_SUFFIXES, listing.problems)
        if mask_dir.is_dir():
            masks = by_stem(mask_dir, MASK_SUFFIXES, listing.problems, name=lambda p: p.stem.removesuffix("_mask"))
            found, unpaired = match(
                images, masks, lambda s, d=mask_dir: f"{d / s}_mask.gif", lambda s, d=image_dir: f"{d / s}.jpg"
            )
        elif csv_path.is_file():
            rows, unpaired = read_rle_rows(csv_path)
            found = [Pair(images[s], csv_path, rows[s]) for s in sorted(images) if s in rows]
            unpaired += [f"{csv_path}: no row for image {images[s]}" for s in sorted(set(images) - set(rows))]
            unpaired += [
                f"{csv_path}: row {s}.jpg has no image in {image_dir}" for s in sorted(set(rows) - set(images))
            ]
        else:
            found, unpaired = [], [f"{mask_dir}: no masks (neither this folder nor {csv_path.name}); {EXPECTED_LAYOUT}"]
        listing.parts[name] = found
        listing.problems += unpaired
        where.append(f"{len(found)} in {name}/" + ("" if mask_dir.is_dir() else f" (masks from {csv_path.name})"))
    listing.where = ", ".join(where) + ("" if (root / "val").is_dir() else "; validation: whole cars held out")
    return listing


class CarvanaDataset(PairDataset):
    """Carvana photos with their car masks (items: see :class:`PairDataset`; masks of 0 and 1, the car).

    Args:
        root: The Carvana folder (``EXPECTED_LAYOUT``).
        split: ``"train"``, ``"val"`` or ``"test"`` (the test photos have no masks: items are images only).
        size: ``(H, W)`` to resize to, or None for the photos' own 1280x1918.
        augment: ``"none"``, ``"flip"``, ``"original"`` or ``"default"`` (see ``build_transforms``).
        val_fraction, seed: Without a ``val/`` folder, the share of cars held out for validation, and which.
    """

    name = "carvana"
    title = "Carvana"
    class_names = ("background", "car")  # two classes: one output channel
    layout = EXPECTED_LAYOUT
    scores = "by classes"  # evaluate: two classes, so Kaggle's Dice at the photos' size and more
    split_predictions = "kaggle-csv"  # predict --data: a Kaggle submission (--submission CSV)
    cpu_recipe = "demo"  # the recipe a CPU trains in reasonable time: train says so on a long run
    background = 0
    markers = ("train_masks",)  # a Kaggle Carvana tree: train_masks/ (or train_masks.csv, see looks_like)
    list_pairs = staticmethod(list_pairs)
    lut = value_lut(foreground_255=True)

    @classmethod
    def looks_like(cls, root: Path, layout: Layout = DEFAULT_LAYOUT) -> bool:
        """Carvana's own names: ``train_masks/`` or ``train_masks.csv`` (a ``train/`` folder alone is no sign)."""
        return (root / "train_masks").is_dir() or (root / "train_masks.csv").is_file()

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        size: tuple[int, int] | None = None,
        augment: bool | str = False,
        val_fraction: float = 0.2,
        seed: int = SPLIT_SEED,
    ):
        if split not in SPLITS:
            raise InputError(f"split: expected one of {SPLITS}, got {split!r}")
        self.root, self.split = Path(root), split
        if not self.root.is_dir():
            raise InputError(f"{self.root}: folder not found; {EXPECTED_LAYOUT}")
        if split == "test":
            folder = self.root / "test"
            if not folder.is_dir():
                raise InputError(f"{folder}: folder not found; {EXPECTED_LAYOUT}")
            images = by_stem(folder, IMAGE_SUFFIXES, [])
            if not images:
                raise InputError(f"{folder}: no .jpg images; {EXPECTED_LAYOUT}")
            pairs = [Pair(images[s], None) for s in sorted(images)]
        else:
            listing = list_pairs(self.root)
            listing.raise_first(self.root)
            if not listing.parts["train"]:
                raise InputError(f"{self.root / 'train'}: no .jpg images; {EXPECTED_LAYOUT}")
            pairs = train_or_val(listing, split, lambda ids: set(split_by_car(ids, val_fraction, seed)[1]))
        super().__init__(pairs, size, build_transforms(augment, mask_fill=0))

    @classmethod
    def from_config(cls, config: TrainConfig, split: str, augment: str = "none", known=None) -> CarvanaDataset:
        """The ``split`` a config describes, at its size (``known`` is for folder trees)."""
        return cls(config.data_dir, split, config.resize_to, augment, config.val_fraction)

    @classmethod
    def value_tables(cls, report) -> list[np.ndarray]:
        """check-data: one mask value -> class table for each of ``MASK_VALUES``."""
        return [value_table(cls.lut, sorted(values)) for values in MASK_VALUES]

    def check_mask(self, mask: np.ndarray, path: Path) -> np.ndarray:
        """``mask`` when it holds only {0, 1} or only {0, 255}; a one-line error naming ``path`` otherwise."""
        values = np.flatnonzero(np.bincount(mask.ravel(), minlength=256))
        if any(set(values.tolist()) <= allowed for allowed in MASK_VALUES):
            return mask
        shown = ", ".join(str(v) for v in values[:6]) + (", ..." if len(values) > 6 else "")
        raise InputError(
            f"{path}: mask has {len(values)} distinct values ({shown}); expected only {{0, 1}} or {{0, 255}}"
            " (anti-aliased edges? threshold it, e.g. mask = mask >= 128, and save it as PNG or GIF)"
        )
