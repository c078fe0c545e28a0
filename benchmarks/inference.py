"""Figure: a Kaggle Carvana submission, in images per second end to end.

``write_submission`` decodes each test JPEG (at a DCT scale close to the network's size), resizes
it, predicts, upsamples the logits to the photo's 1918x1280, thresholds, run-length encodes the
mask with ``rle_encode`` and writes the CSV row: everything a submission costs, timed as one.
"""

from __future__ import annotations

import csv
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from benchmarks.measure import Row
from unet_lib.data import CarvanaDataset
from unet_lib.submission import write_submission


def run(data_dir: Path, model: nn.Module, size: tuple[int, int], label: str, limit: int, workers: int = 2) -> list[Row]:
    """Images per second of a submission over the first ``limit`` test images.

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
    device = torch.device("cpu")
    with tempfile.TemporaryDirectory() as scratch:
        csv_path = Path(scratch) / "submission.csv"
        # Warm-up on one image (first-call set-up); the timed run includes starting its workers.
        write_submission(model, paths[:1], csv_path, size, device, num_workers=0, progress=False)
        started = time.perf_counter()
        write_submission(model, paths, csv_path, size, device, num_workers=workers, overwrite=True, progress=False)
        seconds = time.perf_counter() - started
        with open(csv_path, newline="") as f:
            rows = list(csv.reader(f))[1:]
    if len(rows) != len(paths):
        raise RuntimeError(f"{csv_path}: expected {len(paths)} rows, got {len(rows)}")
    print(f"  inference, {label}: {len(paths)} test images to RLE rows in {seconds:.1f} s ({workers} workers)")
    return [Row(f"submission, {label}", f"{len(paths) / seconds:.2f} img/s")]
