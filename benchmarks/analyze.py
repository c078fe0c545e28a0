"""Figure: what ``analyze`` costs against ``evaluate`` on the same pictures and model.

Both go through ``unet_lib.evaluate``: ``evaluate`` with the scores and the loss training validates with, ``analyze``
with an ``Atlas`` (a loss and a score per picture, the boundary band, connected regions by size, the confusion
matrix). Carvana's validation pictures (one class, a few large regions each) and Cityscapes sample pictures
(19 classes, many small regions), each with the quick recipe's U-Net, in the precision ``--amp`` chooses.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from benchmarks.measure import Row, interleaved, median, spread
from unet_lib.cli.sample import write_cityscapes_sample
from unet_lib.config import recipe
from unet_lib.data import DATASETS, num_outputs
from unet_lib.evaluation import Scores, evaluate
from unet_lib.inspect.analysis import Atlas
from unet_lib.losses import make_loss
from unet_lib.runtime import Precision
from unet_lib.training import build_model

TARGET = 1 / 1.5  # analyze may take at most 1.5 times evaluate's time


def compare(dataset_name: str, data_dir: Path, size: tuple[int, int], repeats: int, pictures: int | None) -> Row:
    """One dataset's row: seconds of ``analyze``'s loop against ``evaluate``'s, interleaved."""
    name = {"carvana": "quick", "cityscapes": "cityscapes-quick"}[dataset_name]
    config = recipe(name, data_dir=str(data_dir), image_size=size, limit=pictures)
    dataset = DATASETS[config.dataset].from_config(config, "val")
    loader = DataLoader(dataset, 8)
    torch.manual_seed(0)
    precision = Precision.choose(torch.device("cpu"))
    model = precision.prepare(build_model(config))
    outputs = num_outputs(config)
    loss_fn = make_loss(config.loss, outputs)
    contenders = {
        "evaluate": lambda: evaluate(model, loader, [Scores(outputs)], loss_fn, precision.dtype, progress=False),
        "analyze": lambda: evaluate(
            model, loader, [Atlas(outputs, loss_fn)], amp_dtype=precision.dtype, progress=False
        ),
    }
    interleaved(contenders, 1)  # warm-up
    times = interleaved(contenders, repeats)
    label = f"analyze vs evaluate, {dataset_name} {len(dataset)} pictures {size[0]}x{size[1]}"
    for contender, seconds in times.items():
        print(f"  {label}, {contender}: {spread(seconds)}", flush=True)
    ours, base = median(times["analyze"]), median(times["evaluate"])
    return Row(
        f"{label} (time, goal <= 1.5x)", f"{ours:.3g} s", f"{base:.3g} s", f"{base / ours:.2f}x", f">= {TARGET:.2f}x",
        base / ours >= TARGET,
    )  # fmt: skip


def run(carvana_dir: Path, repeats: int, size: tuple[int, int] = (96, 144), cityscapes_pictures: int = 8) -> list[Row]:
    """The Carvana row on ``carvana_dir``'s validation cars, and the Cityscapes row on a sample written for it."""
    rows = [compare("carvana", carvana_dir, size, repeats, None)]
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "cityscapes"
        counts = {"train": 1, "val": cityscapes_pictures}
        write_cityscapes_sample(root, counts, size=(size[1] * 4, size[0] * 4), coarse=False)
        rows.append(compare("cityscapes", root, size, repeats, None))
    return rows
