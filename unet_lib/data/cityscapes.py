"""Cityscapes street scenes. The label PNGs hold the 34 *labelIds*; training and the benchmark use the 19
*trainIds*, and every other id (unlabeled, ego vehicle, parking, ...) becomes ``IGNORE_INDEX`` (255)."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import numpy as np
import torch
from torchvision.datasets import Cityscapes

from unet_lib.config import AnnotationMode, TrainConfig
from unet_lib.data.dataset import PairDataset, value_table
from unet_lib.data.pairs import DEFAULT_LAYOUT, Layout, Listing, match
from unet_lib.data.transforms import build_transforms
from unet_lib.errors import InputError
from unet_lib.metrics import IGNORE_INDEX

EXPECTED_LAYOUT = """expected a Cityscapes folder like
  data/cityscapes/
    leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png   (gtCoarse/ for mode="coarse")
Download leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip from cityscapes-dataset.com, or make
sample data with
  python -m unet_lib sample-data cityscapes data/cityscapes"""

# The 19 evaluated classes, in trainId order, with their official colours (torchvision's table).
TRAIN_CLASSES = sorted((c for c in Cityscapes.classes if 0 <= c.train_id < 255), key=lambda c: c.train_id)
CLASS_NAMES = [c.name for c in TRAIN_CLASSES]
CLASS_COLORS = [c.color for c in TRAIN_CLASSES]
NUM_CLASSES = len(TRAIN_CLASSES)  # 19
NUM_LABEL_IDS = 34  # labelIds 0..33 in the label files (the original project's model predicts these directly)


def label_to_train_lut() -> torch.Tensor:
    """uint8 [256]: each labelId's trainId, and 255 for every id that is not evaluated."""
    lut = torch.full((256,), IGNORE_INDEX, dtype=torch.uint8)
    for c in TRAIN_CLASSES:
        lut[c.id] = c.train_id
    return lut


def list_pairs(root: Path, mode: str = "fine", splits: tuple[str, ...] = ("train", "val")) -> Listing:
    """``leftImg8bit/<split>/<city>/`` with ``gtFine/`` (mode ``"coarse"``: ``gtCoarse/``), for each of ``splits``."""
    gt = "gtFine" if mode == "fine" else "gtCoarse"
    suffix = f"_{gt}_labelIds.png"
    listing, where = Listing(), []
    for split in splits:
        image_dir, label_dir = root / "leftImg8bit" / split, root / gt / split
        if not image_dir.is_dir() or not label_dir.is_dir():
            missing, half = (image_dir, "leftImg8bit") if not image_dir.is_dir() else (label_dir, gt)
            listing.problems.append(f"{missing}: folder not found (the {half} half is missing); {EXPECTED_LAYOUT}")
            continue
        images = {p.name.removesuffix("_leftImg8bit.png"): p for p in sorted(image_dir.glob("*/*_leftImg8bit.png"))}
        labels = {p.name.removesuffix(suffix): p for p in sorted(label_dir.glob(f"*/*{suffix}"))}
        found, unpaired = match(
            images,
            labels,
            lambda s, d=label_dir: f"{d / s.split('_')[0] / s}{suffix}",
            lambda s, d=image_dir: f"{d / s.split('_')[0] / s}_leftImg8bit.png",
            noun="labels",
        )
        listing.parts[split] = found
        listing.problems += unpaired
        where.append(f"{len(found)} {split}")
    listing.where = ", ".join(where) + f" ({gt})"
    return listing


class CityscapesDataset(PairDataset):
    """Cityscapes pictures with their labels as trainIds (items: see :class:`PairDataset`; 0..18, 255 where not
    evaluated; ids are ``<city>_<seq>_<frame>``).

    Args:
        root: The Cityscapes folder (``EXPECTED_LAYOUT``).
        split: ``"train"``, ``"val"`` or ``"test"``; with ``mode="coarse"`` also ``"train_extra"``.
        mode: ``"fine"`` (gtFine) or ``"coarse"`` (gtCoarse) labels.
        size: ``(H, W)`` to resize to, or None for the files' own 1024x2048.
        augment: ``"none"``, ``"original"`` or ``"default"`` (see ``build_transforms``); augmenting adds colour jitter.
    """

    name = "cityscapes"
    title = "Cityscapes"
    class_names = tuple(CLASS_NAMES)  # the 19 trainIds
    layout = EXPECTED_LAYOUT
    scores = "official"  # evaluate: the official scores, at the labels' size (cli/cityscapes.py)
    split_predictions = "labelid-pngs"  # predict --data: labelId PNGs for the official evaluator
    cpu_recipe = "cityscapes-quick"  # the recipe a CPU trains in reasonable time: train says so on a long run
    background = None  # every class is painted
    markers = ("leftImg8bit",)  # a Cityscapes tree

    @staticmethod
    def list_pairs(root: Path, layout: Layout = DEFAULT_LAYOUT) -> Listing:
        """check-data's listing: every split's pictures with ``layout.mode``'s labels."""
        return list_pairs(root, layout.mode)

    label_to_train = label_to_train_lut()  # applied as the labels are read
    mismatch = "{image}: image is {w}x{h} but its labels {mask.name} are {mw}x{mh}; expected the same size"

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        mode: AnnotationMode = "fine",
        size: tuple[int, int] | None = None,
        augment: bool | str = False,
    ):
        self.root, self.split, self.mode = Path(root), split, mode
        if mode not in get_args(AnnotationMode):
            raise InputError(f"mode: expected one of {get_args(AnnotationMode)}, got {mode!r}")
        splits = ("train", "val", "test") if mode == "fine" else ("train", "train_extra", "val")
        if split not in splits:
            raise InputError(f"split: expected one of {splits} for mode={mode!r}, got {split!r}")
        if not self.root.is_dir():
            raise InputError(f"{self.root}: folder not found; {EXPECTED_LAYOUT}")
        listing = list_pairs(self.root, mode, (split,))
        listing.raise_first(self.root)
        if not listing.pairs:
            raise InputError(f"{self.root / 'leftImg8bit' / split}: no *_leftImg8bit.png images; {EXPECTED_LAYOUT}")
        transform = build_transforms(augment, mask_fill=IGNORE_INDEX, color=augment not in (False, "none"))
        super().__init__(listing.pairs, size, transform)
        self.images, self.targets = [p.image for p in self.pairs], [p.mask for p in self.pairs]  # as torchvision's

    @classmethod
    def from_config(cls, config: TrainConfig, split: str, augment: str = "none", known=None) -> CityscapesDataset:
        """The ``split`` a config describes, at its size (``known`` is for folder trees)."""
        return cls(config.data_dir, split, config.mode, config.resize_to, augment)

    @classmethod
    def value_tables(cls, report) -> list[np.ndarray]:
        """check-data: mask value -> trainId, for the labelIds (and 255)."""
        return [value_table(cls.label_to_train, [*range(NUM_LABEL_IDS), 255])]

    def read_raw_mask(self, index: int) -> torch.Tensor:
        """The trainIds of item ``index``, uint8 [H, W], mapped as read: a picture cache keeps trainIds."""
        return self.label_to_train[super().read_raw_mask(index).long()]

    read_labels = read_raw_mask  # the trainIds as a tensor
