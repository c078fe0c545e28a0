"""Segmentation metrics: the one place where Dice, IoU, precision and recall are computed, all from four pixel
counts (true/false positives and negatives) that ``ConfusionMatrix`` (classes) or ``BinaryCounts`` (one class,
image by image) gathers."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.distributed as dist

from unet_lib.errors import InputError
from unet_lib.runtime import is_distributed

IGNORE_INDEX = 255  # label of "don't care" pixels, shared by padding, loss and metrics
COUNT_NAMES = ("tp", "fp", "fn", "tn")  # the order of the last axis of BinaryCounts.counts


def dice_score(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor, empty: float = 1.0) -> torch.Tensor:
    """Dice (F1) = 2TP / (2TP + FP + FN) of pixel counts of any (equal) shape, elementwise, in float64. Where
    2TP + FP + FN = 0 (nothing to find, nothing found) it is ``empty``: 1 for an image (Kaggle's rule), NaN for
    a class that never appears."""
    tp, total = tp.double(), 2 * tp.double() + fp.double() + fn.double()
    return torch.where(total > 0, 2 * tp / total.clamp(min=1), torch.full_like(total, empty))


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """numerator / denominator in float64; 0 / 0 is NaN, an undefined score."""
    return numerator.double() / denominator.double()


def binarize(logits: torch.Tensor, thresholds: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Binary logits [B, 1, H, W] -> bool masks [T, B, H, W]: "car" where sigmoid(logit) > threshold.
    sigmoid(x) > t  <=>  x > logit(t) = log(t / (1 - t)), so no sigmoid is needed."""
    t = torch.as_tensor(thresholds, dtype=torch.float64).reshape(-1)
    cut = torch.logit(t).to(logits.device, torch.float32)  # (T,) thresholds as logits
    return logits[:, 0].float() > cut[:, None, None, None]  # (T, B, H, W)


def binary_counts(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """TP, FP, FN and TN pixels of each image of a binary prediction.

    Args:
        pred: Predicted masks [..., N, H, W], bool or 0/1 (e.g. [T, N, H, W] from :func:`binarize`).
        target: True masks [N, H, W] of 0/1; ``IGNORE_INDEX`` pixels count nowhere.

    Returns:
        int64 [..., N, 4] in the order of ``COUNT_NAMES``.
    """
    if target.ndim != 3 or pred.shape[-3:] != target.shape:
        raise InputError(
            f"pred and target: expected masks [N, H, W] of the same size, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    labelled = target != IGNORE_INDEX
    if not ((target[labelled] == 0) | (target[labelled] == 1)).all():
        raise InputError("target: expected a binary mask (0/1, or 255 for ignored pixels), found other values")
    if pred.dtype != torch.bool and not ((pred == 0) | (pred == 1)).all():
        raise InputError("pred: expected a binary mask (bool or 0/1), found other values")
    pred, truth = pred.bool().to(target.device), target == 1
    outcomes = (pred & truth, pred & ~truth & labelled, ~pred & truth, ~pred & ~truth & labelled)
    return torch.stack([o.flatten(-2).sum(-1) for o in outcomes], dim=-1)  # (..., N, 4)


def binary_scores(counts: torch.Tensor) -> dict[str, float]:
    """Scores of images' counts [N, 4]: ``dice`` (mean per image, the Kaggle metric), and pooled over
    all their pixels ``pixel_accuracy``, ``precision``, ``recall`` and ``iou`` (NaN when undefined)."""
    tp, fp, fn, tn = counts.sum(0).unbind(-1)  # pooled over the images
    return {
        "dice": dice_score(*counts[..., :3].unbind(-1)).mean().item(),
        "pixel_accuracy": _ratio(tp + tn, tp + fp + fn + tn).item(),
        "precision": _ratio(tp, tp + fp).item(),
        "recall": _ratio(tp, tp + fn).item(),
        "iou": _ratio(tp, tp + fp + fn).item(),
    }


def dice_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Dice 2|X∩Y| / (|X| + |Y|) of each image, float [N]: the Kaggle Carvana metric (report the mean). Both
    masks are [N, H, W] or [N, 1, H, W], bool or 0/1; an empty prediction on an empty mask scores 1."""
    pred, target = (m[:, 0] if m.ndim == 4 and m.shape[1] == 1 else m for m in (pred, target))  # [N, H, W]
    for name, mask in (("pred", pred), ("target", target)):
        if mask.ndim != 3:
            raise InputError(
                f"{name}: expected a mask batch of shape [N, H, W] or [N, 1, H, W], got {tuple(mask.shape)}"
            )
    return dice_score(*binary_counts(pred, target)[..., :3].unbind(-1)).float()


class ConfusionMatrix:
    """Counts ``mat[target, pred]`` over every labelled pixel seen so far: for class ``c``, true positives
    ``mat[c, c]``, ground-truth pixels ``mat[c, :].sum()``, predicted pixels ``mat[:, c].sum()``.

    Args:
        num_classes: Labels are ``0 .. num_classes - 1``.
        ignore_index: Target value of pixels that are skipped (padding, unlabelled regions).
        device: Where ``mat`` lives; put it next to the predictions to avoid copies.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, device: torch.device | str | None = None):
        if num_classes < 1:
            raise InputError(f"num_classes: expected a positive integer, got {num_classes}")
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.mat = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: integer label maps of the same shape (e.g. ``logits.argmax(1)``, [N, H, W]); pixels
        whose ``target`` is ``ignore_index`` are skipped."""
        if pred.shape != target.shape:
            raise InputError(
                f"pred and target: expected the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
            )
        if pred.is_floating_point() or target.is_floating_point():
            raise InputError(f"pred and target: expected integer label maps, got {pred.dtype} and {target.dtype}")
        n = self.num_classes
        target, pred = (t.detach().flatten().long().to(self.mat.device) for t in (target, pred))
        keep = target != self.ignore_index
        target, pred = target[keep], pred[keep]
        for name, labels in (("pred", pred), ("target", target)):
            if labels.numel() and (labels.min() < 0 or labels.max() >= n):
                bad = labels[(labels < 0) | (labels >= n)][0].item()
                raise InputError(f"{name}: expected labels in 0..{n - 1} (or {self.ignore_index} in target), got {bad}")
        # Encode each (target, pred) pair as one number target * n + pred, then count them all at once.
        self.mat += torch.bincount(target * n + pred, minlength=n * n).reshape(n, n)

    def reduce_from_all_processes(self) -> None:
        """Sum ``mat`` over all processes of a distributed run; does nothing outside one."""
        if is_distributed():
            dist.all_reduce(self.mat)

    def compute(self) -> dict:
        """Turn the counts into scores. Per-class values are NaN where their denominator is zero.

        - pixel accuracy: share of labelled pixels whose predicted class is right.
        - IoU (Jaccard): overlap / union of predicted and true pixels of a class, TP / (TP + FP + FN).
        - mIoU: mean IoU over the classes present in prediction or ground truth (absent classes are
          left out, as the official Cityscapes evaluation does).
        - Dice (F1): 2TP / (2TP + FP + FN).
        - precision: of the pixels predicted as the class, the share that really are, TP / (TP + FP).
        - recall: of the pixels that really are the class, the share that were found, TP / (TP + FN).

        Returns ``pixel_accuracy`` and ``miou`` (floats), ``iou``, ``dice``, ``precision``, ``recall`` (float
        tensors [C]) and ``mat`` (a copy of the int64 counts [C, C]), on the CPU.
        """
        mat = self.mat.cpu()
        tp = mat.diag()
        fn = mat.sum(1) - tp  # the class's pixels predicted as something else
        fp = mat.sum(0) - tp  # the class predicted on other classes' pixels
        iou = _ratio(tp, tp + fp + fn)
        return {
            "pixel_accuracy": _ratio(tp.sum(), mat.sum()).item(),
            "miou": iou.nanmean().item(),
            "iou": iou.float(),
            "dice": dice_score(tp, fp, fn, empty=math.nan).float(),
            "precision": _ratio(tp, tp + fp).float(),
            "recall": _ratio(tp, tp + fn).float(),
            "mat": mat.clone(),
        }

    def __repr__(self) -> str:
        return f"ConfusionMatrix(num_classes={self.num_classes}, pixels={int(self.mat.sum())})"


class BinaryCounts:
    """TP, FP, FN and TN pixels of every image seen, at each of a few probability thresholds: one pass over the
    data gives the scores at every threshold, so a threshold sweep costs no more than one evaluation.

    Args:
        thresholds: Probabilities strictly between 0 and 1; a pixel is "car" above one.
        device: Where the counts are made (the logits' device).
    """

    def __init__(self, thresholds: Sequence[float] = (0.5,), device: torch.device | str | None = None):
        values = [float(t) for t in thresholds]
        if not values or not all(0 < t < 1 for t in values):
            raise InputError(f"thresholds: expected probabilities strictly between 0 and 1, got {list(thresholds)}")
        self.thresholds = torch.tensor(values, dtype=torch.float64)  # (T,) on the CPU
        self._chunks = [torch.zeros(len(values), 0, 4, dtype=torch.int64, device=device)]

    @property
    def counts(self) -> torch.Tensor:
        """int64 [T, N, 4] on the CPU: the counts (``COUNT_NAMES``) of image ``n`` at threshold ``t``."""
        return torch.cat(self._chunks, dim=1).cpu()

    def __len__(self) -> int:
        return sum(chunk.shape[1] for chunk in self._chunks)

    def update(self, logits: torch.Tensor, masks: torch.Tensor) -> None:
        """Add a batch: binary logits [B, 1, H, W] and true masks [B, H, W] (255: ignored)."""
        if logits.ndim != 4 or logits.shape[1] != 1:
            raise InputError(f"logits: expected one output channel (a binary model), got shape {tuple(logits.shape)}")
        self._chunks.append(binary_counts(binarize(logits, self.thresholds), masks.to(logits.device)))

    def reduce_from_all_processes(self) -> None:
        """Gather every process's images (counts are per image, so they are concatenated, not summed)."""
        if is_distributed():
            gathered = [None] * dist.get_world_size()  # each process's (T, n, 4), its n its own
            dist.all_gather_object(gathered, self.counts)
            self._chunks = gathered

    def index(self, threshold: float | None) -> int:
        """Position of ``threshold`` among the thresholds counted (None: the only one counted)."""
        if threshold is None:
            if len(self.thresholds) > 1:
                raise InputError(f"threshold: several were counted, name one of {self.thresholds.tolist()}")
            return 0
        close = (self.thresholds - threshold).abs() < 1e-9
        if not close.any():
            raise InputError(f"threshold: {threshold} was not counted; expected one of {self.thresholds.tolist()}")
        return int(close.nonzero()[0])

    def dice(self) -> torch.Tensor:
        """Per-image Dice (the Kaggle metric before averaging), float64 [T, N]."""
        return dice_score(*self.counts[..., :3].unbind(-1))

    def scores(self, threshold: float | None = None) -> dict[str, float]:
        """:func:`binary_scores` at one threshold (None: the only one counted)."""
        if len(self) == 0:
            raise InputError("counts: no images were counted")
        return binary_scores(self.counts[self.index(threshold)])
