"""Cityscapes sample: street scenes and their annotations in the leftImg8bit / gtFine / gtCoarse trees."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from torchvision.datasets import Cityscapes

from unet_lib.cli.sample.common import WriteOptions, check_positive, check_size, clip, prepare_root, rng_stream
from unet_lib.cli.sample.pool import check_workers, run_all
from unet_lib.cli.sample.streets import CITIES, FRAME, LOOKS, MAX_TRIES, RARE_GROUPS, Street, street_scene
from unet_lib.errors import InputError

FULL_SIZE_IMAGES = {"train": 2975, "val": 500}  # the real gtFine training and validation sets


def _inside(polygon: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip a polygon to the picture and round it to whole pixels, as the annotation tool stores them."""
    for axis, bound in ((0, 0), (0, width), (1, 0), (1, height)):
        if len(polygon) == 0:
            break
        polygon = clip(polygon, bound, 1 if bound == 0 else -1, axis)
    return np.round(polygon).astype(int) if len(polygon) else np.zeros((0, 2), dtype=int)


def _annotations(objects: list, size: tuple[int, int]) -> dict:
    """The polygons of one picture, as in ``*_polygons.json``; licence plates included, as in the real files."""
    width, height = size
    kept = []
    for label, polygon in objects:
        points = _inside(polygon, width, height)
        if len(np.unique(points, axis=0)) >= 3:
            kept.append({"label": label, "polygon": points.tolist()})
    return {"imgHeight": height, "imgWidth": width, "objects": kept}


def _draw_annotations(annotations: dict) -> tuple[Image.Image, Image.Image, Image.Image]:
    """labelIds, color and instanceIds pictures drawn from the polygons, back to front, as cityscapesScripts does."""
    size = (annotations["imgWidth"], annotations["imgHeight"])
    classes = {c.name: c for c in Cityscapes.classes}
    label_ids, color = Image.new("L", size, 0), Image.new("RGBA", size, (0, 0, 0, 255))
    instances = Image.new("I", size, 0)
    draws = [ImageDraw.Draw(image) for image in (label_ids, color, instances)]
    counts = {}
    for obj in annotations["objects"]:
        name = (
            obj["label"].removesuffix("group")
            if obj["label"].endswith("group") and obj["label"] != "polegroup"
            else obj["label"]
        )
        cls = classes[name]
        if cls.id < 0:
            continue  # licence plates are annotated but never drawn
        points = [tuple(p) for p in obj["polygon"]]
        instance = cls.id
        if cls.has_instances and name == obj["label"]:
            instance = cls.id * 1000 + counts.get(name, 0)
            counts[name] = counts.get(name, 0) + 1
        for draw, value in zip(draws, (cls.id, (*cls.color, 255), instance), strict=True):
            draw.polygon(points, fill=value)
    return label_ids, color, Image.fromarray(np.asarray(instances).astype(np.uint16))


