"""Cityscapes street scenes, read with ``torchvision.datasets.Cityscapes``.

The label PNGs hold the 34 *labelIds*; training and the benchmark use the 19 *trainIds*, and
every other id (unlabeled, ego vehicle, parking, ...) becomes ``IGNORE_INDEX`` (255)::

    data/cityscapes/
      leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
      gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png
      gtCoarse/{train,train_extra,val}/<city>/..._gtCoarse_labelIds.png   (mode="coarse")
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.datasets import Cityscapes

from unet_lib.data.cache import CacheMode, PictureCache
from unet_lib.data.io import read_image, read_label_map
from unet_lib.data.transforms import apply, build_transforms, resize_pair
from unet_lib.errors import InputError
from unet_lib.metrics import IGNORE_INDEX

EXPECTED_LAYOUT = """expected a Cityscapes folder like
  data/cityscapes/
    leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png   (gtCoarse/ for mode="coarse")
Download leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip from cityscapes-dataset.com, or make
sample data with
  python -m unet_lib sample-data cityscapes data/cityscapes"""

# The 19 evaluated classes, in trainId order, with their official colours.
TRAIN_CLASSES = sorted((c for c in Cityscapes.classes if 0 <= c.train_id < 255), key=lambda c: c.train_id)
CLASS_NAMES = [c.name for c in TRAIN_CLASSES]
CLASS_COLORS = [c.color for c in TRAIN_CLASSES]
NUM_CLASSES = len(TRAIN_CLASSES)  # 19
NUM_LABEL_IDS = 34  # labelIds 0..33 in the label files (the original project's model predicts these directly)
AnnotationMode = Literal["fine", "coarse"]  # gtFine or gtCoarse label files


def label_to_train_lut() -> torch.Tensor:
    """A 256-entry table mapping each labelId to its trainId, and every ignored id to 255."""
    lut = torch.full((256,), IGNORE_INDEX, dtype=torch.uint8)
    for c in Cityscapes.classes:
        if 0 <= c.id < 256 and 0 <= c.train_id < 255:
            lut[c.id] = c.train_id
    return lut


def train_to_label_lut() -> torch.Tensor:
    """A 256-entry table mapping trainIds 0..18 back to labelIds (255 -> 0, unlabeled)."""
    lut = torch.zeros(256, dtype=torch.uint8)
    for c in TRAIN_CLASSES:
        lut[c.train_id] = c.id
    return lut


class CityscapesDataset(Dataset):
    """Cityscapes images with trainId label maps.

    Args:
        root: The Cityscapes folder (see the module docstring).
        split: ``"train"``, ``"val"`` or ``"test"`` (``"train_extra"`` with mode ``"coarse"``).
        mode: ``"fine"`` (gtFine) or ``"coarse"`` (gtCoarse).
        size: ``(H, W)`` to resize to, or None for the file size (1024x2048).
        augment: ``False``/``"none"``, ``"original"`` or ``True``/``"default"``; colour jitter is
            added whenever augmenting.
        cache: ``"disk"`` (one shared file in the user's cache folder), ``"memory"`` (a copy in each
            process; True) or ``"none"`` (False): where decoded, resized pictures are kept.

    Items are ``(image float [3, H, W] in [0, 1], labels int64 [H, W])`` with trainIds 0..18 and
    255 for ignored pixels. ``ids[i]`` is ``<city>_<seq>_<frame>``.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        mode: AnnotationMode = "fine",
        size: tuple[int, int] | None = None,
        augment: bool | str = False,
        cache: CacheMode | bool = "none",
    ):
        self.root = Path(root)
        if mode not in get_args(AnnotationMode):
            raise InputError(f"mode: expected one of {get_args(AnnotationMode)}, got {mode!r}")
        splits = ("train", "val", "test") if mode == "fine" else ("train", "train_extra", "val")
        if split not in splits:
            raise InputError(f"split: expected one of {splits} for mode={mode!r}, got {split!r}")
        self._check_layout(split, mode)
        base = Cityscapes(str(self.root), split=split, mode=mode, target_type="semantic")
        pairs = sorted(zip(base.images, (t[0] for t in base.targets), strict=True))
        self.images = [Path(p) for p, _ in pairs]
        self.targets = [Path(t) for _, t in pairs]
        if not self.images:
            raise InputError(f"{self.root / 'leftImg8bit' / split}: no *_leftImg8bit.png images; {EXPECTED_LAYOUT}")
        self._check_pairs(mode)
        self.ids = [p.name.removesuffix("_leftImg8bit.png") for p in self.images]
        self.split, self.mode = split, mode
        self.size = tuple(size) if size is not None else None
        self.transform = build_transforms(augment, mask_fill=IGNORE_INDEX, color=augment not in (False, "none"))
        self.lut = label_to_train_lut()
        self.cache = PictureCache(
            cache, self._decode, self.source_files, len(self.images), size=self.size, label=f"cityscapes-{mode}-{split}"
        )

    def _check_layout(self, split: str, mode: str) -> None:
        if not self.root.is_dir():
            raise InputError(f"{self.root}: folder not found; {EXPECTED_LAYOUT}")
        gt = "gtFine" if mode == "fine" else "gtCoarse"
        for part in ("leftImg8bit", gt):
            if not (self.root / part / split).is_dir():
                raise InputError(
                    f"{self.root / part / split}: folder not found (the {part} half is missing); {EXPECTED_LAYOUT}"
                )

    def _check_pairs(self, mode: str) -> None:
        for image, target in zip(self.images, self.targets, strict=True):
            if not target.is_file():
                raise InputError(f"{image}: image without labels (expected {target})")
        suffix = f"_{'gtFine' if mode == 'fine' else 'gtCoarse'}_labelIds.png"
        gt_dir = self.targets[0].parent.parent
        known = set(self.targets)
        for target in sorted(gt_dir.glob(f"*/*{suffix}")):
            if target not in known:
                image = target.name.removesuffix(suffix) + "_leftImg8bit.png"
                raise InputError(f"{target}: labels without image (expected leftImg8bit/.../{image})")

    def __len__(self) -> int:
        return len(self.images)

    def read_labels(self, index: int) -> torch.Tensor:
        """Full-resolution trainIds of item ``index``: uint8 [H, W]."""
        label_ids = torch.from_numpy(read_label_map(self.targets[index]))
        return self.lut[label_ids.long()]

    def source_files(self, index: int) -> list[Path]:
        """The files item ``index`` is decoded from: its picture and its labelIds."""
        return [self.images[index], self.targets[index]]

    def _decode(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoded (and, with ``size``, resized) uint8 image [3, H, W] and trainIds [H, W], read from the files."""
        image = read_image(self.images[index])
        labels = self.read_labels(index)
        if tuple(labels.shape) != tuple(image.shape[1:]):
            raise InputError(
                f"{self.images[index]}: image is {image.shape[2]}x{image.shape[1]} but its labels "
                f"{self.targets[index].name} are {labels.shape[1]}x{labels.shape[0]}; expected the same size"
            )
        if self.size is not None:
            image, labels = resize_pair(image, labels, self.size)
        return image, labels

    def _load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cache.get(index)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, labels = self._load(index)
        return apply(self.transform, image, labels)


def class_frequencies(dataset: CityscapesDataset) -> np.ndarray:
    """Share of labelled pixels of each of the 19 classes over a dataset (ignored pixels left out)."""
    counts = np.zeros(NUM_CLASSES, dtype=np.int64)
    for index in range(len(dataset)):
        labels = dataset.read_labels(index).numpy()
        counts += np.bincount(labels[labels != IGNORE_INDEX], minlength=NUM_CLASSES)[:NUM_CLASSES]
    return counts / max(counts.sum(), 1)
