"""Trees laid out as real public datasets ship them (CamVid as SegNet released it, the ISBI 2012 EM
challenge), with photo-like pictures, so the data readers can be tested and measured on them.

python -m benchmarks.real_like street DIR [--mask-kind index|palette|rgb] [--train N --val N --test N] [--size HxW]
python -m benchmarks.real_like microscopy DIR [--count N] [--size HxW]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from torchvision.datasets import Cityscapes

from unet_lib.cli.sample.cityscapes import _annotations, _draw_annotations, _photo
from unet_lib.cli.sample.common import check_positive, rng_stream
from unet_lib.cli.sample.pool import check_workers, run_all
from unet_lib.cli.sample.streets import CAMERA_HEIGHT, Street, _road_user, street_scene
from unet_lib.errors import InputError

# The 11 classes of SegNet's CamVid release, in index order; masks mark unlabelled pixels with VOID.
CAMVID_CLASSES = (
    "sky", "building", "pole", "road", "pavement", "tree", "sign", "fence", "car", "pedestrian", "bicyclist",
)  # fmt: skip
VOID = 11
# fmt: off
CAMVID_COLOURS = (  # the CamVid colour of each index, void last
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
    (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192), (0, 0, 0),
)
# fmt: on
CAMVID_SPLITS = MappingProxyType({"train": 367, "val": 101, "test": 233})  # pictures per split in SegNet's release
RARE_CLASSES = ("pole", "sign", "fence", "pedestrian", "bicyclist")  # about 1 % of the labelled pixels each
# Cityscapes labels grouped as CamVid groups its 32 fine classes into 11 (wall, bridge and tunnel are
# buildings; traffic lights are signs; the parking lane is pavement). Labels missing here are void.
CITYSCAPES_TO_CAMVID = {
    "sky": "sky", "building": "building", "wall": "building", "bridge": "building", "tunnel": "building",
    "pole": "pole", "polegroup": "pole", "road": "road", "rail track": "road", "sidewalk": "pavement",
    "parking": "pavement", "vegetation": "tree", "terrain": "tree", "traffic sign": "sign", "traffic light": "sign",
    "fence": "fence", "guard rail": "fence", "car": "car", "truck": "car", "bus": "car", "caravan": "car",
    "trailer": "car", "train": "car", "person": "pedestrian", "rider": "bicyclist", "bicycle": "bicyclist",
    "motorcycle": "bicyclist",
}  # fmt: skip
# CamVid's camera sits behind the windscreen without showing the bonnet, and its frames are not rectified.
NOT_IN_CAMVID = ("ego vehicle", "out of roi", "rectification border")
BACKDROP = ("sky", "road", "sidewalk", "terrain", "ground", "parking", "rail track", "building")  # drawn first
SEQUENCES = {"train": ("0001TP", "0006R0", "0016E5", "Seq05VD"), "val": ("0016E5",), "test": ("0001TP", "Seq05VD")}
MASK_KINDS = ("index", "palette", "rgb")


@dataclass(frozen=True)
class WrittenTree:
    """What a writer put on disk: where each split's pictures and masks are, and what the masks hold."""

    root: Path
    folders: dict[str, tuple[Path, Path]]  # split -> (pictures folder, masks folder)
    counts: dict[str, int]  # split -> picture/mask pairs written
    classes: tuple[str, ...]  # class names by mask index; () for the 0/255 microscopy labels
    pixels: dict[int, int]  # mask value -> pixels over the training split (microscopy: its only split)

    def shares(self) -> dict[str, float]:
        """Each class's share of the labelled (non-void) training pixels; microscopy: of membrane and cell."""
        if not self.classes:
            total = sum(self.pixels.values())
            return {"membrane": self.pixels.get(0, 0) / total, "cell": self.pixels.get(255, 0) / total}
        labelled = sum(n for value, n in self.pixels.items() if value != VOID)
        return {name: self.pixels.get(i, 0) / labelled for i, name in enumerate(self.classes)}


