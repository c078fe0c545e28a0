"""Your own data: pictures and single-channel PNG masks whose pixel values are class indices (255: ignored)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from unet_lib.config import TrainConfig
from unet_lib.data.dataset import OUTSIDE, PairDataset, hold_out, train_or_val, value_lut, value_table
from unet_lib.data.io import read_class_mask
from unet_lib.data.pairs import IMAGE_SUFFIXES, MASK_SUFFIXES, Listing, by_stem, match
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
    """The classes of a folder tree: ``names[i]`` names class ``i``. ``foreground_255``: the masks hold 0/255 and
    no ``classes.txt`` says otherwise, so 255 is the foreground."""

    names: tuple[str, ...]
    foreground_255: bool = False

    @property
    def binary(self) -> bool:
        """Two classes: one output channel, a binary loss and Carvana's scores."""
        return len(self.names) == 2

    def table(self) -> np.ndarray:
        """check-data's mask value -> class table: the class indices and 255 are labels."""
        return value_table(value_lut(self.foreground_255), [*range(len(self.names)), 255])


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
    """The classes that the masks' value ``counts`` (int64 [256]) imply: binary for {0, 1} (255 ignored) or {0, 255}
    (255 the foreground), and for 0/255 masks with smoothed edges (values near 128, fewer pixels than 255:
    check-data reports them); otherwise one class per value up to the largest (255 ignored)."""
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
    """``images/`` with ``masks/``, and the same under ``val/`` (``mode`` is Cityscapes')."""
    if not (root / "images").is_dir():
        raise InputError(f"{root / 'images'}: folder not found; {EXPECTED_LAYOUT}")
    listing, where, parts = Listing(), [], {"train": (root / "images", root / "masks")}
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
        where.append(f"{len(found)} in {image_dir.relative_to(root)}/")
    held_out = "" if "val" in parts else "; no val/ folder: a seeded share is held out for validation"
    listing.where = ", ".join(where) + held_out
    return listing


def folder_classes(root: str | Path, counts: np.ndarray | None = None, progress: bool = False) -> FolderClasses:
    """The classes of a folder tree: from ``classes.txt``, or else the masks' value ``counts`` (None: read them)."""
    root = Path(root)
    if (root / "classes.txt").is_file():
        return FolderClasses(read_classes_file(root / "classes.txt"))
    if counts is not None:
        return classes_from_counts(counts)
    masks = [pair.mask for pair in list_pairs(root).pairs if pair.mask.suffix.lower() == ".png"]
    if not masks:
        raise InputError(f"{root / 'masks'}: no .png masks; {EXPECTED_LAYOUT}")
    counts = np.zeros(256, dtype=np.int64)
    for path in tqdm(masks, desc="reading masks for the classes", leave=False, disable=not show_progress(progress)):
        counts += np.bincount(read_class_mask(path)[0].ravel(), minlength=256)
    return classes_from_counts(counts)


class FolderDataset(PairDataset):
    """Pictures of your own with their class masks (items: see :class:`PairDataset`; ids are the files' stems).

    Args:
        root: The folder (``EXPECTED_LAYOUT``).
        split: ``"train"`` or ``"val"``.
        size: ``(H, W)`` to resize to, or None for each file's own size.
        augment: ``"none"``, ``"flip"``, ``"original"`` or ``"default"`` (see ``build_transforms``).
        val_fraction, seed: Without a ``val/`` folder, the share of pictures held out for validation, and which.
        classes: The tree's classes when already known (check-data found them); None: read them here.
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
        listing = list_pairs(self.root)
        listing.raise_first(self.root)
        if not listing.parts["train"]:
            raise InputError(f"{self.root / 'images'}: no .jpg, .jpeg or .png pictures; {EXPECTED_LAYOUT}")
        self.classes = classes or folder_classes(self.root)
        self.lut = value_lut(self.classes.foreground_255)  # 255 stays ignored unless it is the foreground
        pairs = train_or_val(listing, split, lambda ids: hold_out(ids, val_fraction, seed))
        super().__init__(pairs, size, build_transforms(augment, mask_fill=0 if self.classes.binary else IGNORE_INDEX))

    @classmethod
    def from_config(cls, config: TrainConfig, split: str, augment: str = "none", known=None) -> FolderDataset:
        """The ``split`` a config describes, at its size; ``known``: the classes, if check-data found them."""
        return cls(config.data_dir, split, config.image_size, augment, config.val_fraction, known)

    @staticmethod
    def value_tables(report) -> list[np.ndarray]:
        """check-data: one mask value -> class table, from ``classes.txt`` or the values; sets ``report.classes``."""
        try:
            report.classes = folder_classes(report.root, report.value_counts)
        except InputError as err:  # a bad classes.txt: one more problem, and the values decide
            report.problems.append(str(err))
            report.classes = classes_from_counts(report.value_counts)
        return [report.classes.table()]

    @classmethod
    def configure(cls, config: TrainConfig, dataset: FolderDataset) -> TrainConfig:
        """``config`` with the data's class names and a loss that fits: two classes train one output channel with
        ``config.loss`` (BCE or BCE + Dice), more cross-entropy. A config naming as many classes is kept as it is."""
        names = dataset.classes.names
        if config.class_names:
            if len(config.class_names) != len(names):
                raise InputError(
                    f"{config.data_dir}: holds {len(names)} classes ({', '.join(names)}), but the config names "
                    f"{len(config.class_names)} ({', '.join(config.class_names)})"
                )
            return config
        binary = dataset.classes.binary
        loss = config.loss if binary == (config.loss != "ce") else ("bce_dice" if binary else "ce")
        return replace(config, class_names=tuple(names), loss=loss)

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
