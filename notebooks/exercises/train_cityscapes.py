"""Checks of the exercises in ``train_cityscapes``: each judges an answer against its own computation (torchvision's
label table, a cross-entropy, numpy), or against the library where the exercise is to redo what it does."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.datasets import Cityscapes

from exercises import verdict
from unet_lib.data.check import DataReport, loss_weights
from unet_lib.metrics import IGNORE_INDEX


def _numbers(answer, n: int | None = None) -> np.ndarray:
    """An answer of numbers (a list, tuple, array or tensor) as float64, with ``n`` values if given."""
    values = torch.as_tensor(answer).detach().cpu().double().flatten().numpy()
    if n is not None and values.size != n:
        raise ValueError(f"expected {n} numbers, got {values.size}")
    return values


def check_exercise_1(answer, label_ids: Sequence[int]) -> bool:
    """labelIds to trainIds: the answer, one trainId per labelId, against torchvision's Cityscapes table."""
    official = {c.id: (c.train_id if c.train_id not in (-1, 255) else IGNORE_INDEX) for c in Cityscapes.classes}
    right = np.array([official[int(i)] for i in label_ids])

    def judge(answer):
        got = _numbers(answer, len(right))
        wrong = [int(i) for i, g, r in zip(label_ids, got, right, strict=True) if g != r]
        if not wrong:
            return None
        first = wrong[0]
        if official[first] == IGNORE_INDEX:
            return f"labelId {first} is not one of the 19 evaluated classes: it becomes {IGNORE_INDEX}"
        return f"labelId {first} is wrong (and {len(wrong) - 1} more): find it in the 'labelId' column of the table"

    return verdict(1, answer, judge, f"labelIds {list(label_ids)} are trainIds {right.tolist()}.")


def check_exercise_2(answer, logits: torch.Tensor, target: torch.Tensor) -> bool:
    """The cross-entropy with ``ignore_index`` of a tiny example, against ``F.cross_entropy`` itself."""
    right = F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX).item()
    labelled = target != IGNORE_INDEX
    per_pixel = F.cross_entropy(logits, target.clamp(max=logits.shape[1] - 1), reduction="none")  # (B, H, W)
    over_all = (per_pixel * labelled).sum().item() / target.numel()  # ignored pixels counted as 0 loss

    def judge(answer):
        got = float(answer)
        rounded = [float(f"{right:.{digits}g}") for digits in (2, 3, 4)]  # the right loss rounded to 2-4 figures
        if math.isclose(got, right, abs_tol=1e-3) or any(math.isclose(got, r, rel_tol=1e-9) for r in rounded):
            return None
        if math.isclose(got, over_all, abs_tol=1e-3):
            return "you divided by every pixel; the mean is over the labelled pixels only"
        return f"average -ln(softmax) of the true class over the {int(labelled.sum())} labelled pixels only"

    return verdict(2, answer, judge, f"{right:.4f}: the mean over the labelled pixels, the ignored ones left out.")


def check_exercise_3(answer, pixels: Sequence[int]) -> bool:
    """Median-frequency weights of some classes' pixel counts, against ``unet_lib.data.check.loss_weights``."""
    counts = np.asarray(pixels, dtype=np.int64)
    right = np.array(loss_weights(DataReport(root=Path("."), dataset="cityscapes", class_pixels=counts)))
    freq = counts / counts.sum()

    def judge(answer):
        got = _numbers(answer, len(right))
        if np.allclose(got, right, rtol=0.02, atol=1e-3):  # right to 2-3 significant figures; the 0 exactly (or nearly)
            return None
        present = counts > 0
        if not present.all() and np.allclose(got[present], np.median(freq) / freq[present], rtol=0.02):
            return "take the median over the classes that have pixels only (and give an absent class 0)"
        if not np.all(np.abs(got[counts == 0]) < 1e-3):
            return "a class without pixels gets weight 0 (there is nothing of it to weigh)"
        one_figure = np.array([float(f"{w:.1g}") for w in right])  # each weight rounded to 1 significant figure
        if np.allclose(got, one_figure, rtol=1e-6, atol=1e-9):
            return "close, but rounded too coarsely: give each weight to 2-3 significant figures"
        return "freq = pixels / total; weight = median(freq of the classes present) / freq"

    shown = ", ".join(f"{w:.3g}" for w in right)
    return verdict(
        3, answer, judge, f"weights {shown}: the rarest class counts most, a class at the median share would count 1."
    )