def _folder(root: str | Path) -> Path:
    """``root`` as a Path, created if missing; an ``InputError`` when it is a file."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise InputError(f"{root}: exists and is not a folder; expected a folder to write the tree into")
    root.mkdir(parents=True, exist_ok=True)
    return root


def _camvid_lut() -> np.ndarray:
    """Cityscapes labelId -> CamVid index (VOID where CamVid has no class): uint8 [256]."""
    lut = np.full(256, VOID, dtype=np.uint8)
    for cls in Cityscapes.classes:
        if cls.id >= 0 and cls.name in CITYSCAPES_TO_CAMVID:
            lut[cls.id] = CAMVID_CLASSES.index(CITYSCAPES_TO_CAMVID[cls.name])
    return lut


def _stem(split: str, i: int) -> str:
    """CamVid-style names: ``0001TP_006690`` (frame number) or ``Seq05VD_f00030``, frames 30 apart."""
    sequences = SEQUENCES[split]
    sequence, frame = sequences[i % len(sequences)], 30 * (i // len(sequences)) + 1000 * list(SEQUENCES).index(split)
    return f"{sequence}_f{frame:05d}" if sequence.startswith("Seq") else f"{sequence}_{frame + 6690:06d}"


def _insert_by_depth(street: Street, z: float, add: Callable[[], object]) -> None:
    """Call ``add`` (which appends objects to the street) and move what it added to where a thing ``z`` metres
    away belongs in the back-to-front order: before the first thing that stands nearer."""
    start = len(street.objects)
    add()
    new = street.objects[start:]
    del street.objects[start:]
    # After the ground and the buildings come the things standing on the ground, far to near: the lowest
    # row of each tells its depth. Walls and fences line the facades, behind everything on the sidewalk.
    labels = [label for label, *_ in street.objects]
    first = 1 + max(k for k, label in enumerate(labels) if label in BACKDROP)
    row = street.vy + street.focal * CAMERA_HEIGHT / z
    nearest = -np.inf
    at = len(street.objects)
    for k in range(first, len(street.objects)):
        label, polygon, *_ = street.objects[k]
        if label not in ("wall", "fence", "guard rail"):
            nearest = max(nearest, polygon[:, 1].max())
        if nearest > row:
            at = k
            break
    street.objects[at:at] = new


def _ground_x(street: Street, column: float) -> float:
    """The lateral position (metres) of a ground point seen at ``column`` 1 m ahead, where the road starts."""
    return (column - street.vx) / street.focal


def _furnish(street: Street, rng: np.random.Generator) -> None:
    """Make a Cityscapes-like street look like CamVid's: no bonnet, and the shop signs, passers-by and
    clutter of a town centre, so that signs and pedestrians cover about 1 % of the pixels each."""
    street.objects[:] = [obj for obj in street.objects if obj[0] not in NOT_IN_CAMVID]
    # street_scene keeps its layout only in the polygons: the kerbs are the road's first two corners (1 m
    # ahead), the facades the outer corners of the two sidewalks, left then right.
    road = next(polygon for label, polygon, *_ in street.objects if label == "road")
    left, right = _ground_x(street, road[0, 0]), _ground_x(street, road[1, 0])
    sidewalks = [polygon for label, polygon, *_ in street.objects if label == "sidewalk"]
    facades = [_ground_x(street, p[k, 0]) for p, k in zip(sidewalks, (0, 1), strict=False)]
    u = rng.uniform

    def visible(x: float, z_max: float) -> float:
        """A depth from which a thing ``x`` metres aside is in the picture (it sees about 0.45 z to each side)."""
        z_min = max(9.0, abs(x) / 0.42)
        return u(z_min, max(z_min + 3, z_max))

    for _ in range(rng.poisson(4.5)):  # shop signs sticking out of the facades, facing the camera
        facade = facades[int(rng.integers(len(facades)))]
        side = 1 if facade < 0 else -1  # towards the road
        x0, width = facade + side * 0.1, u(1.0, 2.2)
        z, y, tall = visible(facade, 45), u(2.6, 4.5), u(0.6, 1.3)
        xs = sorted((x0, x0 + side * width))
        board = street.project([xs[0], xs[1], xs[1], xs[0]], [y, y, y + tall, y + tall], z)
        lettering = street.project(
            [xs[0] + 0.15, xs[1] - 0.15, xs[1] - 0.15, xs[0] + 0.15],
            [y + 0.15, y + 0.15, y + tall - 0.15, y + tall - 0.15],
            z - 0.01,
        )
        paint = tuple(int(c) for c in rng.integers(30, 240, 3))
        ink = tuple(int(c) for c in rng.integers(0, 255, 3))
        _insert_by_depth(street, z, lambda b=board, p=paint, d=[(lettering, ink)]: street.add("traffic sign", b, p, d))
    for _ in range(rng.poisson(2.5)):  # passers-by on either sidewalk, now and then one crossing
        where = u()
        x = u(left + 0.5, right - 0.5) if where < 0.15 else left - u(0.5, 3) if where < 0.575 else right + u(0.5, 3)
        z = visible(x, 32)
        _insert_by_depth(street, z, lambda x=x, z=z: _road_user(street, "person", x, z))
    for _ in range(rng.poisson(1.0)):  # bins, bollards and boxes: void in CamVid
        x = left - u(0.3, 2.5) if u() < 0.5 else right + u(0.3, 2.5)
        z, w, h = visible(x, 30), u(0.3, 0.8), u(0.5, 1.2)
        _insert_by_depth(
            street, z, lambda x=x, z=z, w=w, h=h: street.add("static", street.box(x, x + w, 0, h, z, z + w))
        )


def _void_edges(rng: np.random.Generator, mask: np.ndarray) -> None:
    """Leave stretches of the borders between classes unlabelled, as annotators do (in place, (H, W) uint8)."""
    h, w = mask.shape
    edge = np.zeros_like(mask, dtype=bool)
    edge[:, 1:] |= mask[:, 1:] != mask[:, :-1]
    edge[1:, :] |= mask[1:, :] != mask[:-1, :]
    patches = Image.fromarray(rng.standard_normal((h // 12 + 2, w // 12 + 2)).astype(np.float32)).resize(
        (w, h), Image.BILINEAR
    )
    mask[edge & (np.asarray(patches) > -0.5)] = VOID


def _camera(rng: np.random.Generator, photo: np.ndarray) -> np.ndarray:
    """One camera's look: lens blur and vignetting, sensor noise, then white balance, contrast and brightness."""
    h, w, _ = photo.shape
    image = Image.fromarray(photo).filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.1) * w / 480))
    image = np.asarray(image, dtype=np.float32) / 255
    rows, cols = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    image *= (1 - rng.uniform(0.0, 0.3) * (rows**2 + cols**2) / 2)[..., None].astype(np.float32)  # (H, W, 1)
    shot = np.sqrt(np.maximum(image, 0)) * rng.uniform(0.005, 0.02)  # noise grows with the light collected
    image += (shot + rng.uniform(0.004, 0.015)) * rng.standard_normal((h, w, 3), dtype=np.float32)
    image *= rng.uniform(0.9, 1.1, 3).astype(np.float32)  # white balance, per channel
    image = np.clip(image, 0, 1) ** rng.uniform(0.85, 1.15)
    image = (image - 0.5) * rng.uniform(0.8, 1.2) + 0.5 + rng.uniform(-0.08, 0.08)
    return np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)


