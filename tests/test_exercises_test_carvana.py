"""The checks of test_carvana's exercises refuse wrong answers, accept right ones computed here, and "..." is not tried."""

import pytest
import torch
import torch.nn.functional as F
from exercises.test_carvana import (
    check_exercise_1,
    check_exercise_2,
    check_exercise_3,
    check_exercise_4,
    check_exercise_5,
    check_exercise_6,
)
from torch import nn

from unet_lib.inspect.analysis import boundary_band


def car_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """A rectangle 'car' mask and a prediction one pixel too wide, with a blob on the floor."""
    mask = torch.zeros(24, 32, dtype=torch.long)
    mask[6:18, 8:24] = 1
    pred = torch.zeros_like(mask)
    pred[6:18, 7:24] = 1
    pred[20:23, 1:4] = 1  # wrong far from the outline
    return pred, mask


def test_not_tried_yet(capsys):
    pred, mask = car_pair()
    assert not check_exercise_1(..., pred, mask)
    assert not check_exercise_5(..., [(0.0, 1.0)])
    assert not check_exercise_6(..., torch.zeros(3), torch.ones(3))
    assert capsys.readouterr().out.count("not tried yet") == 3


def test_exercise_1(capsys):
    pred, mask = car_pair()
    tp = ((pred == 1) & (mask == 1)).sum().item()
    fp = ((pred == 1) & (mask == 0)).sum().item()
    fn = ((pred == 0) & (mask == 1)).sum().item()
    assert not check_exercise_1(tp / (tp + fp + fn), pred, mask)  # the IoU
    assert "IoU" in capsys.readouterr().out
    assert not check_exercise_1(0.5, pred, mask)
    assert "Hint" in capsys.readouterr().out
    assert check_exercise_1(2 * tp / (2 * tp + fp + fn), pred, mask)
    assert check_exercise_1(round(2 * tp / (2 * tp + fp + fn), 4), pred, mask)  # as the notebook's table prints it


def test_exercise_2(capsys):
    pred, mask = car_pair()
    wrong = pred != mask
    band = boundary_band(mask[None], 2)[0]
    share = ((wrong & band).sum() / wrong.sum()).item()
    assert 0 < share < 1
    assert check_exercise_2(share, pred, mask, 2)
    assert check_exercise_2("boundary" if share > 0.5 else "interior", pred, mask, 2)
    assert not check_exercise_2(1 - share, pred, mask, 2)
    assert "interior's share" in capsys.readouterr().out
    assert not check_exercise_2("interior" if share > 0.5 else "boundary", pred, mask, 2)
    assert "Hint" in capsys.readouterr().out


def test_exercise_3(capsys):
    generator = torch.Generator().manual_seed(0)
    masks = (torch.rand(6, 8, 8, generator=generator) > 0.5).long()
    noise = torch.rand(6, 8, 8, generator=generator)
    probs = masks * 0.5 + noise * 0.5  # a car pixel is 0.5..1, a background pixel 0..0.5
    cars = ["a", "a", "a", "b", "b", "b"]
    thresholds = [0.2, 0.4, 0.6, 0.8]

    def mean_dice(rows, t):
        pred = probs[rows] > t
        mask = masks[rows].bool()
        return (2 * (pred & mask).sum((1, 2)) / (pred.sum((1, 2)) + mask.sum((1, 2)))).double().mean().item()

    first, second = slice(0, 3), slice(3, 6)
    best = max(thresholds, key=lambda t: (mean_dice(first, t), -t))
    assert check_exercise_3((best, mean_dice(second, best)), probs, masks, cars, thresholds)
    assert not check_exercise_3((best, mean_dice(first, best)), probs, masks, cars, thresholds)
    assert "Hint" in capsys.readouterr().out
    worse = min(thresholds, key=lambda t: mean_dice(first, t))
    assert not check_exercise_3((worse, mean_dice(second, worse)), probs, masks, cars, thresholds)
    assert "higher mean Dice" in capsys.readouterr().out


