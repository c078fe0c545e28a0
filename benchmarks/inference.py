"""Figure: a Kaggle Carvana submission, in images per second end to end.

``write_submission`` decodes each test JPEG (at a DCT scale close to the network's size), resizes
it, predicts, upsamples the logits to the photo's 1918x1280, thresholds, run-length encodes the
mask with ``rle_encode`` and writes the CSV row: everything a submission costs, timed as one.
"""

from __future__ import annotations

import copy
import csv
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from benchmarks.measure import Row
from unet_lib.cli.carvana import write_submission
from unet_lib.cli.pictures import Inference
from unet_lib.data import CarvanaDataset


def submission_seconds(model: nn.Module, paths: list[Path], size: tuple[int, int], workers: int) -> float:
    """Wall-clock seconds of ``write_submission`` over ``paths``, its rows checked."""
    with tempfile.TemporaryDirectory() as scratch:
        csv_path = Path(scratch) / "submission.csv"
        # Warm-up on one image (first-call set-up); the timed run includes starting its workers.
        write_submission(model, paths[:1], csv_path, Inference(size, progress=False))
        started = time.perf_counter()
        how = Inference(size, num_workers=workers, progress=False)
        write_submission(model, paths, csv_path, how, overwrite=True)
        seconds = time.perf_counter() - started
        with open(csv_path, newline="") as f:
            rows = list(csv.reader(f))[1:]
    if [row[0] for row in rows] != [p.name for p in paths]:
        raise RuntimeError(f"{csv_path}: expected one row per image, in order, got {len(rows)} rows")
    return seconds


def run(data_dir: Path, model: nn.Module, size: tuple[int, int], label: str, limit: int, workers: int = 2) -> list[Row]:
    """Images per second of a submission over the first ``limit`` test images, NCHW and channels_last.

    Args:
        data_dir: Carvana folder with a ``test/`` split.
        model: The network, at the size it was trained for.
        size: ``(H, W)`` the network sees.
        label: Name of the model in the table.
        limit: Test images to encode.
        workers: DataLoader processes decoding ahead of the network.
    """
    test = CarvanaDataset(data_dir, "test")
    paths = [test.image_path(i) for i in range(min(limit, len(test)))]
    model.eval()
    nchw = submission_seconds(model, paths, size, workers)
    # Weights in NHWC make every convolution run NHWC (the input follows the weights' layout).
    nhwc = submission_seconds(copy.deepcopy(model).to(memory_format=torch.channels_last), paths, size, workers)
    print(
        f"  inference, {label}: {len(paths)} test images to RLE rows in {nchw:.1f} s,"
        f" {nhwc:.1f} s with channels_last ({workers} workers)"
    )
    rate, rate_cl = len(paths) / nchw, len(paths) / nhwc
    return [
        Row(f"submission, {label}", f"{rate:.3g} img/s"),
        Row(f"submission, {label}: channels_last vs NCHW", f"{rate_cl:.3g} img/s", f"{rate:.3g} img/s",
            f"{rate_cl / rate:.2f}x"),
    ]  # fmt: skip
