"""Cityscapes as the official ``evalPixelLevelSemanticLabeling`` scores it: the scores, plugged into
``unet_lib.evaluate`` as a metric, the labelId PNGs the official evaluator and the test server read, and
the official script's two score tables.

Scores are taken at the labels' own 1024x2048: logits are upsampled before the argmax. The pixels
are counted by ``metrics.ConfusionMatrix``; this module only applies the official definitions to it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from unet_lib.cli.pictures import Inference, predict_full_res
from unet_lib.data.cityscapes import (
    CLASS_NAMES,
    NUM_CLASSES,
    NUM_LABEL_IDS,
    TRAIN_CLASSES,
    CityscapesDataset,
    label_to_train_lut,
)
from unet_lib.errors import InputError
from unet_lib.evaluation import Batch, upsample
from unet_lib.metrics import IGNORE_INDEX, ConfusionMatrix
from unet_lib.viz.colors import colorize

VOID = NUM_CLASSES  # confusion-matrix column 19: a predicted labelId that is not evaluated (unlabeled, parking, ...)
# The 7 categories with evaluated classes ("void" has none), in the official order.
CATEGORY_NAMES = list(dict.fromkeys(c.category for c in sorted(TRAIN_CLASSES, key=lambda c: c.category_id)))
CLASS_CATEGORY = [CATEGORY_NAMES.index(c.category) for c in TRAIN_CLASSES]  # trainId -> category index


def train_to_label_lut() -> torch.Tensor:
    """A 256-entry table mapping trainIds 0..18 back to labelIds (255 -> 0, unlabeled)."""
    lut = torch.zeros(256, dtype=torch.uint8)
    for c in TRAIN_CLASSES:
        lut[c.train_id] = c.id
    return lut


def class_frequencies(dataset: CityscapesDataset) -> np.ndarray:
    """Share of labelled pixels of each of the 19 classes over a dataset (ignored pixels left out)."""
    counts = np.zeros(NUM_CLASSES, dtype=np.int64)
    for index in range(len(dataset)):
        labels = dataset.read_labels(index).numpy()
        counts += np.bincount(labels[labels != IGNORE_INDEX], minlength=NUM_CLASSES)[:NUM_CLASSES]
    return counts / max(counts.sum(), 1)


def cityscapes_scores(mat: torch.Tensor) -> dict[str, Any]:
    """Class and category IoU, their means, and pixel accuracy, following the official definitions.

    Only pixels whose ground truth is an evaluated class count. For a class, a false negative is
    any other prediction on its pixels, void ones included; a false positive is a prediction of
    the class on a pixel of another evaluated class. A category is scored the same way after
    merging its classes. Classes (categories) with neither ground truth nor prediction get NaN
    and are left out of the mean, as in the official script.

    Args:
        mat: Confusion matrix [>= 19, 20]: rows are true trainIds, columns predicted trainIds
            and, last, ``VOID`` (any non-evaluated labelId).

    Returns:
        ``pixel_accuracy``, ``miou``, ``iou`` ({class name: IoU}), ``category_miou``,
        ``category_iou`` ({category name: IoU}) and ``mat`` (the int64 counts [19, 19] of true
        against predicted trainIds, for a confusion-matrix figure).
    """
    counts = mat[:NUM_CLASSES, :NUM_CLASSES].cpu().clone()
    mat = mat[:NUM_CLASSES].double().cpu()  # (19, 20): only evaluated ground truth
    tp = mat.diag()
    fn = mat.sum(1) - tp  # row: everything predicted on the class's pixels, void included
    fp = mat[:, :NUM_CLASSES].sum(0) - tp  # column: the class predicted on other evaluated pixels
    iou = tp / (tp + fp + fn)  # 0 / 0 = NaN for a class absent from both

    member = torch.zeros(NUM_CLASSES, len(CATEGORY_NAMES), dtype=torch.float64)
    member[torch.arange(NUM_CLASSES), torch.tensor(CLASS_CATEGORY)] = 1  # (19, 7) one-hot
    by_category = member.T @ mat  # (7, 20): true category x predicted class
    merged = by_category[:, :NUM_CLASSES] @ member  # (7, 7): true category x predicted category
    cat_tp = merged.diag()
    cat_fn = by_category.sum(1) - cat_tp
    cat_fp = merged.sum(0) - cat_tp
    category_iou = cat_tp / (cat_tp + cat_fp + cat_fn)
    return {
        "pixel_accuracy": (tp.sum() / mat.sum()).item(),
        "miou": iou.nanmean().item(),
        "iou": dict(zip(CLASS_NAMES, iou.tolist(), strict=True)),
        "category_miou": category_iou.nanmean().item(),
        "category_iou": dict(zip(CATEGORY_NAMES, category_iou.tolist(), strict=True)),
        "mat": counts,
    }


class OfficialScores:
    """The official pixel-level scores (see :func:`cityscapes_scores`), counted at the labels' own size:
    ``evaluate``'s metric for Cityscapes. Needs a loader with full-size labels (``cli.full_res.with_full_masks``).

    A 19-class model's argmax is a trainId, mapped to its labelId; a 34-class model (the original
    project's) predicts labelIds directly. A predicted labelId that is not evaluated is wrong, but no
    class's false positive (column ``VOID``).

    Args:
        tta: Score the flip-averaged logits.
    """

    def __init__(self, tta: bool = False):
        self.tta = tta
        self.matrix: ConfusionMatrix | None = None

    def label_ids(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits [C, H, W] -> labelIds [H, W]."""
        labels = logits.argmax(0)  # (H, W)
        if logits.shape[0] == NUM_CLASSES:
            return train_to_label_lut().to(labels.device)[labels]
        if logits.shape[0] != NUM_LABEL_IDS:
            raise InputError(f"model: predicts {logits.shape[0]} classes; expected 19 trainIds or 34 labelIds")
        return labels

    def update(self, batch: Batch) -> None:
        device = batch.logits.device
        if self.matrix is None:
            self.matrix = ConfusionMatrix(NUM_CLASSES + 1, device=device)
        to_eval = label_to_train_lut().long().to(device)
        to_eval[to_eval == IGNORE_INDEX] = VOID
        logits = batch.tta_logits if self.tta else batch.logits
        for k, target in enumerate(batch.full_masks):  # (H, W) trainIds, 255 where not evaluated
            label_ids = self.label_ids(upsample(logits[k : k + 1], target.shape)[0])
            self.matrix.update(to_eval[label_ids.long()], target)

    def reduce_from_all_processes(self) -> None:
        self.matrix = self.matrix or ConfusionMatrix(NUM_CLASSES + 1)
        self.matrix.reduce_from_all_processes()

    def compute(self) -> dict[str, Any]:
        return cityscapes_scores(self.matrix.mat)


