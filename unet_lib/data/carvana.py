"""The Kaggle Carvana Image Masking data: 1918x1280 car photos and their binary masks.

Layouts read (``root`` is e.g. ``data/carvana``)::

    train/<id>.jpg            train_masks/<id>_mask.gif   (palette GIF, indices 0/1)
    train_masks.csv           (img,rle_mask: used when train_masks/ is absent)
    val/<id>.jpg              val_masks/<id>_mask.gif     (optional, the original project's layout)
    test/<id>.jpg             (no masks)

Ids are ``<car>_<view>``, e.g. ``00087a6bd4dc_01``; the 16 views of one car share the first 12
characters. Without a ``val/`` folder, validation is a deterministic split *by car*, so no car
is seen from one side in training and from another side in validation.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from unet_lib.data.cache import CacheMode, PictureCache
from unet_lib.data.io import image_size, read_image, read_mask
from unet_lib.data.transforms import apply, build_transforms, resize_pair
from unet_lib.errors import InputError
from unet_lib.rle import rle_decode

EXPECTED_LAYOUT = """expected a Kaggle Carvana folder like
  data/carvana/
    train/<car>_<view>.jpg
    train_masks/<car>_<view>_mask.gif   (or train_masks.csv)
    test/<car>_<view>.jpg               (optional)
