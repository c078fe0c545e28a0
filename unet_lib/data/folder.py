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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unet_lib.config import TrainConfig
from unet_lib.data.dataset import PairDataset, hold_out, value_lut
from unet_lib.data.io import read_class_mask
from unet_lib.data.pairs import IMAGE_SUFFIXES, MASK_SUFFIXES, OUTSIDE, Listing, by_stem, match
from unet_lib.data.transforms import build_transforms
from unet_lib.errors import InputError
from unet_lib.metrics import IGNORE_INDEX
from unet_lib.runtime import show_progress

EXPECTED_LAYOUT = """expected a folder like
  data/mine/
    images/<name>.jpg           (or .jpeg, .png)
    masks/<name>.png            (single channel: each pixel's value is its class index, 255 = ignore)
    classes.txt                 (optional: one class name per line)
    val/images/, val/masks/     (optional: the validation pictures)"""

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

    def table(self) -> np.ndarray:
        """int64 [256]: mask value -> class index, 255 (ignored) or ``OUTSIDE`` for a value that is no label."""
        table = np.full(256, OUTSIDE, dtype=np.int64)
        table[: len(self.names)] = np.arange(len(self.names))
        table[255] = 1 if self.foreground_255 else IGNORE_INDEX
        return table


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


def list_pairs(root: Path, mode: str = "fine") -> Listing:
    """``images/<stem>.jpg|png`` with ``masks/<stem>.png``, and the same under ``val/`` (``mode`` is Cityscapes')."""
    if not (root / "images").is_dir():
        raise InputError(f"{root / 'images'}: folder not found; {EXPECTED_LAYOUT}")
    listing, parts = Listing(), {"train": (root / "images", root / "masks")}
    problems, val_images, val_masks = listing.problems, root / "val" / "images", root / "val" / "masks"
    if val_images.is_dir() and val_masks.is_dir():
        parts["val"] = (val_images, val_masks)
    elif val_images.is_dir() or val_masks.is_dir():
        alone = val_images if val_images.is_dir() else val_masks
        problems.append(f"{alone}: found without its partner folder; expected val/images and val/masks")
    for name, (image_dir, mask_dir) in parts.items():
        if not mask_dir.is_dir():
            problems.append(f"{mask_dir}: folder not found; expected a mask <name>.png for each picture in {image_dir}")
        images = by_stem(image_dir, IMAGE_SUFFIXES, problems)
        masks = by_stem(mask_dir, MASK_SUFFIXES, problems)
        for stem, mask in sorted(masks.items()):
            if mask.suffix.lower() != ".png" and stem in images:
                del masks[stem], images[stem]  # one problem for the pair
                problems.append(
                    f"{mask}: not a PNG; expected {mask_dir / stem}.png (JPEG and other lossy formats change the labels)"
                )
        found, unpaired = match(
            images, masks, lambda s, d=mask_dir: f"{d / s}.png", lambda s, d=image_dir: f"{d / s}.jpg"
        )
        listing.parts[name] = found
        problems += unpaired
    counts = [len(pairs) for pairs in listing.parts.values()]
    listing.where = f"{counts[0]} in images/" + (f", {counts[1]} in val/images/" if len(counts) > 1 else "")
    if len(counts) == 1:
        listing.where += "; no val/ folder: a seeded share is held out for validation"
    return listing


def folder_classes(root: str | Path, progress: bool = False) -> FolderClasses:
    """The classes of a folder tree: from ``classes.txt``, or else by reading every mask (see the module docstring)."""
    from tqdm.auto import tqdm

    root = Path(root)
    if (root / "classes.txt").is_file():
        return FolderClasses(read_classes_file(root / "classes.txt"))
    masks = [pair.mask for pair in list_pairs(root).pairs if pair.mask.suffix.lower() == ".png"]
    if not masks:
        raise InputError(f"{root / 'masks'}: no .png masks; {EXPECTED_LAYOUT}")
    counts = np.zeros(256, dtype=np.int64)
    for path in tqdm(masks, desc="reading masks for the classes", leave=False, disable=not show_progress(progress)):
        counts += np.bincount(read_class_mask(path)[0].ravel(), minlength=256)
    return classes_from_counts(counts)