def _save_mask(mask: np.ndarray, path: Path, kind: str) -> None:
    """A (H, W) CamVid index mask as a grey (L), palette (P) or colour (RGB) PNG."""
    if kind == "rgb":
        Image.fromarray(np.array(CAMVID_COLOURS, dtype=np.uint8)[mask]).save(path)
        return
    image = Image.fromarray(mask)
    if kind == "palette":
        image.putpalette([c for colour in CAMVID_COLOURS for c in colour])  # the indices stay, mode L -> P
    image.save(path)


def _write_street_pair(task: tuple) -> np.ndarray:
    """Picture ``i`` of a split and its mask; returns the mask's pixel count per value (int64 [12])."""
    root, split, i, seed, size, mask_kind = task
    height, width = size
    rng = rng_stream(seed, 20 + list(SEQUENCES).index(split), i)
    street = street_scene(rng, (width, height), i % 2)
    _furnish(street, rng)
    annotations = _annotations([(label, polygon) for label, polygon, *_ in street.objects], (width, height))
    label_ids = np.array(_draw_annotations(annotations)[0])
    photo = _camera(rng, _photo(rng, street, label_ids))
    mask = _camvid_lut()[label_ids]
    _void_edges(rng, mask)
    stem = _stem(split, i)
    # Sensor noise hardly compresses: the fastest zlib level gives almost the same size.
    Image.fromarray(photo).save(root / split / f"{stem}.png", compress_level=1)
    _save_mask(mask, root / f"{split}annot" / f"{stem}.png", mask_kind)
    return np.bincount(mask.ravel(), minlength=VOID + 1)


