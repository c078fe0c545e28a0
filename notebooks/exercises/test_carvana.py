"""The checks of ``test_carvana``'s exercises: each judges an answer against its own computation of the result."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from exercises import verdict


def dice_of(pred: torch.Tensor, mask: torch.Tensor) -> float:
    """Dice 2|P∩M| / (|P| + |M|) of one binary picture [H, W], counted with set operations (1 when both are empty)."""
    pred, mask = pred.bool(), mask.bool()
    both, sizes = (pred & mask).sum().item(), pred.sum().item() + mask.sum().item()
    return 2 * both / sizes if sizes else 1.0


def check_exercise_1(answer, pred: torch.Tensor, mask: torch.Tensor) -> bool:
    """Exercise 1: the Dice of one picture (its prediction and mask [H, W]) from its TP, FP and FN counts."""
    expected = dice_of(pred, mask)
    pred, mask = pred.bool(), mask.bool()
    tp, fp, fn = (pred & mask).sum().item(), (pred & ~mask).sum().item(), (~pred & mask).sum().item()

    def judge(answer) -> str | None:
        value = float(answer)
        if abs(value - expected) < 1e-6 or abs(value - round(expected, 4)) < 1e-9:  # or as the table rounds it
            return None
        if abs(value - tp / (tp + fp + fn)) < 1e-6:
            return "that is the IoU, TP / (TP + FP + FN); the Dice counts TP twice: 2 TP / (2 TP + FP + FN)"
        if abs(value - (pred == mask).float().mean().item()) < 1e-6:
            return "that is the pixel accuracy, which counts the background too; the Dice uses TP, FP and FN only"
        return "count TP = pred & mask, FP = pred & ~mask, FN = ~pred & mask, then 2 TP / (2 TP + FP + FN)"

    right = f"TP {tp}, FP {fp}, FN {fn}: Dice {expected:.4f}, the score the library gives this picture"
    return verdict(1, answer, judge, right)


def band_by_shifts(mask: torch.Tensor, band: int) -> torch.Tensor:
    """bool [H, W]: pixels within ``band`` px (in the (2b+1)x(2b+1) square) of an edge pixel of ``mask``, found by
    shifting the edge map in every direction, independently of the library's max-pooling."""
    height, width = mask.shape
    on_edge = F.pad(edges_of(mask)[None, None].float(), (band,) * 4)[0, 0] > 0  # zeros outside the picture
    near = torch.zeros_like(mask, dtype=torch.bool)
    for dy in range(2 * band + 1):
        for dx in range(2 * band + 1):
            near |= on_edge[dy : dy + height, dx : dx + width]
    return near


def check_exercise_2(answer, pred: torch.Tensor, mask: torch.Tensor, band: int) -> bool:
    """Exercise 2: the share of a picture's wrong pixels within ``band`` px of the car's outline (a float), or
    which kind dominates ("boundary" or "interior")."""
    wrong = pred.bool() != mask.bool()
    in_band = band_by_shifts(mask.long(), band)
    share = (wrong & in_band).sum().item() / max(wrong.sum().item(), 1)
    dominant = "boundary" if share > 0.5 else "interior"

    def judge(answer) -> str | None:
        if isinstance(answer, str):
            if answer.strip().lower() == dominant:
                return None
            return (
                f"count the wrong pixels inside boundary_band(mask[None], {band})[0] and compare with all wrong pixels"
            )
        value = float(answer)
        if abs(value - share) < 0.01:
            return None
        if abs(value - (1 - share)) < 0.01:
            return "that is the interior's share: the wrong pixels outside the band"
        if 0 <= value <= 1 and abs(value - in_band.float().mean().item()) < 0.01:
            return (
                "that is the band's share of all pixels; count only the wrong ones: (wrong & band).sum() / wrong.sum()"
            )
        return "a share between 0 and 1: (wrong & band).sum() / wrong.sum()"

    right = (
        f"{share:.0%} of its wrong pixels lie within {band} px of the outline, where {in_band.float().mean():.0%} of"
        f" its pixels lie: its errors are mostly {'on the boundary' if dominant == 'boundary' else 'in the interior'}"
    )
    return verdict(2, answer, judge, right)


def edges_of(mask: torch.Tensor) -> torch.Tensor:
    """bool [H, W]: pixels with a 4-neighbour of another label (written out again, independently of the library)."""
    out = torch.zeros_like(mask, dtype=torch.bool)
    out[1:] |= mask[1:] != mask[:-1]
    out[:-1] |= mask[1:] != mask[:-1]
    out[:, 1:] |= mask[:, 1:] != mask[:, :-1]
    out[:, :-1] |= mask[:, 1:] != mask[:, :-1]
    return out


