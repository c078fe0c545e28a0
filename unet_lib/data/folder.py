"""Your own data: pictures and PNG masks of class indices (255: ignored) or colours, in any two folders."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from unet_lib.config import TrainConfig
from unet_lib.data.dataset import OUTSIDE, PairDataset, hold_out, train_or_val, value_table
from unet_lib.data.io import Colors
from unet_lib.data.pairs import (
    DEFAULT_LAYOUT,
    IMAGE_SUFFIXES,
    MASK_SUFFIXES,
    Layout,
    Listing,
    by_stem,
    mask_stem,
    match,
)
from unet_lib.data.transforms import build_transforms
from unet_lib.errors import InputError
from unet_lib.metrics import IGNORE_INDEX
from unet_lib.runtime import show_progress

EXPECTED_LAYOUT = """expected a folder like
  data/mine/
    images/<name>.jpg           (or .jpeg, .png; grey and RGBA pictures are read as RGB)
    masks/<name>.png            (or <name>_mask.png, <name>_L.png: each pixel's value is its class index, a
                                 palette PNG's index, or a colour listed in classes.txt; 255 = ignored)
    classes.txt                 (optional: one class name per line, or "name r g b" for colour masks)
    val/images/, val/masks/     (optional: the validation pictures; else a seeded share is held out)
other folder names: --images DIR --masks DIR [--val-images DIR --val-masks DIR], relative to the
tree; a void value other than 255: --ignore-index N"""

SPLIT_SEED = 0  # which pictures are held out when there is no val/ folder; fixed, so every run holds out the same


@dataclass(frozen=True)
class FolderClasses:
    """The classes of a folder tree: ``names[i]`` names class ``i``, stored in the masks as ``values[i]``.
    ``foreground_255``: the masks hold 0/255 and no ``classes.txt`` says otherwise, so 255 is the foreground."""

    names: tuple[str, ...]
    foreground_255: bool = False
    colors: Colors | None = None  # classes.txt's colour table (void included): colour masks are read through it
    void: int | None = None  # --ignore-index: the value read as 255 (ignored); the class it names is not trained

    @property
    def binary(self) -> bool:
        """Two classes: one output channel, a binary loss and Carvana's scores."""
        return len(self.names) == 2

    @property
    def values(self) -> list[int]:
        """The mask value of each class: 0, 1, ... skipping the void value (0 and 255 for a 255 foreground)."""
        if self.foreground_255:
            return [0, 255]
        return [v for v in range(len(self.names) + 1) if v != self.void][: len(self.names)]

    def lut(self) -> torch.Tensor:
        """uint8 [256]: mask value -> class index (the void value and 255: ``IGNORE_INDEX``)."""
        lut = torch.arange(256, dtype=torch.uint8)
        lut[self.values] = torch.arange(len(self.names), dtype=torch.uint8)
        if self.void is not None:
            lut[self.void] = IGNORE_INDEX
        return lut

    def table(self) -> np.ndarray:
        """check-data's mask value -> class table: the classes' values, 255 and the void value are labels."""
        return value_table(self.lut(), [*self.values, 255, *([] if self.void is None else [self.void])])


def read_classes_file(path: Path, void: int | None = None) -> FolderClasses:
    """The classes of a ``classes.txt``: one name per line, or ``name r g b`` lines (a colour table); trailing blank
    lines allowed. The line of value ``void`` (counted from 0), when there is one, names no trained class."""
    try:
        lines = path.read_text(encoding="utf-8").rstrip().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(
            f"{path}: cannot read ({err.__class__.__name__}); expected UTF-8 text, one name a line"
        ) from None
    names, colors = [], []
    for number, line in enumerate(lines, 1):
        words = line.split()
        if not words:
            raise InputError(f"{path}: line {number} is empty; expected one class name per line")
        rgb = words[-3:] if len(words) >= 4 and all(w.isdigit() for w in words[-3:]) else None
        if rgb is not None and max(map(int, rgb)) > 255:
            raise InputError(f"{path}: line {number}: colour {' '.join(rgb)}; expected r g b values 0..255")
        if (rgb is None) != (not colors) and number > 1:
            raise InputError(f"{path}: line {number}: expected every line as 'name' or every line as 'name r g b'")
        names.append(" ".join(words[:-3]) if rgb else line.strip())
        colors += [tuple(map(int, rgb))] if rgb else []
    if void is not None and void < len(names):
        del names[void]
    if len(names) < 2:
        raise InputError(f"{path}: names {len(names)} class; expected 2 or more (e.g. background and object)")
    if len(names) > 254:
        raise InputError(f"{path}: names {len(names)} classes; expected at most 254 (255 is the ignore value)")
    return FolderClasses(tuple(names), colors=tuple(colors) or None, void=void)


def classes_from_counts(counts: np.ndarray, void: int | None = None) -> FolderClasses:
    """The classes that the masks' value ``counts`` (int64 [256]) imply: binary for {0, 1} (255 ignored) or {0, 255}
    (255 the foreground), and for 0/255 masks with smoothed edges (values near 128, fewer pixels than 255:
    check-data reports them); otherwise one class per value up to the largest (255 and ``void`` ignored)."""
    counts = counts.copy()
    if void is not None:
        counts[void] = 0  # ignored, like 255: it implies no class
    present = set(np.flatnonzero(counts).tolist())
    binary_names = ("background", "foreground")
    if present <= {0, 1, 255}:
        return FolderClasses(binary_names, foreground_255=255 in present and 1 not in present, void=void)
    edges = counts[1:255].sum()  # anti-aliased 0/255 masks: a thin band of in-between values
    if 255 in present and counts[128:255].any() and edges < counts[255]:
        return FolderClasses(binary_names, foreground_255=True, void=void)
    largest = max(present - {255})
    return FolderClasses(tuple(f"class {i}" for i in range(largest + 1) if i != void), void=void)


def table_colors(root: Path) -> Colors | None:
    """The colour table of ``root/classes.txt`` (lines ``name r g b``); None without one, or when it cannot be read
    (check-data reports why, as it reads the classes)."""
    try:
        return read_classes_file(root / "classes.txt").colors if (root / "classes.txt").is_file() else None
    except InputError:
        return None


def list_pairs(root: Path, layout: Layout = DEFAULT_LAYOUT) -> Listing:
    """The pictures of ``layout.images`` with their masks in ``layout.masks`` (paired by name, see ``mask_stem``),
    and the same for the validation folders; both may be one folder (``x.png`` beside ``x_mask.png``)."""
    # A tree of validation (or test) pictures only, named by --val-images: something to evaluate, not to train on.
    only_val = not (root / layout.images).is_dir() and (root / layout.val_images).is_dir() and not layout.default_val
    if not (root / layout.images).is_dir() and not only_val:
        raise InputError(f"{root / layout.images}: folder not found; {EXPECTED_LAYOUT}")
    listing, where, parts = Listing(), [], {} if only_val else {"train": (root / layout.images, root / layout.masks)}
    listing.parts["train"] = []
    problems, val_images, val_masks = listing.problems, root / layout.val_images, root / layout.val_masks
    if val_images.is_dir() and val_masks.is_dir():
        parts["val"] = (val_images, val_masks)
    elif val_images.is_dir() or val_masks.is_dir():
        alone, other = (val_images, val_masks) if val_images.is_dir() else (val_masks, val_images)
        problems.append(f"{alone}: found without its partner folder; expected {other} too")
    elif not layout.default_val:
        problems.append(f"{val_images}: folder not found (--val-images and --val-masks: relative to {root})")
    colors = table_colors(root)
    for name, (image_dir, mask_dir) in parts.items():
        if not mask_dir.is_dir():
            problems.append(f"{mask_dir}: folder not found; expected a mask <name>.png for each picture in {image_dir}")
        same = image_dir == mask_dir  # x.png beside x_mask.png: a file is a mask when its name says so
        images = by_stem(
            image_dir, IMAGE_SUFFIXES, problems, keep=lambda p, same=same: not same or mask_stem(p) == p.stem
        )
        masks = by_stem(
            mask_dir, MASK_SUFFIXES, problems, mask_stem, keep=lambda p, same=same: not same or mask_stem(p) != p.stem
        )
        for stem, mask in sorted(masks.items()):
            if mask.suffix.lower() != ".png" and stem in images:
                del masks[stem], images[stem]  # one problem for the pair
                problems.append(
                    f"{mask}: not a PNG; expected {mask.with_suffix('.png')} (JPEG and other lossy formats change the labels)"
                )
        found, unpaired = match(
            images, masks, lambda s, d=mask_dir: f"{d / s}.png", lambda s, d=image_dir: f"{d / s}.jpg"
        )
        listing.parts[name] = [dataclasses.replace(pair, colors=colors) for pair in found]
        problems += unpaired
        where.append(f"{len(found)} in {image_dir.relative_to(root)}/")
    held_out = "" if "val" in parts else "; no validation folder: a seeded share is held out for validation"
    listing.where = ", ".join(where) + held_out
    return listing


def folder_classes(
    root: str | Path, counts: np.ndarray | None = None, progress: bool = False, layout: Layout = DEFAULT_LAYOUT
) -> FolderClasses:
    """The classes of a folder tree: from ``classes.txt``, or else the masks' value ``counts`` (None: read them)."""
    root = Path(root)
    if (root / "classes.txt").is_file():
        return read_classes_file(root / "classes.txt", layout.ignore_index)
    if counts is None:
        pairs = [pair for pair in list_pairs(root, layout).pairs if pair.mask.suffix.lower() == ".png"]
        if not pairs:
            raise InputError(f"{root / layout.masks}: no .png masks; {EXPECTED_LAYOUT}")
        counts = np.zeros(256, dtype=np.int64)
        for pair in tqdm(pairs, desc="reading masks for the classes", leave=False, disable=not show_progress(progress)):
            counts += np.bincount(pair.read_mask()[0].ravel(), minlength=256)
    return classes_from_counts(counts, layout.ignore_index)


PICTURE_FOLDERS = ("images", "image", "imgs", "img", "pictures", "photos")  # names datasets give their folders
MASK_FOLDERS = ("masks", "mask", "labels", "label", "annotations", "annotation", "annot", "gt", "ground_truth")
MASK_FOLDER_ENDINGS = ("annot", "_annot", "_masks", "_mask", "_labels", "_label", "_gt", "labels", "masks")
VAL_FOLDERS = ("val", "valid", "validation")


def suggest_layout(root: Path) -> str | None:
    """The ``--images``/``--masks`` (and ``--val-images``/``--val-masks``) flags that would read ``root``, from the
    names datasets give their folders (``train/`` + ``trainannot/``, ``image/`` + ``label/``...) and checked by a
    shared file name; None when no pair of folders fits."""
    folders = {path.name: path for path in sorted(root.iterdir()) if path.is_dir()} if root.is_dir() else {}
    found = {}
    for name, path in folders.items():
        names = [name + ending for ending in MASK_FOLDER_ENDINGS] + list(MASK_FOLDERS * (name in PICTURE_FOLDERS))
        pictures = {p.stem for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
        for partner in (n for n in names if n in folders):
            if pictures & {mask_stem(p) for p in folders[partner].iterdir() if p.suffix.lower() in MASK_SUFFIXES}:
                found[name] = partner
                break
    val = next((name for name in VAL_FOLDERS if name in found), None)
    train = next((name for name in ("train", "training", *PICTURE_FOLDERS) if name in found), None)
    if train is None:
        return None
    flags = f"--images {train} --masks {found[train]}"
    return flags + (f" --val-images {val} --val-masks {found[val]}" if val else "")


class FolderDataset(PairDataset):
    """Pictures of your own with their class masks (items: see :class:`PairDataset`; ids are the files' stems).

    Args:
        root: The folder (``EXPECTED_LAYOUT``).
        split: ``"train"`` or ``"val"``.
        size: ``(H, W)`` to resize to, or None for each file's own size.
        augment: ``"none"``, ``"flip"``, ``"original"`` or ``"default"`` (see ``build_transforms``).
        val_fraction: Without validation folders, the share of pictures held out for validation (seeded).
        classes: The tree's classes when already known (check-data found them); None: read them here.
        layout: Where the pictures and masks are, and the masks' void value (default: ``EXPECTED_LAYOUT``'s).
    """

    name = "folder"
    title = "folder"
    class_names = ()  # from the data: classes.txt, or the masks' values
    layout = EXPECTED_LAYOUT
    scores = "by classes"  # evaluate: two classes as Carvana, more by their IoU (evaluation.py)
    split_predictions = "masks"  # predict --data: a mask and an overlay per picture
    cpu_recipe = "folder-quick"  # the recipe a CPU trains in reasonable time: train says so on a long run
    background = 0  # class 0 is left unpainted in overlays
    markers = ("images",)  # a folder tree
    folders_named = True  # --images, --masks, --val-images, --val-masks

    @classmethod
    def looks_like(cls, root: Path, layout: Layout = DEFAULT_LAYOUT) -> bool:
        """A folder tree: its pictures' folder (``layout.images``, or validation folders named otherwise) is there."""
        return (root / layout.images).is_dir() or (not layout.default_val and (root / layout.val_images).is_dir())

    list_pairs = staticmethod(list_pairs)

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        size: tuple[int, int] | None = None,
        augment: bool | str = False,
        val_fraction: float = 0.2,
        classes: FolderClasses | None = None,
        layout: Layout = DEFAULT_LAYOUT,
    ):
        if split not in ("train", "val"):
            raise InputError(f"split: expected 'train' or 'val' for a folder dataset, got {split!r}")
        self.root, self.split = Path(root), split
        listing = list_pairs(self.root, layout)
        listing.raise_first(self.root)
        if not listing.parts[split if "val" in listing.parts else "train"]:
            folder = layout.val_images if split == "val" and "val" in listing.parts else layout.images
            raise InputError(f"{self.root / folder}: no .jpg, .jpeg or .png pictures; {EXPECTED_LAYOUT}")
        if "val" not in listing.parts and len(listing.parts["train"]) < 2:
            raise InputError(
                f"{self.root / layout.images}: one picture only; expected 2 or more (a share is held out for"
                " validation), or validation folders (--val-images, --val-masks)"
            )
        self.classes = classes or folder_classes(self.root, layout=layout)
        self.lut = self.classes.lut()  # 255 (and the void value) stay ignored unless 255 is the foreground
        pairs = train_or_val(listing, split, lambda ids: hold_out(ids, val_fraction, SPLIT_SEED))
        super().__init__(pairs, size, build_transforms(augment, mask_fill=0 if self.classes.binary else IGNORE_INDEX))

    @classmethod
    def from_config(cls, config: TrainConfig, split: str, augment: str = "none", known=None) -> FolderDataset:
        """The ``split`` a config describes, at its size; ``known``: the classes, if check-data found them."""
        return cls(config.data_dir, split, config.resize_to, augment, config.val_fraction, known, Layout.of(config))

    @staticmethod
    def value_tables(report) -> list[np.ndarray]:
        """check-data: one mask value -> class table, from ``classes.txt`` or the values; sets ``report.classes``."""
        try:
            report.classes = folder_classes(report.root, report.value_counts, layout=report.layout)
        except InputError as err:  # a bad classes.txt: one more problem, and the values decide
            report.problems.append(str(err))
            report.classes = classes_from_counts(report.value_counts, report.layout.ignore_index)
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
        return dataclasses.replace(config, class_names=tuple(names), loss=loss)

    def check_mask(self, mask: np.ndarray, path: Path) -> np.ndarray:
        """``mask`` when every value is a class's, 255 or the void; a one-line error naming ``path`` otherwise."""
        outside = (self.classes.table() == OUTSIDE)[mask]  # bool [H, W]
        if outside.any():
            values = np.unique(mask[outside])
            raise InputError(
                f"{path}: {int(outside.sum())} pixels hold values outside the {len(self.classes.names)} classes "
                f"({', '.join(map(str, values[:6].tolist()))}); run python -m unet_lib check-data {self.root}"
            )
        return mask