def check_exercise_4(answer, masks: torch.Tensor, label: int, num_classes: int) -> bool:
    """Pixel accuracy and mIoU of one class predicted everywhere, counted here with numpy from the true labels."""
    truth = masks.cpu().numpy().ravel()
    truth = truth[truth != IGNORE_INDEX]
    counts = np.bincount(truth, minlength=num_classes)
    accuracy = counts[label] / counts.sum()
    present = (counts > 0) | (np.arange(num_classes) == label)  # in the truth, or predicted
    miou = accuracy / present.sum()  # the class's IoU is its share; every other present class scores 0

    def close(got: float, value: float, rel: float = 0.01) -> bool:
        """Within ``rel`` of ``value`` (1 %: 3 significant figures pass, a wrong count of classes does not)."""
        return math.isclose(got, value, rel_tol=rel, abs_tol=1e-6)

    def judge(answer):
        got_accuracy, got_miou = _numbers(answer, 2)
        if close(got_accuracy, accuracy) and close(got_miou, miou):
            return None
        if not close(got_accuracy, accuracy):
            if close(got_accuracy, accuracy, 0.05):
                return "pixel accuracy: close, but give it to 3 significant figures"
            return "pixel accuracy: the share of the labelled pixels that are truly that class"
        if close(got_miou, accuracy / num_classes) and present.sum() != num_classes:
            return "the mean is over the classes present (in truth or prediction), not all of them"
        if close(got_miou, accuracy / (present.sum() + 1)):
            return f"255 is not a class: divide by the {present.sum()} classes present, not {present.sum() + 1}"
        if close(got_miou, miou, 0.03):
            return "mIoU: close, but give it to 3 significant figures"
        return "the class's IoU equals its share (every pixel predicted as it); every other present class has IoU 0"

    return verdict(
        4, answer, judge, f"pixel accuracy {accuracy:.3g}, mIoU {miou:.3g}: one class everywhere scores a poor mIoU."
    )


def check_exercise_5(answer, iou: Sequence[float], class_names: Sequence[str]) -> bool:
    """The classes never predicted right (IoU 0), against the IoUs the evaluation computed."""
    right = {n for n, v in zip(class_names, torch.as_tensor(iou).tolist(), strict=True) if v == 0}

    def judge(answer):
        if isinstance(answer, str):
            raise TypeError("expected a list of class names, got one string")
        got = set(answer)
        if unknown := got - set(class_names):
            return f"not class names: {sorted(unknown)}"
        if got == right:
            return None
        missed, extra = sorted(right - got), sorted(got - right)
        parts = [f"{len(missed)} missing" if missed else "", f"{len(extra)} got some pixels right" if extra else ""]
        return "; ".join(p for p in parts if p) + " (IoU 0 means the confusion matrix's diagonal entry is 0)"

    return verdict(5, answer, judge, f"{len(right)} classes with IoU 0: {', '.join(sorted(right)) or 'none'}.")


def check_exercise_6(answer, mat: torch.Tensor) -> bool:
    """The mIoU of a small confusion matrix, computed here with numpy (classes absent everywhere left out)."""
    m = np.asarray(mat, dtype=np.float64)
    tp, union = np.diag(m), m.sum(0) + m.sum(1) - np.diag(m)
    with np.errstate(invalid="ignore"):
        iou = tp / union  # NaN where the class is in neither truth nor prediction
    right = float(np.nanmean(iou))
    absent_as_zero = float(np.nan_to_num(iou).mean())
    accuracy = tp.sum() / m.sum()

    def judge(answer):
        got = float(answer)
        if math.isclose(got, right, abs_tol=0.005):  # two decimals are enough
            return None
        if math.isclose(got, absent_as_zero, abs_tol=0.005):
            return "a class with no pixel in truth or prediction has IoU 0/0: leave it out of the mean (nanmean)"
        if math.isclose(got, accuracy, abs_tol=0.005):
            return "that is the pixel accuracy; the mIoU averages TP / (TP + FP + FN) over the classes"
        return "IoU of class c = mat[c, c] / (row c's sum + column c's sum - mat[c, c]); then the mean"

    return verdict(6, answer, judge, f"mIoU {right:.4f}, over {int(np.isfinite(iou).sum())} of {len(m)} classes.")