def mean_dice_at(probs: torch.Tensor, masks: torch.Tensor, threshold: float) -> float:
    """Mean per-picture Dice of probabilities [N, H, W] cut at ``threshold`` against masks [N, H, W]."""
    return sum(dice_of(p > threshold, m) for p, m in zip(probs, masks, strict=True)) / len(masks)


def check_exercise_3(
    answer, probs: torch.Tensor, masks: torch.Tensor, cars: Sequence[str], thresholds: Sequence[float]
) -> bool:
    """Exercise 3: ``(threshold, dice)``: the threshold chosen on the first held-out car (best mean Dice among
    ``thresholds``) and the mean Dice it gives on the second car. ``probs`` [N, H, W], ``cars`` the car of each."""
    names = sorted(set(cars), key=list(cars).index)  # in order of appearance
    pick = torch.tensor([c == names[0] for c in cars])
    on_first = {t: mean_dice_at(probs[pick], masks[pick], t) for t in thresholds}
    on_second = {t: mean_dice_at(probs[~pick], masks[~pick], t) for t in thresholds}
    best_first, best_second = max(on_first.values()), max(on_second.values())
    chosen = min(t for t in thresholds if on_first[t] >= best_first - 1e-9)  # the lower one on ties, as the sweep
    own = min(t for t in thresholds if on_second[t] >= best_second - 1e-9)  # the second car's own best
    honest = on_second[chosen]

    def judge(answer) -> str | None:
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in answer):
            return f"write (threshold, dice) as two numbers, not {answer!r}"
        threshold, dice = float(answer[0]), float(answer[1])
        nearest = min(thresholds, key=lambda t: abs(t - threshold))
        if abs(nearest - threshold) > 1e-9:
            return f"choose among the sweep's thresholds {min(thresholds):.2f} .. {max(thresholds):.2f}"
        if on_first[nearest] < best_first - 1e-6:
            if own != chosen and abs(nearest - own) < 1e-9:
                return f"{own:.2f} is the best threshold of car {names[1]} itself: choose it on car {names[0]}"
            return f"on car {names[0]}, another threshold gives a higher mean Dice: take the best one there"
        if abs(dice - on_first[nearest]) < 1e-4 < abs(dice - on_second[nearest]):
            return f"that is the Dice on car {names[0]}, where you chose; measure it on car {names[1]}"
        if abs(dice - on_second[nearest]) > 1e-4 and abs(dice - round(on_second[nearest], 3)) > 1e-9:
            return f"the mean of the per-photo Dice of car {names[1]}'s photos at your threshold"
        return None

    if own == chosen:
        meaning = (
            f" both cars are best at {chosen:.2f}, so choosing on car {names[1]} itself would give the same score:"
            " on these photos the choice does not overfit"
        )
    else:
        meaning = (
            f" its own best threshold, {own:.2f}, would give {best_second:.4f}: choosing on the photos you report"
            f" would flatter the score by {best_second - honest:.4f}"
        )
    right = f"chosen on car {names[0]} ({chosen:.2f}), the threshold gives car {names[1]} a mean Dice {honest:.4f};{meaning}"
    return verdict(3, answer, judge, right)


def tta_dice(model: torch.nn.Module, images: torch.Tensor, masks: torch.Tensor, threshold: float, amp_dtype) -> float:
    """Mean per-picture Dice of the logits averaged with those of the mirrored photos (mirrored back)."""
    with (
        torch.inference_mode(),
        torch.autocast(images.device.type, amp_dtype or torch.float32, enabled=bool(amp_dtype)),
    ):
        plain = model(images).float()
        mirrored = model(images.flip(-1)).float().flip(-1)  # predicted on the mirror image, mirrored back
    probs = ((plain + mirrored) / 2).sigmoid()[:, 0].cpu()
    return mean_dice_at(probs, masks.cpu(), threshold)