def _photo(rng: np.random.Generator, street: Street, label_ids: np.ndarray) -> np.ndarray:
    """The camera picture of a street: painted polygons, texture, light and sensor noise. (H, W, 3) uint8."""
    size = (street.width, street.height)
    photo = Image.new("RGB", size, (0, 0, 0))
    draw = ImageDraw.Draw(photo)
    for _, polygon, colour, decorations in street.objects:
        for points, fill in [(polygon, colour), *decorations]:
            points = _inside(np.asarray(points, dtype=np.float64), *size)
            if len(points) >= 2:
                draw.polygon([tuple(p) for p in points], fill=tuple(fill))
    texture = np.zeros(256, dtype=np.float32)
    for cls in Cityscapes.classes:
        if cls.id >= 0:
            texture[cls.id] = LOOKS[cls.name][1] if cls.name in LOOKS else 5
    h, w = street.height, street.width
    blotches = Image.fromarray(rng.standard_normal((h // 8 + 2, w // 8 + 2)).astype(np.float32), "F").resize(
        (w, h), Image.BILINEAR
    )
    grain = np.asarray(blotches) + 0.5 * rng.standard_normal((h, w), dtype=np.float32)
    light = rng.uniform(0.8, 1.15) * (1.1 - 0.2 * np.arange(h, dtype=np.float32)[:, None] / h)  # (h, 1): brighter sky
    image = np.asarray(photo, dtype=np.float32) * light[..., None] + (texture[label_ids] * grain)[..., None]
    return np.clip(image + 2 * rng.standard_normal((h, w, 1), dtype=np.float32), 0, 255).astype(np.uint8)


def _coarse(rng: np.random.Generator, objects: list, size: tuple[int, int]) -> list:
    """Quick, rough polygons: small things skipped, the rest simplified and shrunk from their borders."""
    rough = []
    for label, polygon in objects:
        points = _inside(polygon, *size).astype(np.float64)
        if len(points) < 3 or label == "license plate":
            continue
        x, y = points[:, 0], points[:, 1]
        area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
        if area < 0.002 * size[0] * size[1]:
            continue
        if len(points) > 8:
            points = points[::2]
        centre = points.mean(0)
        rough.append((label, centre + (points - centre) * rng.uniform(0.8, 0.92)))
    return rough


def _save_annotations(annotations: dict, folder: Path, stem: str, mode: str) -> None:
    label_ids, color, instances = _draw_annotations(annotations)
    label_ids.save(folder / f"{stem}_{mode}_labelIds.png")
    color.save(folder / f"{stem}_{mode}_color.png")
    instances.save(folder / f"{stem}_{mode}_instanceIds.png")
    with open(folder / f"{stem}_{mode}_polygons.json", "w") as f:
        json.dump(annotations, f, indent="\t")


def _write_scene(task: tuple) -> None:
    """Picture ``i`` of a split: its photo, fine (and coarse) annotations."""
    root, split, i, seed, size, modes = task
    number = list(CITIES).index(split)
    city = CITIES[split][i % 2]
    stem = f"{city}_{i // 2:06d}_{FRAME:06d}"
    rng = rng_stream(seed, 10 + number, i)
    group = (i + number) % 2
    required = set(range(34)) - {c.id for c in Cityscapes.classes if c.name in RARE_GROUPS[1 - group]}
    for _ in range(MAX_TRIES):  # draw again until nothing required is hidden (or off the picture)
        street = street_scene(rng, size, group)
        objects = [(label, polygon) for label, polygon, _, _ in street.objects]
        annotations = _annotations(objects, size)
        label_ids = np.array(_draw_annotations(annotations)[0])
        if required <= set(np.unique(label_ids).tolist()):
            break
    for top in ["leftImg8bit", *modes]:
        (root / top / split / city).mkdir(parents=True, exist_ok=True)
    _save_annotations(annotations, root / "gtFine" / split / city, stem, "gtFine")
    photo = Image.fromarray(_photo(rng, street, label_ids))
    # Sensor noise hardly compresses: the fastest zlib level gives almost the same size.
    photo.save(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", compress_level=1)
    if "gtCoarse" in modes:
        rough = _annotations(_coarse(rng, objects, size), size)
        _save_annotations(rough, root / "gtCoarse" / split / city, stem, "gtCoarse")


def write_cityscapes_sample(
    root: str | Path,
    num_images: int | Mapping[str, int] = 6,
    size: tuple[int, int] = (2048, 1024),
    splits: tuple[str, ...] = ("train", "val"),
    coarse: bool = True,
    options: WriteOptions | None = None,
) -> None:
    """Write procedural street scenes in the Cityscapes layout, readable by ``torchvision.datasets.Cityscapes``.

    For each split: ``leftImg8bit/<split>/<city>/<city>_<seq>_000019_leftImg8bit.png`` and, beside it in
    ``gtFine``, the ``_gtFine_labelIds.png``, ``_gtFine_color.png``, ``_gtFine_instanceIds.png`` and
    ``_gtFine_polygons.json`` files; with ``coarse`` the same four under ``gtCoarse`` (not for test).
    Each picture shows about 30 of the 34 labelIds; two pictures (two in a split, or the first of
    train and of val) normally show all of 0..33. Licence plates are in the polygons files only.

    Args:
        root: Folder to write into; created if missing.
        num_images: Pictures per split, or a count for each split (``FULL_SIZE_IMAGES``: the real 2,975 / 500).
        size: ``(width, height)``; the real pictures are 2048x1024.
        splits: Any of ``"train"``, ``"val"``, ``"test"`` (labelled too, unlike the real test set).
        coarse: Also write rough ``gtCoarse`` annotations, with more unlabelled pixels.
        options: Seed, overwrite, workers and progress (:class:`WriteOptions`); None for seed 0, no
            overwriting, one process per core and no bar. Same seed, byte-identical files, whatever
            the workers. ``overwrite`` writes into a non-empty ``root``, replacing the folders of these
            splits; ``progress`` counts pictures.
    """
    options = WriteOptions() if options is None else options
    counts = num_images if isinstance(num_images, Mapping) else dict.fromkeys(splits, num_images)
    size = check_size(size, minimum=32)
    if isinstance(splits, str) or not splits or any(s not in CITIES for s in splits) or len(set(splits)) != len(splits):
        raise InputError(f"splits: expected distinct names out of {tuple(CITIES)}, got {splits!r}")
    if set(counts) != set(splits):
        raise InputError(f"num_images: expected a count for each of {splits}, got {dict(counts)!r}")
    for split in splits:
        check_positive(num_images=counts[split])
    check_workers(options.workers)
    root = prepare_root(root, options.overwrite)
    tasks = []
    for split in splits:
        modes = ["gtFine"] + (["gtCoarse"] if coarse and split != "test" else [])
        for top in ["leftImg8bit", *modes]:
            if (root / top / split).exists():
                shutil.rmtree(root / top / split)
        tasks += [(root, split, i, options.seed, size, modes) for i in range(counts[split])]
    run_all(_write_scene, tasks, options.workers, options.progress, unit="picture")
