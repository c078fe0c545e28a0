"""The checks of ``train_carvana``'s exercises: each judges an answer against its own computation of the result."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torchvision import tv_tensors
from torchvision.transforms import v2

from exercises import verdict
from unet_lib.data.carvana import car_of
from unet_lib.metrics import dice_per_image
from unet_lib.model import DoubleConv, count_parameters


def random_split_leaks(ids: Sequence[str], num_val: int, seed: int = 0) -> int:
    """Of ``num_val`` photos held out at random (the first ``num_val`` of a seeded permutation), how many show a car
    that is also among the photos left for training."""
    order = torch.randperm(len(ids), generator=torch.Generator().manual_seed(seed)).tolist()
    val, train = [ids[i] for i in order[:num_val]], [ids[i] for i in order[num_val:]]
    train_cars = {car_of(i) for i in train}
    return sum(car_of(i) in train_cars for i in val)


def check_exercise_1(answer, ids: Sequence[str], num_val: int) -> bool:
    """Exercise 1: the number of randomly held-out photos whose car is also a training car."""
    expected = random_split_leaks(list(ids), num_val)

    def judge(answer) -> str | None:
        if answer == expected:
            return None
        if answer == 0:
            return "0 is what the split by car gives; here the photos are drawn one by one, whatever their car"
        return f"hold out the first {num_val} photos of the permutation, then count those whose car_of(id) is a training car"

    right = (
        f"{expected} of the {num_val} held-out photos show a car the network trains on: validation would score memory"
    )
    return verdict(1, answer, judge, right)


def car_centre(mask: torch.Tensor) -> float:
    """The mean column of a mask's car pixels (H, W): where the car's centre lies, left to right."""
    columns = torch.arange(mask.shape[-1], dtype=torch.float64)
    per_column = mask.as_subclass(torch.Tensor).bool().sum(dim=0).double()  # car pixels in each column
    return (per_column * columns).sum().item() / per_column.sum().item()


def check_exercise_2(answer, image: torch.Tensor, mask: torch.Tensor) -> bool:
    """Exercise 2: (the car's mean column, its share of the pixels) after a horizontal flip, against the training
    transform's own flip (``v2.RandomHorizontalFlip``, made certain) of the picture and the mask together."""
    _, flipped = v2.RandomHorizontalFlip(p=1.0)(tv_tensors.Image(image), tv_tensors.Mask(mask))
    centre, share = car_centre(flipped), flipped.float().mean().item()
    before, width = car_centre(mask), mask.shape[-1]

    def judge(answer) -> str | None:
        got_centre, got_share = (float(v) for v in answer)
        if abs(got_centre - centre) <= 0.05 and abs(got_share - share) <= 1e-3:
            return None
        if abs(got_centre - centre) > 0.05:
            if abs(got_centre - before) <= 0.05:
                return "that is where the car's centre was before the flip: a flip moves column c to W - 1 - c"
            if abs(got_centre - (width - before)) <= 0.05:
                return "one column off: columns count from 0, so column c goes to W - 1 - c, not W - c"
            return "column c of a picture W columns wide goes to column W - 1 - c; the mean column moves the same way"
        if abs(got_share - 100 * share) <= 0.1:
            return "the share is right but in percent: write it as a fraction of 1 (e.g. 0.25 for 25 %)"
        return "a flip moves pixels; does it add or remove any car pixel?"

    right = (
        f"the car's centre moves from column {before:.2f} to {centre:.2f} and it keeps its {share:.2%} of the"
        " pixels: the flip moves the mask exactly as the photo, so it still fits"
    )
    return verdict(2, answer, judge, right)


def check_exercise_3(answer, in_channels: int = 32, out_channels: int = 64) -> bool:
    """Exercise 3: the parameter count of ``DoubleConv(in_channels, out_channels)``, from PyTorch's own count."""
    expected = count_parameters(DoubleConv(in_channels, out_channels))

    def judge(answer) -> str | None:
        if not isinstance(answer, numbers.Integral) or isinstance(answer, bool):
            return f"a count of parameters is a whole number: write it as an int, not {answer!r}"
        missing = expected - int(answer)
        if missing == 0:
            return None
        if missing == out_channels:
            return "one term short by out_channels: the second convolution has a bias"
        if missing == 2 * out_channels:
            return "one term short by 2 * out_channels: each BatchNorm has a scale and a shift per channel"
        if missing == 4 * out_channels:
            return "both BatchNorms are missing: a scale and a shift per channel each"
        return "add: in*out*9 + 2*out (BatchNorm) + out*out*9 + out (the bias) + 2*out (BatchNorm)"

    return verdict(3, answer, judge, f"DoubleConv({in_channels}, {out_channels}) has {expected:,} parameters")


def pooled_size(size: tuple[int, int], times: int) -> tuple[int, int]:
    """The (H, W) after ``times`` 2x2 max poolings, found by pooling a blank picture of ``size``."""
    x = torch.zeros(1, 1, *size)
    for _ in range(times):
        x = nn.MaxPool2d(2)(x)
    return tuple(x.shape[-2:])


def check_exercise_4(answer, size: tuple[int, int] = (100, 150), times: int = 4) -> bool:
    """Exercise 4: the (H, W) reaching the bottleneck after ``times`` poolings of a picture of ``size``."""
    expected = pooled_size(size, times)

    def judge(answer) -> str | None:
        got = tuple(answer)
        if got == expected:
            return None
        if got == tuple(math.ceil(s / 2**times) for s in size):
            return "max pooling rounds down: an odd row or column at the edge is dropped"
        if any(not float(v).is_integer() for v in got):
            return "a size is a whole number of pixels: each pooling halves it and drops an odd remainder"
        return f"halve H and W {times} times, rounding down each time"

    right = f"{size[0]}x{size[1]} becomes {expected[0]}x{expected[1]}; the decoder pads each upsampled map to its skip's size"
    return verdict(4, answer, judge, right)


def check_exercise_5(answer: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> bool:
    """Exercise 5: a function ``(pred, target) -> Dice per image`` for masks ``(N, H, W)``, against
    ``unet_lib.metrics.dice_per_image`` on random masks, an empty prediction and an empty mask."""
    generator = torch.Generator().manual_seed(0)
    pred = torch.rand(6, 8, 8, generator=generator) > 0.5
    target = torch.rand(6, 8, 8, generator=generator) > 0.6
    pred[4], target[4] = False, False  # nothing to find, nothing found
    pred[5] = False  # a car missed entirely

    tp, wrong = (pred & target).sum().item(), (pred != target).sum().item()
    pooled = 2 * tp / (2 * tp + wrong)  # all pixels of all pictures together: one Dice for the batch

    def judge(answer) -> str | None:
        got = torch.as_tensor(answer(pred.long(), target.long())).float()
        expected = dice_per_image(pred, target)
        if got.numel() > 0 and torch.allclose(got, torch.full_like(got, pooled), atol=1e-6):
            return (
                "that is the pooled Dice, all pixels of all pictures counted together: one Dice per picture: sum"
                " TP, FP and FN over H and W only (dim=(1, 2)), then 2 TP / (2 TP + FP + FN) for each picture"
            )
        if got.shape != expected.shape:
            return f"expected one Dice per picture, shape {tuple(expected.shape)}, got {tuple(got.shape)}"
        if torch.isnan(got[4]) or not math.isclose(got[4].item(), 1.0, abs_tol=1e-6):
            return "an empty prediction of an empty mask scores 1 (nothing to find, nothing found), not 0 / 0"
        if not torch.allclose(got, expected, atol=1e-6):
            return "Dice = 2 TP / (2 TP + FP + FN), counted separately for each picture (sum over H and W only)"
        return None

    return verdict(5, answer, judge, "your Dice agrees with dice_per_image on every picture, the empty ones included")


def check_exercise_6(answer, found: dict) -> bool:
    """Exercise 6: a learning rate read off the sweep, within a factor of 3 of a tenth of the lowest loss's rate."""
    lowest = min(range(len(found["smoothed"])), key=found["smoothed"].__getitem__)
    expected = found["lrs"][lowest] / 10

    def judge(answer) -> str | None:
        if not isinstance(answer, numbers.Real) or isinstance(answer, bool):
            return f"write the rate as a number, e.g. 1e-3, not {answer!r}"
        ratio = float(answer) / expected
        if 1 / 3 <= ratio <= 3:
            return None
        if 1 / 3 <= ratio / 10 <= 3:
            return "that is about where the smoothed loss is lowest: the rule takes a tenth of it"
        return "find the rate where the smoothed loss is lowest, then take a tenth of it"

    try:  # the message for a right answer: how far it is from the rule's value
        ratio = float(answer) / expected
    except (TypeError, ValueError):  # not a number (or not tried yet): judge says so, and this is not printed
        ratio = 1.0
    if not (ratio > 0 and math.isfinite(ratio)):  # refused by judge: the message is not printed
        ratio = 1.0
    if math.isclose(ratio, 1.0, rel_tol=0.05):
        off = f"the rule's {expected:.1e} itself"
    elif ratio > 1:
        off = f"{ratio:.1f}x the rule's {expected:.1e}"
    else:
        off = f"1/{1 / ratio:.1f} of the rule's {expected:.1e}"
    right = (
        f"your rate is {off} (a tenth of {found['lrs'][lowest]:.1e}, where the smoothed loss was lowest):"
        " within the factor of 3 a sweep's reading allows"
    )
    return verdict(6, answer, judge, right)
