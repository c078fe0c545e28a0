"""Figure: loading Carvana at 320x480 from the 1918x1280 files, the original pipeline against ours.

Original: PIL decodes the full JPEG, ``ToTensor`` makes it float, then ``Resize``; the GIF mask
likewise; every sample, every epoch. Ours: ``CarvanaDataset`` (JPEG decoded at 1/4 scale in the
DCT domain, uint8 resize, the shared disk cache) behind the project's ``build_loaders``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from benchmarks.measure import Row, fresh_cache_dir, median, speedup_row, spread, timed
from unet_lib.cli.cache import use_cache
from unet_lib.config import TrainConfig
from unet_lib.data import CarvanaDataset, build_datasets, build_loaders

SIZE = (320, 480)  # (H, W): the original project's larger training size
TARGET_SPEEDUP = 4.0
TARGET_PSNR = 30.0  # dB against the original pipeline's pictures
TARGET_MASK_AGREEMENT = 0.995


class OriginalCarvana(Dataset):
    """The original project's Carvana dataset, re-typed: full-size decode, float conversion, then resize."""

    def __init__(self, pairs: list[tuple[Path, Path]], size: tuple[int, int] = SIZE):
        self.pairs = pairs
        self.transform = transforms.Compose([transforms.ToTensor(), transforms.Resize(size)])

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, mask_path = self.pairs[index]
        image = np.array(Image.open(image_path).convert("RGB"))  # (1280, 1918, 3) uint8
        mask = np.array(Image.open(mask_path).convert("L"), dtype=np.float32) / 255.0  # (1280, 1918) in [0, 1]
        return self.transform(image), self.transform(mask)  # (3, H, W) float, (1, H, W) float


def original_pairs(dataset: CarvanaDataset) -> list[tuple[Path, Path]]:
    """(image, GIF mask) paths of the same images ``dataset`` reads."""
    masks = [dataset.mask_path(i) for i in range(len(dataset))]
    if any(mask.suffix != ".gif" for mask in masks):
        raise FileNotFoundError(f"{dataset.root}: the data benchmark needs the GIF masks in train_masks/")
    return [(dataset.image_path(i), mask) for i, mask in enumerate(masks)]


def _epoch(loader: DataLoader) -> int:
    """Pull every batch once; returns the number of images."""
    return sum(len(images) for images, _ in loader)


def psnr(ours: torch.Tensor, reference: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of two float pictures in [0, 1]."""
    mse = torch.mean((ours.double() - reference.double()) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def same_picture(ours: CarvanaDataset, original: OriginalCarvana, count: int) -> tuple[float, float]:
    """Mean PSNR of the images and share of identical mask pixels, over the first ``count`` items."""
    scores, agree, total = [], 0, 0
    for i in range(min(count, len(ours))):
        image, mask = ours[i]
        ref_image, ref_mask = original[i]
        scores.append(psnr(image, ref_image.clamp(0, 1)))  # antialiased resize overshoots [0, 1] a little
        agree += (mask == (ref_mask[0] > 0.5)).sum().item()  # the original's bilinear mask, thresholded
        total += mask.numel()
    return float(np.mean(scores)), agree / total


def run(data_dir: Path, epochs: int, repeats: int, workers: int, compare: int, limit: int | None = None) -> list[Row]:
    """Images per second of a cold (first) and a warm epoch, ours against the original, and picture agreement.

    Args:
        data_dir: Carvana folder with 1918x1280 JPEGs and GIF masks.
        epochs: Epochs per fresh loader of ours: the first is cold, the later half warm.
        repeats: Fresh loaders of ours (and original epochs) to take medians over.
        workers: DataLoader worker processes for ours.
        compare: Items compared picture by picture.
        limit: Use only the first N training images.
    """
    config = TrainConfig(
        data_dir=str(data_dir), image_size=SIZE, augment="none", batch_size=8, num_workers=workers, limit=limit
    )
    reference = CarvanaDataset(data_dir, "train", size=SIZE, val_fraction=config.val_fraction)  # no cache
    original = OriginalCarvana(original_pairs(reference)[:limit])
    original_loader = DataLoader(original, batch_size=8, shuffle=True)  # the original's loader: no workers
    num_images = len(original)

    cold, warm, plain = [], [], []
    for round_ in range(repeats):
        if round_ % 2:  # alternate which one runs first
            plain.append(timed(lambda: _epoch(original_loader)))
        with fresh_cache_dir():  # a new, empty cache every round: its first epoch includes building it
            started = time.perf_counter()
            train = use_cache(build_datasets(config)[0], config.cache)
            loader = build_loaders(config, train, train)[0]  # the validation loader is unused
            _epoch(loader)
            ours = [time.perf_counter() - started] + [
                timed(lambda loader=loader: _epoch(loader)) for _ in range(1, epochs)
            ]
            del loader  # stops persistent workers before the next round
        cold.append(ours[0])
        warm += ours[max(1, epochs // 2) :]  # the later half
        if not round_ % 2:
            plain.append(timed(lambda: _epoch(original_loader)))
    print(f"  data: {num_images} images, ours with {workers} workers: cold epoch {spread(cold)}, warm {spread(warm)}")
    print(f"        original: epoch {spread(plain)}")

    quality, agreement = same_picture(reference, original, compare)
    print(f"  data: PSNR {quality:.1f} dB against the original pipeline, masks {100 * agreement:.3f} % identical")
    throughput = num_images / median(plain)
    return [
        speedup_row("data 320x480, cold epoch", num_images / median(cold), throughput, "img/s", TARGET_SPEEDUP, True),
        speedup_row("data 320x480, warm epoch", num_images / median(warm), throughput, "img/s", TARGET_SPEEDUP, True),
        Row(
            "data: image PSNR vs original",
            f"{quality:.1f} dB",
            target=f">= {TARGET_PSNR:g} dB",
            passed=quality >= TARGET_PSNR,
        ),
        Row(
            "data: mask pixels identical",
            f"{100 * agreement:.2f} %",
            target=f">= {100 * TARGET_MASK_AGREEMENT:g} %",
            passed=agreement >= TARGET_MASK_AGREEMENT,
        ),
    ]
