"""What the three datasets share: (picture, mask) pairs, read and checked, resized, then transformed."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from unet_lib.config import TrainConfig
from unet_lib.data.io import image_size, read_image
from unet_lib.data.pairs import DEFAULT_LAYOUT, Layout, Listing, Pair
from unet_lib.data.transforms import apply, random_crop, resize_pair
from unet_lib.errors import InputError

OUTSIDE = -1  # in check-data's mask value -> class tables: a value that is no label at all


def value_lut(foreground_255: bool = False) -> torch.Tensor:
    """uint8 [256]: mask value -> class index; each value is its own class, and 255 is ignored or the foreground (1)."""
    lut = torch.arange(256, dtype=torch.uint8)
    if foreground_255:
        lut[255] = 1
    return lut


def value_table(lut: torch.Tensor, labels: list[int]) -> np.ndarray:
    """check-data's int64 [256] table: ``lut``'s class for each value in ``labels``, ``OUTSIDE`` for the others."""
    table = np.full(256, OUTSIDE, dtype=np.int64)
    table[labels] = lut.numpy()[labels]
    return table


def hold_out(ids: list[str], val_fraction: float, seed: int) -> set[str]:
    """The ids a seeded shuffle holds out for validation: ``val_fraction`` of them, at least one if there are two."""
    shuffled = list(ids)
    random.Random(seed).shuffle(shuffled)  # its own generator: the global random state plays no part
    count = max(1, round(len(shuffled) * val_fraction)) if len(shuffled) > 1 else 0
    return set(shuffled[:count])


def train_or_val(listing: Listing, split: str, held_out: Callable[[list[str]], set[str]]) -> list[Pair]:
    """The pairs of ``split``: the val/ folder's, or else the training pairs whose ids ``held_out`` picks (or not)."""
    if "val" in listing.parts:
        return listing.parts[split]
    pairs = listing.parts["train"]
    val_ids = held_out([pair.id for pair in pairs])
    return [pair for pair in pairs if (pair.id in val_ids) == (split == "val")]


class PairDataset(Dataset):
    """Pictures with their masks (``pairs``), resized to ``size`` ``(H, W)`` (None: each file's own) and run through
    ``transform``: the skeleton of every dataset here, which says only how it finds its pairs, which mask values are
    labels (``check_mask``) and which class each one is (``lut``). Items are ``(image float [3, H, W] in [0, 1],
    mask int64 [H, W] of class indices, 255 where ignored)``, or just the image when there is no mask."""

    # What each dataset says about itself, for everything that asks (unet_lib.data.DATASETS).
    name: ClassVar[str]
    title: ClassVar[str]  # as a sentence names it
    class_names: ClassVar[tuple[str, ...]]  # empty: they come from the data
    layout: ClassVar[str]  # the tree it expects, shown in its errors
    scores: ClassVar[str]  # how evaluate scores it
    split_predictions: ClassVar[str]  # what predict --data writes for it
    cpu_recipe: ClassVar[str]  # the recipe to point to when a run would take hours on a CPU
    background: ClassVar[int | None]  # the class left unpainted in overlays (None: every class is painted)
    markers: ClassVar[tuple[str, ...]]  # a tree with one of these folders has this dataset's layout
    folders_named: ClassVar[bool] = False  # --images, --masks, ... say where its pictures and masks are
    mismatch: ClassVar[str] = "{image}: image is {w}x{h} but its mask {mask} is {mw}x{mh}; expected the same size"
    # Mask value -> class index, used after decode (so after a picture cache: a folder's classes may change).
    lut: torch.Tensor = value_lut()
    crop: tuple[int, int] | None = None  # training on crops: a random (H, W) window of each item (build_datasets)

    def __init__(self, pairs: list[Pair], size: tuple[int, int] | None, transform: v2.Compose):
        self.pairs, self.ids = pairs, [pair.id for pair in pairs]
        self.size = tuple(size) if size is not None else None
        self.transform = transform
        self.load = self.decode  # a picture cache may take its place (unet_lib.cli.cache)

    @classmethod
    def looks_like(cls, root: Path, layout: Layout = DEFAULT_LAYOUT) -> bool:
        """Whether ``root`` has this dataset's layout (``layout``: where a folder tree keeps its pictures)."""
        return any((root / marker).is_dir() for marker in cls.markers)

    @classmethod
    def configure(cls, config: TrainConfig, dataset: Dataset) -> TrainConfig:
        """``config`` as it is: this dataset names its own classes."""
        return config

    def __len__(self) -> int:
        return len(self.pairs)

    def image_path(self, index: int) -> Path:
        return self.pairs[index].image

    def mask_path(self, index: int) -> Path | None:
        """The mask file of item ``index`` (for Carvana's RLE rows: the CSV; None without a mask)."""
        return self.pairs[index].mask

    def source_files(self, index: int) -> list[Path]:
        """The files item ``index`` is decoded from (what a picture cache watches)."""
        return [path for path in (self.image_path(index), self.mask_path(index)) if path is not None]

    def check_mask(self, mask: np.ndarray, path: Path) -> np.ndarray:
        """``mask`` (uint8 [H, W]) when its values are labels of this dataset; a one-line error otherwise."""
        return mask

    def read_raw_mask(self, index: int) -> torch.Tensor:
        """The mask of item ``index`` as stored (uint8 [H, W]), checked: what ``decode`` returns."""
        pair = self.pairs[index]
        shape = image_size(pair.image)[::-1] if pair.rle is not None else None  # an RLE row has the picture's size
        mask, _ = pair.read_mask(shape)
        return torch.from_numpy(self.check_mask(mask, pair.mask))

    def read_mask(self, index: int) -> np.ndarray:
        """The full-size mask of item ``index``: uint8 [H, W] of class indices, 255 where ignored."""
        return self.lut[self.read_raw_mask(index).long()].numpy()

    def decode(self, index: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Item ``index`` from its files: uint8 image [3, H, W] and raw mask [H, W] (or None), resized to ``size``."""
        path = self.image_path(index)
        image = read_image(path, min_size=self.size)  # a JPEG may be decoded at a smaller scale: compare headers
        mask = None if self.mask_path(index) is None else self.read_raw_mask(index)
        if mask is not None and (size := image_size(path)) != (mask.shape[1], mask.shape[0]):
            (w, h), (mh, mw) = size, mask.shape
            raise InputError(self.mismatch.format(image=path, w=w, h=h, mask=self.mask_path(index), mw=mw, mh=mh))
        if self.size is not None:
            image, mask = resize_pair(image, mask, self.size)  # resized before any cache: it stays small
        return image, mask

    def __getitem__(self, index: int):
        image, mask = self.load(index)
        if self.crop is not None:  # before the augmentations, which then see crop-sized pictures
            image, mask = random_crop(image, mask, self.crop, self.image_path(index))
        if mask is None:
            return apply(self.transform, image, None)[0]
        return apply(self.transform, image, self.lut[mask.long()])  # mask values -> class indices