class FolderDataset(PairDataset):
    """Pictures of your own with their class masks, resized (and augmented) for training.

    Args:
        root: The folder (see the module docstring for the layout).
        split: ``"train"`` or ``"val"``.
        size: ``(H, W)`` to resize to, or None for each file's own size.
        augment: ``False``/``"none"``, ``"flip"``, ``"original"`` or ``True``/``"default"`` (see transforms).
        val_fraction: Share of the pictures held out for validation when there is no ``val/`` folder.
        classes: The tree's classes, when already known (by ``folder_classes`` or ``check-data``).
        seed: Seed of the held-out share.

    Items are ``(image float [3, H, W] in [0, 1], mask int64 [H, W])`` with class indices and 255 for
    ignored pixels. ``ids[i]`` is the file stem of item ``i``.
    """

    name = "folder"
    title = "folder"
    class_names = ()  # from the data: classes.txt, or the masks' values
    layout = EXPECTED_LAYOUT
    scores = "by classes"  # evaluate: two classes as Carvana, more by their IoU (evaluation.py)
    split_predictions = "masks"  # predict --data: a mask and an overlay per picture
    background = 0  # class 0 is left unpainted in overlays
    markers = ("images",)  # a folder tree
    list_pairs = staticmethod(list_pairs)

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        size: tuple[int, int] | None = None,
        augment: bool | str = False,
        val_fraction: float = 0.2,
        classes: FolderClasses | None = None,
        seed: int = SPLIT_SEED,
    ):
        if split not in ("train", "val"):
            raise InputError(f"split: expected 'train' or 'val' for a folder dataset, got {split!r}")
        self.root, self.split = Path(root), split
        if not (self.root / "images").is_dir():
            raise InputError(f"{self.root / 'images'}: folder not found; {EXPECTED_LAYOUT}")
        listing = list_pairs(self.root)
        listing.raise_first(self.root)
        if not listing.parts["train"]:
            raise InputError(f"{self.root / 'images'}: no .jpg, .jpeg or .png pictures; {EXPECTED_LAYOUT}")
        self.classes = classes or folder_classes(self.root)
        self.lut = value_lut(self.classes.foreground_255)  # 255 stays ignored unless it is the foreground
        pairs = listing.parts["val" if split == "val" and "val" in listing.parts else "train"]
        if "val" not in listing.parts:  # no val/ folder: hold out a seeded share
            held_out = hold_out([pair.id for pair in pairs], val_fraction, seed)
            pairs = [pair for pair in pairs if (pair.id in held_out) == (split == "val")]
        super().__init__(pairs, size, build_transforms(augment, mask_fill=0 if self.classes.binary else IGNORE_INDEX))

    @classmethod
    def from_config(
        cls, config: TrainConfig, split: str, augment: str = "none", known: FolderClasses | None = None
    ) -> FolderDataset:
        """The ``split`` a config describes, at its size; ``known``: the classes, if check-data found them."""
        return cls(config.data_dir, split, config.image_size, augment, config.val_fraction, known)

    @staticmethod
    def value_tables(root: Path, counts: np.ndarray, report) -> list[np.ndarray]:
        """check-data: one mask value -> class table, from ``classes.txt`` or the values; sets ``report.classes``."""
        names_file = root / "classes.txt"
        try:
            report.classes = FolderClasses(read_classes_file(names_file)) if names_file.is_file() else None
        except InputError as err:
            report.problems.append(str(err))
        report.classes = report.classes or classes_from_counts(counts)
        return [report.classes.table()]

    @classmethod
    def configure(cls, config: TrainConfig, dataset: FolderDataset) -> TrainConfig:
        """``config`` with the data's class names and a loss that fits their number.

        Two classes train one output channel with ``config.loss`` (BCE or BCE + Dice), more train with
        cross-entropy. A config that already names its classes is returned as it is (a different
        number of classes in the data is an error).
        """
        names = dataset.classes.names
        if config.class_names:
            if len(config.class_names) != len(names):
                raise InputError(
                    f"{config.data_dir}: holds {len(names)} classes ({', '.join(names)}), but the config names "
                    f"{len(config.class_names)} ({', '.join(config.class_names)})"
                )
            return config
        binary = len(names) == 2
        loss = config.loss if binary == (config.loss != "ce") else ("bce_dice" if binary else "ce")
        return dataclasses.replace(config, class_names=tuple(names), loss=loss)

    def check_mask(self, mask: np.ndarray, path: Path) -> np.ndarray:
        """``mask`` when every value is a class index or 255; a one-line error naming ``path`` otherwise."""
        outside = (self.classes.table() == OUTSIDE)[mask]  # bool [H, W]
        if outside.any():
            values = np.unique(mask[outside])
            raise InputError(
                f"{path}: {int(outside.sum())} pixels hold values outside the {len(self.classes.names)} classes "
                f"({', '.join(map(str, values[:6].tolist()))}); run python -m unet_lib check-data {self.root}"
            )
        return mask