def write_street_tree(
    root: str | Path,
    counts: Mapping[str, int] = CAMVID_SPLITS,
    size: tuple[int, int] = (360, 480),
    mask_kind: str = "index",
    seed: int = 0,
    workers: int | None = None,
    classes_file: bool = True,
) -> WrittenTree:
    """Write street scenes as SegNet's CamVid release lays them out.

    ``root/train/<stem>.png`` photos and ``root/trainannot/<stem>.png`` masks, the same for val and test;
    masks hold the 11 classes of :data:`CAMVID_CLASSES` (0..10) and ``VOID`` (11) for unlabelled pixels.

    Args:
        root: Folder to write into, created if missing; the split folders and ``classes.txt`` already there
            are replaced, anything else is left alone.
        counts: Pictures per split, any of ``train``, ``val``, ``test`` (default: CamVid's 367 / 101 / 233).
        size: ``(height, width)`` of every picture; CamVid's are 360x480.
        mask_kind: ``"index"`` (grey PNG of indices), ``"palette"`` (the same indices in a palette PNG
            coloured as CamVid) or ``"rgb"`` (colour PNG in the CamVid colours, void black).
        seed: Same seed, byte-identical files, whatever the workers.
        workers: Processes writing at once; None for one per core.
        classes_file: Write ``root/classes.txt``: the 11 names, one a line; for ``"rgb"`` masks
            ``name r g b`` lines, void the 12th. False: no ``classes.txt`` (an old one is removed).

    Returns:
        The folders, counts, class names and the training masks' pixels per value.
    """
    if mask_kind not in MASK_KINDS:
        raise InputError(f"mask_kind: expected one of {MASK_KINDS}, got {mask_kind!r}")
    if not counts or set(counts) - set(SEQUENCES):
        raise InputError(f"counts: expected pictures per split out of {tuple(SEQUENCES)}, got {dict(counts)!r}")
    check_positive(**{f"counts[{split!r}]": n for split, n in counts.items()})
    height, width = (int(n) for n in size)
    if height < 32 or width < 32:
        raise InputError(f"size: expected (height, width) of at least 32x32 pixels, got {size!r}")
    check_workers(workers)
    root = _folder(root)
    folders = {split: (root / split, root / f"{split}annot") for split in counts}
    for pair in folders.values():
        for folder in pair:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
    tasks = [(root, split, i, seed, (height, width), mask_kind) for split, n in counts.items() for i in range(n)]
    pixels = run_all(_write_street_pair, tasks, workers, progress=False, unit="picture")
    train = sum((p for p, task in zip(pixels, tasks, strict=True) if task[1] == "train"), np.zeros(VOID + 1, int))
    if classes_file:
        lines = (
            list(CAMVID_CLASSES)
            if mask_kind != "rgb"
            else [
                f"{name} {r} {g} {b}" for name, (r, g, b) in zip((*CAMVID_CLASSES, "void"), CAMVID_COLOURS, strict=True)
            ]
        )
        (root / "classes.txt").write_text("\n".join(lines) + "\n")
    else:
        (root / "classes.txt").unlink(missing_ok=True)
    return WrittenTree(root, folders, dict(counts), CAMVID_CLASSES, {v: int(n) for v, n in enumerate(train)})