def test_exercise_3_refuses_the_threshold_chosen_on_the_second_car(capsys):
    """Two cars whose best thresholds differ: the second car's own best threshold, measured on it, is refused."""
    masks = torch.zeros(4, 1, 10, dtype=torch.long)
    masks[..., :5] = 1
    probs = torch.zeros(4, 1, 10)
    probs[:2, 0, :5] = 0.3  # car a: its car pixels at 0.3, background at 0: best below 0.3
    probs[:2, 0, 5:] = 0.0
    probs[2:, 0, :5] = 0.9  # car b: car pixels at 0.9, background at 0.5: best between 0.5 and 0.9
    probs[2:, 0, 5:] = 0.5
    cars, thresholds = ["a", "a", "b", "b"], [0.2, 0.4, 0.6, 0.8]
    # car a is best at 0.2 (Dice 1); car b at 0.6 (Dice 1), where car a scores 0
    assert check_exercise_3((0.2, 2 * 5 / (10 + 5)), probs, masks, cars, thresholds)  # at 0.2 car b calls all car
    assert "0.60" in capsys.readouterr().out  # the message names car b's own best
    assert not check_exercise_3((0.6, 1.0), probs, masks, cars, thresholds)
    assert "best threshold of car b itself" in capsys.readouterr().out


class Lopsided(nn.Module):
    """A 'network' whose logit grows from left to right: mirroring changes its prediction."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        width = images.shape[-1]
        ramp = torch.linspace(-3, 3, width).expand_as(images[:, :1])
        return ramp + images[:, :1] * 4 - 2


def test_exercise_4(capsys):
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, 8, 12, generator=generator)
    masks = (images[:, 0] > 0.5).long()
    model = Lopsided()
    plain = model(images)
    tta = (plain + model(images.flip(-1)).flip(-1)) / 2

    def mean_dice(logits):
        pred, mask = logits.sigmoid()[:, 0] > 0.5, masks.bool()
        return (2 * (pred & mask).sum((1, 2)) / (pred.sum((1, 2)) + mask.sum((1, 2)))).double().mean().item()

    assert abs(mean_dice(tta) - mean_dice(plain)) > 1e-3  # the test means something
    assert check_exercise_4(mean_dice(tta), model, images, masks, 0.5, None)
    assert not check_exercise_4(mean_dice(plain), model, images, masks, 0.5, None)
    assert "without TTA" in capsys.readouterr().out
    assert not check_exercise_4(mean_dice(tta) + 3e-4, model, images, masks, 0.5, None)  # e.g. at the photo's size
    assert "close" in capsys.readouterr().out


def test_exercise_5(capsys):
    intervals = [(-0.001, 0.009), (0.001, 0.007), (-0.019, -0.002)]
    assert check_exercise_5([False, True, True], intervals)
    assert not check_exercise_5([True, True, False], intervals)  # "the mean is positive"
    assert "contains 0" in capsys.readouterr().out
    assert not check_exercise_5([False, True], intervals)
    assert "Hint" in capsys.readouterr().out
    assert not check_exercise_5([None, True, True], intervals)  # not an answer: each must be True or False
    assert "True or False" in capsys.readouterr().out


def test_exercise_6(capsys):
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(20, generator=generator, dtype=torch.float64)
    b = a + 0.01 * torch.randn(20, generator=generator, dtype=torch.float64)
    diff = (b - a).numpy()
    half = 1.96 * diff.std(ddof=1) / len(diff) ** 0.5
    assert check_exercise_6((diff.mean() - half, diff.mean() + half), a, b)
    spread = 1.96 * diff.std(ddof=1)
    assert not check_exercise_6((diff.mean() - spread, diff.mean() + spread), a, b)
    assert "s / sqrt(N)" in capsys.readouterr().out
    population = 1.96 * diff.std(ddof=0) / len(diff) ** 0.5
    assert not check_exercise_6((diff.mean() - population, diff.mean() + population), a, b)
    assert "N - 1" in capsys.readouterr().out
    bootstrap = (diff.mean() - half * 1.01, diff.mean() + half * 0.98)  # a resampled interval: close, not equal
    assert not check_exercise_6(bootstrap, a, b, bootstrap)
    assert "bootstrap's ends" in capsys.readouterr().out
    assert check_exercise_6((diff.mean() - half, diff.mean() + half), a, b, bootstrap)
    assert "nearly agree" in capsys.readouterr().out


@pytest.mark.parametrize("band", [1, 3])
def test_band_matches_library(band):
    """The check's band, built by shifts, is the library's (so exercise 2's right answer is accepted)."""
    from exercises.test_carvana import band_by_shifts

    mask = F.avg_pool2d(torch.rand(1, 1, 20, 30, generator=torch.Generator().manual_seed(1)), 3, 1, 1)[0, 0] > 0.5
    mask = mask.long()
    assert torch.equal(band_by_shifts(mask, band), boundary_band(mask[None], band)[0])