def predict_label_ids(
    model: nn.Module, image_paths: Sequence[str | Path], how: Inference
) -> Iterator[tuple[int, torch.Tensor]]:
    """Predict labelIds at each image's own size (a 19-class model's trainIds mapped back to labelIds).

    Yields:
        ``(index into image_paths, labelIds uint8 [H, W] on the model's device)``.
    """
    for index, logits in predict_full_res(model, image_paths, how):
        yield index, OfficialScores().label_ids(logits).to(torch.uint8)


def result_paths(out_dir: str | Path, image_id: str) -> tuple[Path, Path]:
    """Where ``write_cityscapes_predictions`` puts an image's labelIds PNG and its colour PNG.

    The official evaluator searches its results folder recursively for exactly one file named
    ``<city>_<seq>_<frame>*.png`` per image, so the colour file's name starts with ``color_``.
    """
    out_dir = Path(out_dir)
    return out_dir / f"{image_id}_leftImg8bit.png", out_dir / "color" / f"color_{image_id}.png"


def write_cityscapes_predictions(
    model: nn.Module, dataset: CityscapesDataset, out_dir: str | Path, how: Inference, overwrite: bool = False
) -> list[Path]:
    """Write full-resolution labelId PNGs that the official evaluator and test server read, plus colour PNGs.

    Point ``CITYSCAPES_RESULTS`` at ``out_dir`` and run ``csEvalPixelLevelSemanticLabeling``;
    zip the labelId files for the test server.

    Args:
        model: A 19-class (trainIds) or 34-class (labelIds) U-Net.
        dataset: The split to predict (``ids`` name the files).
        out_dir: Folder for ``<id>_leftImg8bit.png`` (labelIds) and ``color/color_<id>.png``.
        how: Size, TTA and batches (:class:`~unet_lib.cli.pictures.Inference`).
        overwrite: Replace existing files.

    Returns:
        The labelId PNGs written.
    """
    paths = [result_paths(out_dir, image_id) for image_id in dataset.ids]
    existing = [p for pair in paths for p in pair if p.exists()]
    if existing and not overwrite:
        raise InputError(
            f"{existing[0]}: already exists ({len(existing)} files would be replaced); "
            "pass --overwrite (overwrite=True) or choose another --out"
        )
    (Path(out_dir) / "color").mkdir(parents=True, exist_ok=True)
    for index, label_ids in predict_label_ids(model, dataset.images, how):
        label_path, color_path = paths[index]
        label_ids = label_ids.cpu()  # (H, W) uint8
        Image.fromarray(label_ids.numpy()).save(label_path)
        Image.fromarray(colorize(label_ids, "labelid").permute(1, 2, 0).numpy()).save(color_path)
    return [label_path for label_path, _ in paths]


def print_scores(scores: dict[str, Any]) -> None:
    """The two tables the official script prints: class IoU and category IoU, each with its mean."""
    for title, key in (("classes", "iou"), ("categories", "category_iou")):
        print(f"{title:<16} IoU\n{'-' * 22}")
        for name, value in scores[key].items():
            print(f"{name:<16} {value:.3f}")
        mean = scores["miou" if key == "iou" else "category_miou"]
        print(f"{'-' * 22}\n{'Score Average':<16} {mean:.3f}\n")
    print(f"{'pixel accuracy':<16} {scores['pixel_accuracy']:.3f}")


__all__ = [
    "CATEGORY_NAMES",
    "OfficialScores",
    "cityscapes_scores",
    "class_frequencies",
    "predict_label_ids",
    "print_scores",
    "result_paths",
    "train_to_label_lut",
    "write_cityscapes_predictions",
]