def _smooth_noise(rng: np.random.Generator, size: tuple[int, int], cell: float) -> np.ndarray:
    """Unit-variance-ish noise that varies over about ``cell`` pixels: (H, W) float32."""
    h, w = size
    coarse = rng.standard_normal((int(h / cell) + 2, int(w / cell) + 2)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC))


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of a (H, W) float array, one axis after the other (PIL blurs no float pictures)."""
    radius = max(1, int(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2).astype(np.float32)
    taps /= taps.sum()
    for axis in (0, 1):
        padded = np.pad(image, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)], mode="reflect")
        n = image.shape[axis]
        image = sum(t * padded.take(np.arange(k, k + n), axis=axis) for k, t in enumerate(taps))
    return image


def _cells(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Irregular cells: a weighted Voronoi tessellation of warped coordinates, so borders bend and wobble.

    Returns:
        ``gap``: how much nearer the nearest cell is than the next, in pixels (about twice the distance
        to the membrane), (H, W) float32; ``cell``: the nearest cell's number, (H, W) int.
    """
    h, w = size
    # The ISBI pictures are 512x512 with cells of about 20 to 150 pixels; other sizes see more or fewer cells.
    n = max(4, int(rng.uniform(70, 110) * h * w / 512**2))
    centres = rng.uniform(0, 1, (n, 2)).astype(np.float32) * [w, h]
    weights = rng.gamma(4.0, 4.0, n).astype(np.float32)  # bigger weight, bigger cell
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    xs += 7 * _smooth_noise(rng, size, 40) + 2 * _smooth_noise(rng, size, 10)
    ys += 7 * _smooth_noise(rng, size, 40) + 2 * _smooth_noise(rng, size, 10)
    gap, cell = np.empty((h, w), np.float32), np.empty((h, w), int)
    for top in range(0, h, 64):  # 64 rows at a time: (64, W, n) distances
        rows = slice(top, top + 64)
        d = np.hypot(xs[rows, :, None] - centres[:, 0], ys[rows, :, None] - centres[:, 1]) - weights
        two = np.partition(d, 1, axis=-1)[..., :2]
        gap[rows], cell[rows] = two[..., 1] - two[..., 0], d.argmin(-1)
    return gap, cell


def _em_picture(rng: np.random.Generator, gap: np.ndarray, cell: np.ndarray, membrane: float) -> np.ndarray:
    """An electron micrograph of the cells: grainy cytoplasm, organelles, dark membranes, uneven light. (H, W) uint8."""
    h, w = gap.shape
    tone = rng.uniform(150, 200, cell.max() + 1).astype(np.float32)[cell]  # each cell its own grey
    image = tone + 12 * _smooth_noise(rng, (h, w), 6) + 6 * _smooth_noise(rng, (h, w), 2)
    organelles = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(organelles)
    for _ in range(int(rng.uniform(60, 120) * h * w / 512**2)):  # mitochondria and vesicles
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(2, 9), rng.uniform(2, 5)
        draw.ellipse([x - rx, y - ry, x + rx, y + ry], fill=int(rng.uniform(40, 110)))
    organelles = np.asarray(organelles, dtype=np.float32) * (gap > 2 * membrane)  # inside the cells only
    image -= _blur(organelles, 1.0)
    width = 1.2 * membrane * (1 + 0.3 * _smooth_noise(rng, (h, w), 30))  # thicker and thinner stretches
    image -= rng.uniform(90, 130) * np.exp(-((gap / np.maximum(width, 0.5)) ** 2))
    image = _blur(image, rng.uniform(0.6, 1.2))
    image *= 1 + 0.12 * _smooth_noise(rng, (h, w), 160) + rng.uniform(-0.1, 0.1) * np.linspace(-1, 1, w)
    image += rng.uniform(5, 10) * rng.standard_normal((h, w), dtype=np.float32)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def _write_em_pair(task: tuple) -> np.ndarray:
    """Section ``i``: its micrograph and its 0/255 label; returns the label's pixels per value (int64 [256])."""
    root, i, seed, size = task
    rng = rng_stream(seed, 30, i)
    gap, cell = _cells(rng, size)
    membrane = rng.uniform(4.0, 6.0)  # a membrane's width in pixels (gap grows twice as fast as the distance)
    label = np.where(gap > membrane, 255, 0).astype(np.uint8)  # 255 inside a cell, 0 on a membrane
    Image.fromarray(_em_picture(rng, gap, cell, membrane)).save(root / "image" / f"{i}.png", compress_level=1)
    Image.fromarray(label).save(root / "label" / f"{i}.png")
    return np.bincount(label.ravel(), minlength=256)


