"""check-data: what a dataset folder holds, and every problem that would spoil a training run, before it starts."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from unet_lib.data import DATASETS, detect_dataset
from unet_lib.data.cityscapes import NUM_LABEL_IDS
from unet_lib.data.dataset import OUTSIDE
from unet_lib.data.folder import FolderClasses
from unet_lib.data.io import image_header
from unet_lib.data.pairs import DEFAULT_LAYOUT, Layout, Pair
from unet_lib.errors import InputError
from unet_lib.metrics import IGNORE_INDEX
from unet_lib.runtime import show_progress


@dataclass
class MaskResult:
    """What one (image, mask) pair holds: the picture's size ``(H, W)``, the mask's mode and its value counts."""

    image_size: tuple[int, int] | None = None
    image_mode: str | None = None  # the picture's PIL mode: RGB, or L, RGBA, P... (read as RGB)
    mask_mode: str | None = None
    counts: np.ndarray | None = None  # int64 [256]: pixels of each mask value
    problems: list[str] = field(default_factory=list)


@dataclass
class DataReport:
    """What check-data found: ``problems`` (one line each, naming the file), and what the data holds
    (``results[i]``: pair ``i``'s; sizes are ``(H, W)``, as ``--size`` takes them)."""

    root: Path
    dataset: str
    pairs: int = 0
    splits: str = ""  # where the pairs are, in words
    results: list[MaskResult] = field(default_factory=list)
    value_counts: np.ndarray = field(default_factory=lambda: np.zeros(256, dtype=np.int64))
    class_names: list[str] = field(default_factory=list)
    class_pixels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # [len(class_names)]
    ignored_pixels: int = 0
    classes: FolderClasses | None = None  # folder data: what FolderDataset needs
    size: tuple[int, int] | None = None  # the --size asked for
    depth: int = 4  # halvings of the network
    layout: Layout = DEFAULT_LAYOUT  # where a folder tree's pictures and masks are, and its void value
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def read_pair(pair: Pair) -> MaskResult:
    """Read a pair's picture header (not the whole photo) and its mask; a bad file is a problem, not an exception."""
    result = MaskResult()
    try:
        size, result.image_mode = image_header(pair.image)
        result.image_size = size[::-1]  # (H, W)
    except InputError as err:
        result.problems.append(str(err))
    if pair.rle is not None and result.image_size is None:
        return result  # an RLE row is decoded at its picture's size
    try:
        mask, result.mask_mode = pair.read_mask(result.image_size)
    except InputError as err:
        result.problems.append(str(err))
        return result
    result.counts = np.bincount(mask.ravel(), minlength=256)
    if result.image_size is not None and mask.shape != result.image_size:
        (mh, mw), (h, w) = mask.shape, result.image_size
        result.problems.append(
            f"{pair.mask}: mask is {mw}x{mh} but its image {pair.image} is {w}x{h}; expected the same size"
        )
    return result


def table_for(counts: np.ndarray, tables: list[np.ndarray]) -> np.ndarray:
    """The value table that labels most of a mask's pixels (a Carvana mask holds 0/1 or 0/255), the later on a tie."""
    return max(reversed(tables), key=lambda table: counts[table != OUTSIDE].sum())


def outside_problems(report: DataReport, mask: Path, counts: np.ndarray, table: np.ndarray) -> list[str]:
    """One line when a mask holds values that are no label: anti-aliased edges, or labels beyond classes.txt."""
    outside = np.flatnonzero((table == OUTSIDE) & (counts > 0))
    if not len(outside):
        return []
    pixels = int(counts[outside].sum())
    shown = ", ".join(map(str, outside[:6].tolist())) + (", ..." if len(outside) > 6 else "")
    share = f"{pixels} pixels ({pixels / counts.sum():.1%})"
    beyond = report.dataset == "folder" and (report.root / "classes.txt").is_file()
    if beyond and outside.max() < 128:  # smoothing between 0 and 255 always leaves values near the middle
        count = len(report.class_names)
        return [f"{mask}: labels beyond classes.txt ({count} classes, 0..{count - 1}): {shown} on {share}"]
    if report.dataset == "cityscapes" and outside.max() < 128:
        return [f"{mask}: values {shown} on {share} are no labelId (expected 0..{NUM_LABEL_IDS - 1})"]
    return [
        f"{mask}: anti-aliased: {share} hold values outside the classes ({shown}); save masks without smoothing"
        " (nearest-neighbour resize, PNG not JPEG), or threshold them, e.g. mask = (mask >= 128) * 255"
    ]


def check_tree(
    root: str | Path,
    dataset: str | None = None,
    size: tuple[int, int] | None = None,
    depth: int = 4,
    progress: bool | None = None,
    layout: Layout = DEFAULT_LAYOUT,
) -> DataReport:
    """Check a folder, Carvana or Cityscapes tree, only reading it.

    Args:
        root: The dataset folder.
        dataset: ``"folder"``, ``"carvana"`` or ``"cityscapes"``; None detects it from the layout.
        size: The ``(H, W)`` training resizes to, which the network's ``depth`` halvings must divide.
        progress: A progress bar while the masks are read (None: on a terminal or in Jupyter).
        layout: Where a folder tree keeps its pictures and masks, its void value, and Cityscapes' labels
            (``mode``: ``"fine"``, gtFine, or ``"coarse"``, gtCoarse).

    Returns:
        The report; ``report.problems`` is empty when the data can be trained on.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: folder not found; expected a dataset folder to check")
    kind = DATASETS[dataset or detect_dataset(root, layout)]
    listing = kind.list_pairs(root, layout)
    pairs = listing.pairs
    report = DataReport(root, kind.name, len(pairs), listing.where, size=size, depth=depth, layout=layout)
    report.problems = listing.problems
    desc, quiet = f"check-data: reading {len(pairs)} masks", not show_progress(progress)
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:  # decoding releases the GIL: threads in parallel
        report.results = list(tqdm(pool.map(read_pair, pairs), desc=desc, total=len(pairs), leave=False, disable=quiet))
    report.problems += [problem for result in report.results for problem in result.problems]
    report.value_counts += sum(result.counts for result in report.results if result.counts is not None)
    tables = kind.value_tables(report)
    report.class_names = list(kind.class_names or report.classes.names)
    report.class_pixels = np.zeros(len(report.class_names), dtype=np.int64)
    for pair, result in zip(pairs, report.results, strict=True):
        if result.counts is None:
            continue
        table = table_for(result.counts, tables)
        report.problems += outside_problems(report, pair.mask, result.counts, table)
        labelled = table >= 0
        classes = np.where(table[labelled] == IGNORE_INDEX, len(report.class_names), table[labelled])
        by_class = np.bincount(classes, weights=result.counts[labelled], minlength=len(report.class_names) + 1)
        report.class_pixels += by_class[:-1].astype(np.int64)
        report.ignored_pixels += int(by_class[-1])
    if not pairs and not report.problems:
        report.problems.append(f"{root}: no pictures with masks found")
    elif len(pairs) == 1 and len(listing.parts) == 1:
        report.problems.append(
            f"{pairs[0].image}: the only picture with a mask; expected 2 or more (a share is held out for validation)"
        )
    step = 2**depth
    if size is not None and (size[0] % step or size[1] % step):
        problem = f"--size {size[0]}x{size[1]}: not divisible by {step} ({depth} halvings)"
        report.problems.append(f"{problem}; try --size {fit_size(*size, step)}")
    if len(report.class_names) == 2 and pairs and report.class_pixels.min() == 0:
        missing = report.class_names[int(report.class_pixels.argmin())]
        report.problems.append(
            f"{root}: no pixel of class {missing!r} in any mask: a binary model has nothing to learn"
        )
    return report


def fit_size(height: int, width: int, step: int) -> str:
    """``"HxW"``: the nearest size divisible by ``step``."""
    return f"{max(step, int(height / step + 0.5) * step)}x{max(step, int(width / step + 0.5) * step)}"


def loss_weights(report: DataReport) -> list[float]:
    """The loss weights the data suggests: ``[negatives / positives]`` (``pos_weight``) for two classes, else
    median-frequency balancing, class ``c`` weighed by ``median(freq) / freq[c]`` (classes without pixels: 0).
    Empty when no mask could be read."""
    pixels = report.class_pixels.astype(np.float64)
    if len(pixels) == 2:
        return [pixels[0] / pixels[1]] if pixels[1] else []
    freq = pixels / max(pixels.sum(), 1)
    present = freq > 0
    if not present.any():
        return []
    return np.where(present, np.median(freq[present]) / np.where(present, freq, 1), 0.0).tolist()
