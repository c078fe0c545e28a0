"""Segmentation metrics: a confusion matrix on ``torch.bincount`` and the per-image Dice of Carvana.

Every score here comes from four counts per class: true/false positives and negatives.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from unet_lib.errors import InputError

IGNORE_INDEX = 255  # label of "don't care" pixels, shared by padding, loss and metrics


class ConfusionMatrix:
    """Counts ``mat[target, pred]`` over every labelled pixel seen so far.

    Rows are the true class, columns the predicted class, so for class ``c``:
    true positives ``mat[c, c]``, ground-truth pixels ``mat[c, :].sum()``, predicted pixels ``mat[:, c].sum()``.
    The raw counts live in the int64 tensor ``mat``; sum it across processes (``all_reduce``) for distributed
    evaluation, or add two matrices with ``+=``.

    Args:
        num_classes: Number of classes; labels are ``0 .. num_classes - 1``.
        ignore_index: Target value of pixels that are skipped (padding, unlabelled regions).
        device: Where ``mat`` lives; put it next to the predictions to avoid copies.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, device: torch.device | str | None = None):
        if num_classes < 1:
            raise InputError(f"num_classes: expected a positive integer, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.mat = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch of label maps.

        Args:
            pred: Predicted labels, integer tensor of any shape (e.g. ``logits.argmax(1)``, [N, H, W]).
            target: True labels, same shape; pixels equal to ``ignore_index`` are skipped.
        """
        if pred.shape != target.shape:
            raise InputError(
                f"pred and target: expected the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
            )
        if pred.is_floating_point() or target.is_floating_point():
            raise InputError(f"pred and target: expected integer label maps, got {pred.dtype} and {target.dtype}")
        n = self.num_classes
        target = target.detach().flatten().long()
        pred = pred.detach().flatten().long().to(target.device)
        keep = target != self.ignore_index
        target, pred = target[keep], pred[keep]
        for name, labels in (("pred", pred), ("target", target)):
            if labels.numel() and (labels.min() < 0 or labels.max() >= n):
                bad = labels[(labels < 0) | (labels >= n)][0].item()
                raise InputError(f"{name}: expected labels in 0..{n - 1} (or {self.ignore_index} in target), got {bad}")
        # Encode each (target, pred) pair as one number target * n + pred, then count them all at once.
        counts = torch.bincount(target * n + pred, minlength=n * n).reshape(n, n)
        self.mat += counts.to(self.mat.device)

    def reset(self) -> None:
        """Set every count back to zero."""
        self.mat.zero_()

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add the counts of another matrix (e.g. from another data shard) into this one; returns ``self``."""
        if (other.num_classes, other.ignore_index) != (self.num_classes, self.ignore_index):
            raise InputError(
                f"other: expected a ConfusionMatrix with num_classes={self.num_classes}, ignore_index="
                f"{self.ignore_index}, got num_classes={other.num_classes}, ignore_index={other.ignore_index}"
            )
        self.mat += other.mat.to(self.mat.device)
        return self

    def __iadd__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        return self.merge(other)

    def reduce_from_all_processes(self) -> None:
        """Sum ``mat`` over all processes of the default group; does nothing outside distributed runs."""
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.mat)

    def compute(self) -> dict:
        """Turn the counts into scores. Per-class values are NaN where their denominator is zero.

        - pixel accuracy: share of labelled pixels whose predicted class is right.
        - IoU (Jaccard): overlap / union of predicted and true pixels of a class, TP / (TP + FP + FN).
        - mIoU: mean IoU over the classes present in prediction or ground truth (absent classes are left
          out, as the official Cityscapes evaluation does).
        - Dice (F1): 2 * overlap / (predicted + true pixels), 2TP / (2TP + FP + FN).
        - precision: of the pixels predicted as the class, the share that really are, TP / (TP + FP).
        - recall: of the pixels that really are the class, the share that were found, TP / (TP + FN).

        Returns:
            A dict with ``pixel_accuracy`` and ``miou`` (floats), ``iou``, ``dice``, ``precision``, ``recall``
            (float tensors [C]) and ``mat`` (a copy of the int64 counts [C, C]).
        """
        mat = self.mat.double()
        tp = mat.diag()
        true_pixels = mat.sum(1)  # TP + FN, per class
        pred_pixels = mat.sum(0)  # TP + FP, per class
        # 0 / 0 gives NaN, which is what an undefined score should be.
        iou = tp / (true_pixels + pred_pixels - tp)
        return {
            "pixel_accuracy": (tp.sum() / mat.sum()).item(),
            "miou": iou.nanmean().item(),
            "iou": iou.float(),
            "dice": (2 * tp / (true_pixels + pred_pixels)).float(),
            "precision": (tp / pred_pixels).float(),
            "recall": (tp / true_pixels).float(),
            "mat": self.mat.clone(),
        }

    def __repr__(self) -> str:
        return f"ConfusionMatrix(num_classes={self.num_classes}, pixels={int(self.mat.sum())})"


def binary_stats(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Pixel accuracy, and IoU, Dice, precision and recall of the foreground, for binary masks.

    The scores pool every pixel of the batch; for the per-image Carvana score use :func:`dice_per_image`.

    Args:
        pred: Predicted mask, bool or 0/1 integers, any shape.
        target: True mask, same shape; pixels equal to ``IGNORE_INDEX`` are skipped.

    Returns:
        A dict of floats: ``pixel_accuracy``, ``iou``, ``dice``, ``precision``, ``recall``.
    """
    cm = ConfusionMatrix(2, device=target.device)
    cm.update(pred.long(), target.long())
    scores = cm.compute()
    return {"pixel_accuracy": scores["pixel_accuracy"]} | {
        key: scores[key][1].item() for key in ("iou", "dice", "precision", "recall")
    }


def _as_image_masks(mask: torch.Tensor, name: str) -> torch.Tensor:
    """[N, H, W] or [N, 1, H, W] bool / 0-1 -> bool [N, H * W]."""
    if mask.ndim == 4 and mask.shape[1] == 1:
        mask = mask[:, 0]
    if mask.ndim != 3:
        raise InputError(f"{name}: expected a mask batch of shape [N, H, W] or [N, 1, H, W], got {tuple(mask.shape)}")
    if mask.dtype != torch.bool and not ((mask == 0) | (mask == 1)).all():
        raise InputError(f"{name}: expected a binary mask (bool or 0/1), found other values")
    return mask.flatten(1).bool()


def dice_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Dice coefficient 2|X∩Y| / (|X| + |Y|) of each image, the Kaggle Carvana metric (report the mean).

    An empty prediction on an empty mask scores 1: nothing to find, nothing found.

    Args:
        pred: Predicted masks [N, H, W] or [N, 1, H, W], bool or 0/1.
        target: True masks, same layout.

    Returns:
        Float tensor [N] of scores in [0, 1].
    """
    pred, target = _as_image_masks(pred, "pred"), _as_image_masks(target, "target")
    if pred.shape != target.shape:
        raise InputError(
            f"pred and target: expected masks of the same size, got {tuple(pred.shape)} and {tuple(target.shape)}"
            " (flattened)"
        )
    overlap = (pred & target).sum(1).float()  # [N]
    total = (pred.sum(1) + target.sum(1)).float()  # [N]
    return torch.where(total > 0, 2 * overlap / total.clamp(min=1), torch.ones_like(total))