Download it from the Carvana Image Masking Challenge on Kaggle, or make sample data with
  python -m unet_lib sample-data carvana data/carvana"""

CAR_ID_LENGTH = 12
SPLITS = ("train", "val", "test")
SPLIT_SEED = 0  # which cars are held out; fixed, so every run and every notebook holds out the same cars


def car_of(image_id: str) -> str:
    """The car an image id belongs to (its first 12 characters)."""
    return image_id[:CAR_ID_LENGTH]


def split_by_car(ids: list[str], val_fraction: float = 0.2, seed: int = SPLIT_SEED) -> tuple[list[str], list[str]]:
    """Split image ids into (train, val) so that all views of a car land on the same side.

    The split depends only on the set of cars and ``seed``, never on the global random state.
    """
    cars = sorted({car_of(i) for i in ids})
    random.Random(seed).shuffle(cars)
    num_val = max(1, round(len(cars) * val_fraction)) if len(cars) > 1 else 0
    val_cars = set(cars[:num_val])
    return [i for i in ids if car_of(i) not in val_cars], [i for i in ids if car_of(i) in val_cars]


def _list_images(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def _read_rle_csv(path: Path) -> dict[str, str]:
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read ({err}); expected a CSV with header img,rle_mask") from None
    if not rows or [c.strip() for c in rows[0][:2]] != ["img", "rle_mask"]:
        raise InputError(f"{path}: expected a CSV with header img,rle_mask")
    masks = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != 2:
            raise InputError(f"{path}:{line}: expected 2 columns (img,rle_mask), got {len(row)}")
        masks[Path(row[0]).stem] = row[1]
    return masks


class CarvanaDataset(Dataset):
    """Carvana images with their masks, resized (and augmented) for training.

    Args:
        root: The Carvana folder (see the module docstring for the layouts read).
        split: ``"train"``, ``"val"`` or ``"test"`` (test has no masks).
        size: ``(H, W)`` to resize to, or None for the file's size (1280x1918).
        augment: ``False``/``"none"``, ``"original"`` or ``True``/``"default"`` (see transforms).
        val_fraction: Share of cars held out for validation when there is no ``val/`` folder.
        seed: Seed of that split.
        cache: Where decoded, resized uint8 pictures are kept after their first read: ``"disk"`` (one
            file in the user's cache folder that all workers share, see ``unet_lib.data.cache``),
            ``"memory"`` (each process keeps its own copy; True means this) or ``"none"`` (False).

    Items are ``(image float [3, H, W] in [0, 1], mask int64 [H, W] with values {0, 1})``,
    or just the image for the test split. ``ids[i]`` is the id of item ``i``.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        size: tuple[int, int] | None = None,
        augment: bool | str = False,
        val_fraction: float = 0.2,
        seed: int = SPLIT_SEED,
        cache: CacheMode | bool = "none",
    ):
        if split not in SPLITS:
            raise InputError(f"split: expected one of {SPLITS}, got {split!r}")
        self.root = Path(root)
        self.split = split
        self.size = tuple(size) if size is not None else None
        self.transform = build_transforms(augment, mask_fill=0)  # _load resizes
        self._rles: dict[str, str] = {}
        self.image_dir, self.mask_dir = self._locate(split)
        self.ids = self._select_ids(split, val_fraction, seed)
        self.cache = PictureCache(
            cache, self._decode, self.source_files, len(self.ids), size=self.size, label=f"carvana-{split}"
        )

    def _locate(self, split: str) -> tuple[Path, Path | None]:
        if not self.root.is_dir():
            raise InputError(f"{self.root}: folder not found; {EXPECTED_LAYOUT}")
        if split == "test":
            folder = self.root / "test"
            if not folder.is_dir():
                raise InputError(f"{folder}: folder not found; {EXPECTED_LAYOUT}")
            return folder, None
        name = "val" if split == "val" and (self.root / "val").is_dir() else "train"
        image_dir, mask_dir = self.root / name, self.root / f"{name}_masks"
        if not image_dir.is_dir():
            raise InputError(f"{image_dir}: folder not found; {EXPECTED_LAYOUT}")
        if mask_dir.is_dir():
            self._check_pairs(image_dir, mask_dir)
            return image_dir, mask_dir
        csv_path = self.root / f"{name}_masks.csv"
        if not csv_path.is_file():
            raise InputError(f"{mask_dir}: no masks (neither this folder nor {csv_path.name}); {EXPECTED_LAYOUT}")
        self._rles = _read_rle_csv(csv_path)
        missing = sorted(set(_list_images(image_dir)) - set(self._rles))
        if missing:
            raise InputError(
                f"{csv_path}: no mask for image {image_dir / missing[0]}.jpg ({len(missing)} images without masks)"
            )
        return image_dir, None

    @staticmethod
    def _check_pairs(image_dir: Path, mask_dir: Path) -> None:
        images = set(_list_images(image_dir))
        masks = {p.stem.removesuffix("_mask") for p in mask_dir.iterdir() if p.is_file()}
        if images - masks:
            first = sorted(images - masks)[0]
            raise InputError(
                f"{image_dir / first}.jpg: image without mask (expected {mask_dir / first}_mask.gif; "
                f"{len(images - masks)} images have none)"
            )
        if masks - images:
            first = sorted(masks - images)[0]
            raise InputError(f"{mask_dir / first}_mask.gif: mask without image (expected {image_dir / first}.jpg)")

    def _select_ids(self, split: str, val_fraction: float, seed: int) -> list[str]:
        ids = _list_images(self.image_dir)
        if not ids:
            raise InputError(f"{self.image_dir}: no .jpg images; {EXPECTED_LAYOUT}")
        if split == "test" or self.image_dir.name == "val":
            return ids
        if (self.root / "val").is_dir():
            return ids  # the original layout: train/ holds only training cars
        train_ids, val_ids = split_by_car(ids, val_fraction, seed)
        return train_ids if split == "train" else val_ids

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, index: int) -> Path:
        stem = self.ids[index]
        for suffix in (".jpg", ".jpeg", ".png", ".JPG"):
            if (path := self.image_dir / f"{stem}{suffix}").is_file():
                return path
        return self.image_dir / f"{stem}.jpg"

    def mask_source(self, index: int) -> Path:
        """Where the mask of item ``index`` comes from: its mask file, or the RLE CSV."""
        stem = self.ids[index]
        if self.mask_dir is None:
            return self.root / f"{self.image_dir.name}_masks.csv"
        gif = self.mask_dir / f"{stem}_mask.gif"
        if gif.is_file():
            return gif  # the Kaggle name, found without scanning a folder of 5,088 masks (7 ms per item)
        candidates = sorted(self.mask_dir.glob(f"{stem}_mask.*"))
        return candidates[0] if candidates else gif

    def source_files(self, index: int) -> list[Path]:
        """The files item ``index`` is decoded from: its photo, and its mask file or the RLE CSV."""
        return [self.image_path(index)] + ([] if self.split == "test" else [self.mask_source(index)])

    def read_mask(self, index: int) -> np.ndarray:
        """The full-resolution mask of item ``index``: uint8 {0, 1} [H, W]."""
        if self.mask_dir is not None:
            return read_mask(self.mask_source(index))
        width, height = image_size(self.image_path(index))
        try:
            return rle_decode(self._rles[self.ids[index]], (height, width))
        except InputError as err:
            raise InputError(f"{self.mask_source(index)}: row {self.ids[index]}.jpg: {err}") from None

    def _decode(self, index: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Decoded (and, with ``size``, resized) uint8 image [3, H, W] and mask [H, W], read from the files."""
        path = self.image_path(index)
        image = read_image(path, min_size=self.size)
        mask = None
        if self.split != "test":
            mask = torch.from_numpy(self.read_mask(index))
            width, height = image_size(path)
            if tuple(mask.shape) != (height, width):
                raise InputError(
                    f"{path}: image is {width}x{height} but its mask {self.mask_source(index)} is "
                    f"{mask.shape[1]}x{mask.shape[0]}; expected the same size"
                )
        if self.size is not None:
            image, mask = resize_pair(image, mask, self.size)  # resized before caching: the cache stays small
        return image, mask

    def _load(self, index: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The uint8 image and mask before augmentation, through the cache."""
        return self.cache.get(index)

    def __getitem__(self, index: int):
        image, mask = self._load(index)
        image, mask = apply(self.transform, image, mask)
        return image if mask is None else (image, mask)
