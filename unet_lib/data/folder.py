"""Your own data: pictures and single-channel PNG masks whose pixel values are class indices.

Layout read (``root`` is e.g. ``data/shapes``)::

    images/<stem>.jpg (.jpeg, .png)      masks/<stem>.png      (255 in a mask: ignored)
    classes.txt                          (optional: line i names class i)
    val/images/..., val/masks/...        (optional; without it a seeded share is held out)

Without ``classes.txt`` the masks' values decide: only {0, 1} or only {0, 255} is binary (255 is then
the foreground), anything else has as many classes as the largest value + 1.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset, Subset
from tqdm.auto import tqdm

from unet_lib.data.cache import CacheMode, PictureCache
from unet_lib.data.io import image_size, read_class_mask, read_image
from unet_lib.data.transforms import apply, build_transforms, resize_pair
from unet_lib.errors import InputError
from unet_lib.metrics import IGNORE_INDEX

if TYPE_CHECKING:  # the config imports this package; importing it at run time would be circular
    from unet_lib.config import TrainConfig

EXPECTED_LAYOUT = """expected a folder like
  data/mine/
    images/<name>.jpg           (or .jpeg, .png)
    masks/<name>.png            (single channel: each pixel's value is its class index, 255 = ignore)
    classes.txt                 (optional: one class name per line)
    val/images/, val/masks/     (optional: the validation pictures)"""

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SPLIT_SEED = 0  # which pictures are held out when there is no val/ folder; fixed, so every run holds out the same


@dataclass(frozen=True)
class FolderClasses:
    """The classes of a folder tree.

    Args:
        names: Line i names class i (two names: a binary task, trained with one output channel).
        foreground_255: Masks hold 0/255 and no ``classes.txt`` says otherwise: 255 is the foreground.
    """

    names: tuple[str, ...]
    foreground_255: bool = False

    @property
    def binary(self) -> bool:
        """Two classes: one output channel, a binary loss and Carvana's scores."""
        return len(self.names) == 2

    def lut(self) -> torch.Tensor:
        """uint8 [256]: mask value -> class index; 255 stays ``IGNORE_INDEX`` unless it is the foreground."""
        lut = torch.arange(256, dtype=torch.uint8)
        if self.foreground_255:
            lut[255] = 1
        return lut

    def allowed(self) -> np.ndarray:
        """bool [256]: the mask values that are labels (a class index, or 255)."""
        allowed = np.zeros(256, dtype=bool)
        allowed[: len(self.names)] = True
        allowed[255] = True
        return allowed


def read_classes_file(path: Path) -> tuple[str, ...]:
    """The class names of a ``classes.txt``: one per line, trailing blank lines allowed."""
    try:
        lines = path.read_text(encoding="utf-8").rstrip().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(
            f"{path}: cannot read ({err.__class__.__name__}); expected UTF-8 text, one name a line"
        ) from None
    names = tuple(line.strip() for line in lines)
    if "" in names:
        raise InputError(f"{path}: line {names.index('') + 1} is empty; expected one class name per line")
    if len(names) < 2:
        raise InputError(f"{path}: names {len(names)} class; expected 2 or more (e.g. background and object)")
    if len(names) > 255:
        raise InputError(f"{path}: names {len(names)} classes; expected at most 255 (255 is the ignore value)")
    return names


def classes_from_counts(counts: np.ndarray) -> FolderClasses:
    """The classes that mask values imply when there is no ``classes.txt``.

    Args:
        counts: int64 [256], pixels of each mask value over the whole tree.

    Returns:
        Binary for {0, 1} (255 ignored) or {0, 255} (255 the foreground); likewise for 0/255 masks whose
        edges were smoothed (values near 128, fewer pixels than 255: the check reports them); otherwise
        one class per value up to the largest (255 ignored).
    """
    present = set(np.flatnonzero(counts).tolist())
    binary_names = ("background", "foreground")
    if present <= {0, 1, 255}:
        return FolderClasses(binary_names, foreground_255=255 in present and 1 not in present)
    edges = counts[1:255].sum()  # anti-aliased 0/255 masks: a thin band of in-between values
    if 255 in present and counts[128:255].any() and edges < counts[255]:
        return FolderClasses(binary_names, foreground_255=True)
    largest = max(present - {255})
    return FolderClasses(tuple(f"class {i}" for i in range(largest + 1)))


def list_pictures(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """``{stem: path}`` of the files in ``folder`` with one of ``suffixes`` (the first, in name order, per stem)."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else ():
        if path.is_file() and path.suffix.lower() in suffixes:
            found.setdefault(path.stem, path)
    return found


def folder_parts(root: Path) -> list[tuple[Path, Path]]:
    """``(images, masks)`` folders of a tree: the top level, then ``val/`` when it holds both."""
    parts = [(root / "images", root / "masks")]
    if (root / "val" / "images").is_dir() and (root / "val" / "masks").is_dir():
        parts.append((root / "val" / "images", root / "val" / "masks"))
    return parts


def folder_classes(root: str | Path, progress: bool = False) -> FolderClasses:
    """The classes of a folder tree: from ``classes.txt``, or else by reading every mask (see the module docstring)."""
    root = Path(root)
    if (root / "classes.txt").is_file():
        return FolderClasses(read_classes_file(root / "classes.txt"))
    masks = [p for _, mask_dir in folder_parts(root) for p in list_pictures(mask_dir, (".png",)).values()]
    if not masks:
        raise InputError(f"{root / 'masks'}: no .png masks; {EXPECTED_LAYOUT}")
    counts = np.zeros(256, dtype=np.int64)
    for path in tqdm(masks, desc="reading masks for the classes", leave=False, disable=not progress):
        counts += np.bincount(read_class_mask(path)[0].ravel(), minlength=256)
    return classes_from_counts(counts)


class FolderDataset(Dataset):
    """Pictures of your own with their class masks, resized (and augmented) for training.

    Args:
        root: The folder (see the module docstring for the layout).
        split: ``"train"`` or ``"val"``.
        size: ``(H, W)`` to resize to, or None for each file's own size.
        augment: ``False``/``"none"``, ``"flip"``, ``"original"`` or ``True``/``"default"`` (see transforms).
        val_fraction: Share of the pictures held out for validation when there is no ``val/`` folder.
        seed: Seed of that split.
        cache: ``"disk"``, ``"memory"`` or ``"none"``: where decoded, resized pictures are kept (see
            ``unet_lib.data.cache``); the masks are cached as stored, so a new ``classes.txt`` needs no rebuild.
        classes: The tree's classes, when already known (by ``folder_classes`` or ``check-data``).

    Items are ``(image float [3, H, W] in [0, 1], mask int64 [H, W])`` with class indices and 255 for
    ignored pixels. ``ids[i]`` is the file stem of item ``i``.
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
        classes: FolderClasses | None = None,
    ):
        if split not in ("train", "val"):
            raise InputError(f"split: expected 'train' or 'val' for a folder dataset, got {split!r}")
        self.root = Path(root)
        if not (self.root / "images").is_dir():
            raise InputError(f"{self.root / 'images'}: folder not found; {EXPECTED_LAYOUT}")
        self.split = split
        self.size = tuple(size) if size is not None else None
        self.classes = classes or folder_classes(self.root)
        parts = folder_parts(self.root)
        image_dir, mask_dir = parts[1] if split == "val" and len(parts) > 1 else parts[0]
        self.images, self.masks = self._pairs(image_dir, mask_dir)
        self.ids = sorted(self.images)
        if len(parts) == 1:  # no val/ folder: hold out a seeded share
            shuffled = list(self.ids)
            random.Random(seed).shuffle(shuffled)
            num_val = max(1, round(len(shuffled) * val_fraction)) if len(shuffled) > 1 else 0
            held_out = set(shuffled[:num_val])
            self.ids = [i for i in self.ids if (i in held_out) == (split == "val")]
        self.lut = self.classes.lut()
        self.transform = build_transforms(augment, mask_fill=0 if self.classes.binary else IGNORE_INDEX)
        self.cache = PictureCache(
            cache, self._decode, self.source_files, len(self.ids), size=self.size, label=f"folder-{split}"
        )

    @staticmethod
    def _pairs(image_dir: Path, mask_dir: Path) -> tuple[dict[str, Path], dict[str, Path]]:
        images, masks = list_pictures(image_dir, IMAGE_SUFFIXES), list_pictures(mask_dir, (".png",))
        if not images:
            raise InputError(f"{image_dir}: no .jpg, .jpeg or .png pictures; {EXPECTED_LAYOUT}")
        if missing := sorted(set(images) - set(masks)):
            raise InputError(
                f"{images[missing[0]]}: image without mask (expected {mask_dir / missing[0]}.png; "
                f"{len(missing)} images have none)"
            )
        if orphans := sorted(set(masks) - set(images)):
            raise InputError(f"{masks[orphans[0]]}: mask without image (expected {image_dir / orphans[0]}.jpg or .png)")
        return images, masks

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, index: int) -> Path:
        return self.images[self.ids[index]]

    def mask_path(self, index: int) -> Path:
        return self.masks[self.ids[index]]

    def source_files(self, index: int) -> list[Path]:
        """The files item ``index`` is decoded from: its picture and its mask."""
        return [self.image_path(index), self.mask_path(index)]

    def read_raw_mask(self, index: int) -> torch.Tensor:
        """The mask of item ``index`` as stored (uint8 [H, W]), checked against the classes."""
        path = self.mask_path(index)
        array, _ = read_class_mask(path)
        outside = ~self.classes.allowed()[array]
        if outside.any():
            values = np.unique(array[outside])
            raise InputError(
                f"{path}: {int(outside.sum())} pixels hold values outside the {len(self.classes.names)} classes "
                f"({', '.join(map(str, values[:6].tolist()))}); run python -m unet_lib check-data {self.root}"
            )
        return torch.from_numpy(array)

    def read_mask(self, index: int) -> np.ndarray:
        """The full-size mask of item ``index``: uint8 [H, W] of class indices, 255 where ignored."""
        return self.lut[self.read_raw_mask(index).long()].numpy()

    def _decode(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoded (and, with ``size``, resized) uint8 image [3, H, W] and mask [H, W] as stored, read from the files."""
        path = self.image_path(index)
        image = read_image(path, min_size=self.size)
        mask = self.read_raw_mask(index)
        width, height = image_size(path)
        if tuple(mask.shape) != (height, width):
            raise InputError(
                f"{path}: image is {width}x{height} but its mask {self.mask_path(index)} is "
                f"{mask.shape[1]}x{mask.shape[0]}; expected the same size"
            )
        if self.size is not None:
            image, mask = resize_pair(image, mask, self.size)  # resized before caching: the cache stays small
        return image, mask

    def _load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The uint8 image and mask (as stored) before augmentation, through the cache."""
        return self.cache.get(index)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self._load(index)
        return apply(self.transform, image, self.lut[mask.long()])  # mask values -> class indices


def fill_classes(config: TrainConfig, dataset: Dataset) -> TrainConfig:
    """For folder data, ``config`` with the data's class names and a loss that fits their number.

    Two classes train one output channel with ``config.loss`` (BCE or BCE + Dice), more train with
    cross-entropy. Other configs, and folder configs that already name their classes, are returned as
    they are (a different number of classes in the data is an error).
    """
    if config.dataset != "folder":
        return config
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    names = dataset.classes.names
    if config.class_names:
        if len(config.class_names) != len(names):
            raise InputError(
                f"{config.data_dir}: holds {len(names)} classes ({', '.join(names)}), but the config names "
                f"{len(config.class_names)} ({', '.join(config.class_names)})"
            )
        return config
    loss = config.loss if (len(names) == 2) == (config.loss != "ce") else ("bce_dice" if len(names) == 2 else "ce")
    return dataclasses.replace(config, class_names=tuple(names), loss=loss)