def check_exercise_4(answer, model, images: torch.Tensor, masks: torch.Tensor, threshold: float, amp_dtype) -> bool:
    """Exercise 4: the mean Dice with test-time augmentation at the network's size (images [N, 3, H, W])."""
    expected = tta_dice(model, images, masks, threshold, amp_dtype)
    with (
        torch.inference_mode(),
        torch.autocast(images.device.type, amp_dtype or torch.float32, enabled=bool(amp_dtype)),
    ):
        logits = model(images).float()
        unflipped = (logits + model(images.flip(-1)).float()) / 2  # the mirror's logits left mirrored
    plain = mean_dice_at(logits.sigmoid()[:, 0].cpu(), masks.cpu(), threshold)
    wrong_way = mean_dice_at(unflipped.sigmoid()[:, 0].cpu(), masks.cpu(), threshold)

    def judge(answer) -> str | None:
        value = float(answer)
        close = 5e-5  # the Dice to 4 decimals: finer than TTA's gain, so its neighbours are told apart
        if abs(value - expected) < close and (expected == plain or abs(value - plain) > abs(value - expected)):
            return None
        if abs(value - plain) < close:
            return "that is the Dice without TTA: average the logits with those of the mirrored photos"
        if abs(value - wrong_way) < close:
            return "the mirror's prediction is mirrored too: flip it back (.flip(-1)) before averaging"
        if abs(value - expected) < 1e-3:
            return "close: compute it at the network's size (not the photo's), to 4 decimals"
        return "logits of the photos and of photos.flip(-1) (flipped back), averaged, then sigmoid > threshold"

    right = f"mean Dice {plain:.4f} without TTA, {expected:.4f} with it: a change of {expected - plain:+.4f}"
    return verdict(4, answer, judge, right)


def check_exercise_5(answer, intervals: Sequence[tuple[float, float]]) -> bool:
    """Exercise 5: for each 95 % interval of a mean difference B - A, is the difference real (True) or may it be
    luck (False)?"""
    expected = [not (low <= 0 <= high) for low, high in intervals]

    def judge(answer) -> str | None:
        if not all(isinstance(a, bool) for a in answer):
            return f"write True or False for each interval, not {list(answer)!r}"
        answer = list(answer)
        if len(answer) != len(intervals):
            return f"one True or False for each of the {len(intervals)} intervals"
        if answer == expected:
            return None
        if answer == [m > 0 for m in ((low + high) / 2 for low, high in intervals)]:
            return "a positive mean is not enough: what matters is whether the interval contains 0"
        return "a difference is real when its whole interval lies on one side of 0"

    right = "only an interval that excludes 0 shows one model better; the others may be the luck of the pictures"
    return verdict(5, answer, judge, right)


def check_exercise_6(answer, a: torch.Tensor, b: torch.Tensor, bootstrap: tuple[float, float] | None = None) -> bool:
    """Exercise 6: the normal approximation of the 95 % interval of the mean of ``b - a``: mean ± 1.96 s / sqrt(N),
    to 6 decimals. ``bootstrap``: the bootstrap interval printed in the notebook, refused as an answer."""
    diff = (b.double() - a.double()).tolist()
    n = len(diff)
    mean = sum(diff) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diff) / (n - 1))  # the sample standard deviation
    expected = (mean - 1.96 * sd / math.sqrt(n), mean + 1.96 * sd / math.sqrt(n))
    population = math.sqrt(sum((d - mean) ** 2 for d in diff) / n)

    def close(pair, target, tolerance=1e-6) -> bool:
        return abs(pair[0] - target[0]) < tolerance and abs(pair[1] - target[1]) < tolerance

    def judge(answer) -> str | None:
        pair = (float(answer[0]), float(answer[1]))
        if close(pair, expected):
            return None
        if bootstrap is not None and close(pair, tuple(map(float, bootstrap)), 1e-6):
            return "those are the bootstrap's ends; compute the formula from the differences: mean ± 1.96 s / sqrt(N)"
        if close(pair, (mean - 1.96 * sd, mean + 1.96 * sd), 1e-6):
            return "that interval uses the spread of the differences; the mean's spread is s / sqrt(N)"
        if close(pair, (mean - 1.96 * population / math.sqrt(n), mean + 1.96 * population / math.sqrt(n))):
            return "s is the sample standard deviation, divided by N - 1 (as torch's .std() does), not by N"
        if pair[0] > pair[1]:
            return "give (low, high)"
        return "mean ± 1.96 * s / sqrt(N), with s the standard deviation of the N differences"

    right = f"[{expected[0]:+.4f}, {expected[1]:+.4f}] (standard error {sd / math.sqrt(n):.4f})"
    if bootstrap is not None:
        apart = max(abs(float(bootstrap[0]) - expected[0]), abs(float(bootstrap[1]) - expected[1]))
        agree = (
            "nearly agree" if apart < 0.25 * (expected[1] - expected[0]) / 2 else "differ: the differences are skewed"
        )
        right += f"; the bootstrap gave [{bootstrap[0]:+.4f}, {bootstrap[1]:+.4f}]: the two {agree}"
    return verdict(6, answer, judge, right)
