"""The (picture, mask) pairs of a folder, Carvana or Cityscapes tree, for check-data.

Where a dataset stops at the first unpaired file, these list every pair and every stray file, so that
one run of check-data names all of them.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from unet_lib.data.carvana import EXPECTED_LAYOUT as CARVANA_LAYOUT
from unet_lib.data.cityscapes import EXPECTED_LAYOUT as CITYSCAPES_LAYOUT
from unet_lib.data.folder import EXPECTED_LAYOUT as FOLDER_LAYOUT
from unet_lib.data.folder import IMAGE_SUFFIXES, folder_parts
from unet_lib.errors import InputError

MASK_SUFFIXES = (".png", ".gif", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")  # found, so that a JPEG mask is named


@dataclass(frozen=True)
class Pair:
    """A picture and its mask file (for Carvana's CSV: the CSV, and the mask's RLE row)."""

    image: Path
    mask: Path
    rle: str | None = None


def list_pairs(root: Path, dataset: str, mode: str = "fine") -> tuple[list[Pair], list[str], str]:
    """``(pairs, problems, where the pairs are)`` of a ``"folder"``, ``"carvana"`` or ``"cityscapes"`` tree.

    ``mode`` picks Cityscapes' annotations: ``"fine"`` (gtFine) or ``"coarse"`` (gtCoarse).
    """
    if dataset == "cityscapes":
        return cityscapes_pairs(Path(root), mode)
    listers = {"folder": folder_pairs, "carvana": carvana_pairs}
    if dataset not in listers:
        raise InputError(f"dataset: expected one of ('folder', 'carvana', 'cityscapes'), got {dataset!r}")
    return listers[dataset](Path(root))


def by_stem(folder: Path, suffixes: tuple[str, ...], problems: list[str], name=lambda p: p.stem) -> dict[str, Path]:
    """``{name(file): file}`` of the files in ``folder`` with one of ``suffixes``; a second file of a name is a problem."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else ():
        if path.is_file() and path.suffix.lower() in suffixes:
            if (stem := name(path)) in found:
                problems.append(f"{path}: a second file named {stem} (also {found[stem].name}); expected one per name")
            else:
                found[stem] = path
    return found


def match(
    images: dict[str, Path], masks: dict[str, Path], mask_for: Callable[[str], str], image_for: Callable[[str], str]
) -> tuple[list[Pair], list[str]]:
    """Pairs of the names in both; one problem per image without mask and per mask without image."""
    pairs = [Pair(images[s], masks[s]) for s in sorted(images) if s in masks]
    problems = [f"{images[s]}: image without mask (expected {mask_for(s)})" for s in sorted(set(images) - set(masks))]
    problems += [f"{masks[s]}: mask without image (expected {image_for(s)})" for s in sorted(set(masks) - set(images))]
    return pairs, problems


def folder_pairs(root: Path) -> tuple[list[Pair], list[str], str]:
    """``images/<stem>.jpg|png`` with ``masks/<stem>.png``, and the same under ``val/``."""
    if not (root / "images").is_dir():
        raise InputError(f"{root / 'images'}: folder not found; {FOLDER_LAYOUT}")
    pairs, problems, counts = [], [], []
    for part in ("images", "masks"):
        if (root / "val" / part).is_dir() and not (root / "val" / ("masks" if part == "images" else "images")).is_dir():
            problems.append(
                f"{root / 'val' / part}: found without its partner folder; expected val/images and val/masks"
            )
    for image_dir, mask_dir in folder_parts(root):
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
        pairs += found
        problems += unpaired
        counts.append(len(found))
    where = f"{counts[0]} in images/" + (f", {counts[1]} in val/images/" if len(counts) > 1 else "")
    if len(counts) == 1:
        where += "; no val/ folder: a seeded share is held out for validation"
    return pairs, problems, where


def carvana_pairs(root: Path) -> tuple[list[Pair], list[str], str]:
    """``train/<id>.jpg`` with ``train_masks/<id>_mask.gif`` (or a row of ``train_masks.csv``), and ``val/`` likewise."""
    if not (root / "train").is_dir():
        raise InputError(f"{root / 'train'}: folder not found; {CARVANA_LAYOUT}")
    pairs, problems, where = [], [], []
    for name in ("train", "val") if (root / "val").is_dir() else ("train",):
        image_dir, mask_dir, csv_path = root / name, root / f"{name}_masks", root / f"{name}_masks.csv"
        images = by_stem(image_dir, IMAGE_SUFFIXES, problems)
        if mask_dir.is_dir():
            masks = by_stem(mask_dir, MASK_SUFFIXES, problems, name=lambda p: p.stem.removesuffix("_mask"))
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
            found, unpaired = [], [f"{mask_dir}: no masks (neither this folder nor {csv_path.name}); {CARVANA_LAYOUT}"]
        pairs += found
        problems += unpaired
        where.append(f"{len(found)} in {name}/" + ("" if mask_dir.is_dir() else f" (masks from {csv_path.name})"))
    held_out = "" if (root / "val").is_dir() else "; validation: whole cars held out"
    return pairs, problems, ", ".join(where) + held_out


def cityscapes_pairs(root: Path, mode: str = "fine") -> tuple[list[Pair], list[str], str]:
    """``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with ``gtFine/<split>/<city>/*_gtFine_labelIds.png``.

    With ``mode="coarse"``, the ``gtCoarse`` labels instead (the splits training reads: train and val).
    """
    gt = "gtFine" if mode == "fine" else "gtCoarse"
    suffix = f"_{gt}_labelIds.png"
    pairs, problems, where = [], [], []
    for split in ("train", "val"):
        image_dir, label_dir = root / "leftImg8bit" / split, root / gt / split
        if not image_dir.is_dir() or not label_dir.is_dir():
            missing = image_dir if not image_dir.is_dir() else label_dir
            problems.append(f"{missing}: folder not found; {CITYSCAPES_LAYOUT}")
            continue
        images = {p.name.removesuffix("_leftImg8bit.png"): p for p in sorted(image_dir.glob("*/*_leftImg8bit.png"))}
        labels = {p.name.removesuffix(suffix): p for p in sorted(label_dir.glob(f"*/*{suffix}"))}
        found, unpaired = match(
            images,
            labels,
            lambda s, d=label_dir: f"{d / s.split('_')[0] / s}{suffix}",
            lambda s, d=image_dir: f"{d / s.split('_')[0] / s}_leftImg8bit.png",
        )
        pairs += found
        problems += unpaired
        where.append(f"{len(found)} {split}")
    return pairs, problems, ", ".join(where) + f" ({gt})"


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