def write_microscopy_tree(
    root: str | Path,
    count: int = 30,
    size: tuple[int, int] = (512, 512),
    seed: int = 0,
    workers: int | None = None,
) -> WrittenTree:
    """Write electron micrographs of cells as the ISBI 2012 EM segmentation challenge ships them.

    ``root/image/<i>.png``: grey (mode L) sections; ``root/label/<i>.png``: mode L masks, 255 inside a cell
    and 0 on the membranes between cells. No ``classes.txt``, as in the release.

    Args:
        root: Folder to write into, created if missing; ``image/`` and ``label/`` already there are replaced.
        count: Sections to write; the challenge's training volume has 30.
        size: ``(height, width)``; the challenge's are 512x512.
        seed: Same seed, byte-identical files, whatever the workers.
        workers: Processes writing at once; None for one per core.

    Returns:
        The folders (as split ``"train"``), the count and the labels' pixels per value (0 and 255).
    """
    check_positive(count=count)
    height, width = (int(n) for n in size)
    if height < 16 or width < 16:
        raise InputError(f"size: expected (height, width) of at least 16x16 pixels, got {size!r}")
    check_workers(workers)
    root = _folder(root)
    for folder in (root / "image", root / "label"):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
    tasks = [(root, i, seed, (height, width)) for i in range(count)]
    pixels = sum(run_all(_write_em_pair, tasks, workers, progress=False, unit="section"))
    return WrittenTree(
        root,
        {"train": (root / "image", root / "label")},
        {"train": count},
        (),
        {0: int(pixels[0]), 255: int(pixels[255])},
    )


def _size(text: str) -> tuple[int, int]:
    """``"360x480"`` -> ``(360, 480)``: height by width."""
    try:
        height, width = (int(n) for n in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 360x480, got {text!r}") from None
    return height, width


def summary(tree: WrittenTree) -> list[str]:
    """Lines describing a written tree: the files in each folder, then the classes' shares of the training pixels.

    Args:
        tree: What :func:`write_street_tree` or :func:`write_microscopy_tree` returned.

    Returns:
        The lines, ready to print.
    """
    lines = []
    for split, (pictures, masks) in tree.folders.items():
        for folder in (pictures, masks):
            files = sum(1 for _ in folder.glob("*.png"))
            lines.append(f"{folder.relative_to(tree.root)}/: {files} files ({split})")
    total = sum(tree.pixels.values())
    of = "the labelled training pixels" if tree.classes else "all pixels"
    lines.append(f"{'class':12s} {'share':>7s}  (of {of})")
    lines += [f"{name:12s} {100 * share:6.2f} %" for name, share in tree.shares().items()]
    if tree.classes:
        lines.append(f"{'void':12s} {100 * tree.pixels[VOID] / total:6.2f} %  (of all training pixels)")
        rare = ", ".join(f"{name} {100 * tree.shares()[name]:.2f} %" for name in RARE_CLASSES)
        lines.append(f"rare classes: {rare}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Write a street or microscopy tree and print what it holds; 2 on a bad argument or a non-empty folder."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.real_like", description=__doc__.split("\n")[0])
    kinds = parser.add_subparsers(dest="kind", required=True)
    street = kinds.add_parser("street", help="11 street classes laid out as SegNet's CamVid release")
    street.add_argument("dir", type=Path)
    street.add_argument("--mask-kind", choices=MASK_KINDS, default="index")
    for split, n in CAMVID_SPLITS.items():
        street.add_argument(f"--{split}", type=int, default=n, help=f"pictures in {split}/ (default {n})")
    street.add_argument("--size", type=_size, default=(360, 480), help="HxW (default 360x480)")
    em = kinds.add_parser("microscopy", help="EM cell sections laid out as the ISBI 2012 challenge")
    em.add_argument("dir", type=Path)
    em.add_argument("--count", type=int, default=30, help="sections (default 30)")
    em.add_argument("--size", type=_size, default=(512, 512), help="HxW (default 512x512)")
    for sub in (street, em):
        sub.add_argument("--seed", type=int, default=0)
        sub.add_argument("--workers", type=int, help="processes (default: one per core)")
        sub.add_argument("--overwrite", action="store_true", help="write into a non-empty DIR")
    args = parser.parse_args(argv)
    if args.dir.is_dir() and any(args.dir.iterdir()) and not args.overwrite:
        print(f"error: {args.dir}: folder is not empty; pass --overwrite to write into it anyway", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        if args.kind == "street":
            counts = {split: getattr(args, split) for split in CAMVID_SPLITS if getattr(args, split) > 0}
            tree = write_street_tree(args.dir, counts, args.size, args.mask_kind, args.seed, args.workers)
        else:
            tree = write_microscopy_tree(args.dir, args.count, args.size, args.seed, args.workers)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.dir} in {time.perf_counter() - started:.1f} s")
    print("\n".join(summary(tree)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
