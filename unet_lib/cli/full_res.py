"""Scores at each picture's own size, as Kaggle (Carvana) and the official Cityscapes script count them.

The network sees resized pictures; these metrics upsample its logits to each file's own size and
compare them with the mask as stored. They plug into ``unet_lib.evaluate`` like any metric, over a
loader that also gives the full-size masks (:func:`with_full_masks`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from unet_lib.errors import InputError
from unet_lib.evaluation import Batch, Scores, upsample


class FullResScores(Scores):
    """:class:`~unet_lib.evaluation.Scores` counted at each file's own size: the logits are upsampled to
    the stored mask's size before the threshold or the argmax."""

    def pairs(self, batch: Batch) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if batch.full_masks is None:
            raise InputError("loader: full-resolution scores need full-size masks; use cli.full_res.with_full_masks")
        logits = batch.tta_logits if self.tta else batch.logits
        for k, full in enumerate(batch.full_masks):  # pictures may differ in size: one at a time
            yield upsample(logits[k : k + 1], full.shape), full[None]  # (1, C, H, W), (1, H, W)


def binary_metrics(threshold: float = 0.5) -> list[Scores]:
    """What ``python -m unet_lib evaluate`` reports for two classes: the scores at the network's size, and the
    mean Dice at each picture's own size (``dice_full_res``, Kaggle's Carvana metric), each also with flip TTA."""
    return [
        Scores(1, [threshold]),
        FullResScores(1, [threshold], suffix="_full_res", keys=["dice"]),
        Scores(1, [threshold], tta=True, suffix="_tta", keys=["dice"]),
        FullResScores(1, [threshold], tta=True, suffix="_full_res_tta", keys=["dice"]),
    ]


class WithFullMasks(Dataset):
    """A dataset's ``(image, mask)`` items at the network's size, plus the mask at the file's own size."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image, mask = self.dataset[index]
        return image, mask, torch.from_numpy(self.dataset.read_mask(index))


def stack_full_masks(items: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> tuple:
    """Stack images and masks; keep the full-size masks as a list (pictures may differ in size)."""
    images, masks, full_masks = zip(*items, strict=True)
    return torch.stack(images), torch.stack(masks), list(full_masks)


def with_full_masks(dataset: Dataset, batch_size: int = 4, num_workers: int = 0) -> Iterable:
    """A loader of ``(images, masks, full-size masks)`` for the full-resolution scores.

    ``dataset`` reads the full-size mask of item ``i`` with ``read_mask(i)``.
    """
    return DataLoader(WithFullMasks(dataset), batch_size, num_workers=num_workers, collate_fn=stack_full_masks)
