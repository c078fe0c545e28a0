"""Overfitting one batch: a model that learns it, one that learns slowly, masks shuffled against their pictures,
a loss that diverges, the step and time limits, and the verdict from the command line."""

import contextlib
import functools
import math
import re
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
from folder_trees import listing, make_folder_tree
from torch import nn

from unet_lib.cli import main
from unet_lib.config import recipe
from unet_lib.inspect import overfit as overfit_module
from unet_lib.inspect.overfit import (
    OVERFIT_MIN_STEPS,
    OVERFIT_SECONDS,
    OVERFIT_STEPS,
    OVERFIT_TARGETS,
    OverfitResult,
    batch_score,
    blind_score,
    overfit_batch,
    overfit_check,
    overfit_message,
)
from unet_lib.losses import make_loss
from unet_lib.model import UNet
from unet_lib.runtime import Precision
from unet_lib.training import train

pytestmark = pytest.mark.usefixtures("one_thread")  # much faster for these tiny tensors, and steady
UNTIMED = (OVERFIT_STEPS, math.inf)  # steps, not seconds, end these runs: the same on a slow or busy machine
LOSSES = {1: "bce_dice", 3: "ce"}


def pictures(num_classes: int, shuffled: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """8 random pictures whose masks follow from their colours (the class is the brightest channel, or whether
    red is above 0.5); ``shuffled``: each picture gets the next one's mask instead."""
    images = torch.rand(8, 3, 16, 24, generator=torch.Generator().manual_seed(0))
    masks = (images[:, 0] > 0.5 if num_classes == 1 else images.argmax(1)).long()
    return images, masks.roll(1, 0) if shuffled else masks


def overfit(num_classes: int, lr: float, shuffled: bool = False, limits=UNTIMED, clock=None):
    """overfit_batch on the first 4 pictures, the last 4 held out, with a fresh tiny U-Net and Adam."""
    torch.manual_seed(0)
    model = UNet(3, num_classes, features=(4, 8))
    images, masks = pictures(num_classes, shuffled)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = make_loss(LOSSES[num_classes], num_classes)
    with fake_clock(clock):
        return overfit_batch(model, (images[:4], masks[:4]), loss_fn, optimizer, (images[4:], masks[4:]), limits)


def fake_clock(clock):
    """The overfit module's ``time.perf_counter`` replaced by ``clock`` for a block (None: the real one)."""
    if clock is None:
        return contextlib.nullcontext()
    return mock.patch.object(overfit_module, "time", SimpleNamespace(perf_counter=clock))


def test_the_batch_score_is_dice_or_the_miou_of_the_classes_in_the_masks():
    masks = torch.tensor([[[1, 1], [0, 255]], [[0, 0], [0, 0]]])  # (2, 2, 2); 255: ignored
    one_channel = torch.tensor([[[5.0, -5.0], [-5.0, 5.0]], [[-5.0, -5.0], [-5.0, -5.0]]])[:, None]
    # Dice per picture: 2 * 1 / (1 + 2) for the first, 1 for the empty mask predicted empty.
    assert batch_score(one_channel, masks) == pytest.approx((2 / 3 + 1) / 2)
    predicted = torch.tensor([[[1, 0], [2, 0]], [[0, 0], [0, 0]]])  # class 2 is predicted once, on a class 0 pixel
    logits = nn.functional.one_hot(predicted, 3).movedim(-1, 1).float()
    # IoU of class 0: 4 / (4 + 1 + 1); class 1: 1 / 2; class 2 is in no mask, so no part of the mean.
    assert batch_score(logits, masks) == pytest.approx((4 / 6 + 1 / 2) / 2)


def test_a_prediction_that_ignores_the_pictures_scores_as_well_against_the_others_masks():
    images, masks = pictures(3)
    same = torch.randn(1, 3, 16, 24).expand(4, -1, -1, -1)  # one prediction for every picture
    assert blind_score(same, masks[:4]) == pytest.approx(batch_score(same, masks[:4]))
    truth = nn.functional.one_hot(masks[:4], 3).movedim(-1, 1).float()
    assert batch_score(truth, masks[:4]) == 1 and blind_score(truth, masks[:4]) < 0.5


@pytest.mark.parametrize("num_classes", [1, 3])
def test_a_real_learner_learns_the_batch(num_classes):
    result = overfit(num_classes, lr=1e-2)
    metric = "dice" if num_classes == 1 else "miou"
    assert result.verdict == "learned" and result.metric == metric and result.steps < OVERFIT_STEPS
    assert result.best >= OVERFIT_TARGETS[metric] and result.own > result.blind + 0.05  # it holds for other pictures
    message = overfit_message(result)
    assert message.startswith(f"overfit-batch: learned: batch {metric} {result.best:.3f} (from {result.start:.3f}")
    assert f"after {result.steps} steps" in message and message.endswith("fit together; train for real")


@pytest.mark.parametrize("num_classes", [1, 3])
def test_a_slow_learner_is_learning_slowly(num_classes):
    result = overfit(num_classes, lr=3e-4, limits=(100, math.inf))
    assert result.verdict == "learning slowly" and result.steps == 100
    assert result.start < result.best < OVERFIT_TARGETS[result.metric]
    message = overfit_message(result)
    assert message.startswith("overfit-batch: learning, but slowly: ")
    assert message.endswith(": try a higher --lr or more --steps")


@pytest.mark.parametrize("num_classes", [1, 3])
def test_masks_shuffled_against_their_pictures_are_not_learning(num_classes):
    result = overfit(num_classes, lr=1e-2, shuffled=True)
    # The batch is learned by heart, to the target, but nothing of it holds for the pictures held out.
    assert result.best >= OVERFIT_TARGETS[result.metric] and result.last - result.last_blind > 0.1
    assert abs(result.own - result.blind) < 0.02
    assert result.verdict == "not learning"
    message = overfit_message(result)
    assert message.startswith("overfit-batch: not learning: ")
    assert message.endswith(
        ": what it learns holds for no other picture, so the masks do not follow from the pictures; check them"
        " against their pictures (check-data; a mask of another picture?)"
    )


def test_a_learning_rate_far_too_low_is_not_learning_and_says_so():
    result = overfit(1, lr=1e-6, limits=(50, math.inf))
    assert result.verdict == "not learning" and result.steps == 50
    assert overfit_message(result).endswith(
        ": the score hardly rose; try a higher --lr or more --steps, then check the masks against their pictures"
        " (check-data)"
    )


def result(best=0.95, lead=0.2, kept=0.2, apart=0.5, start=0.3, loss=0.1):
    """An OverfitResult with the numbers the verdict reads: ``lead`` of the batch's own masks over each other's at
    the last step, ``kept`` of it on the pictures held out."""
    return OverfitResult("dice", start, best, 0.9, 0.9 - lead, 0.8, 0.8 - kept, apart, 4, loss)


@pytest.mark.parametrize(
    "numbers, verdict",
    [
        ({}, "learned"),
        ({"best": 0.85}, "learning slowly"),  # below the target of 0.9
        ({"best": 0.36}, "not learning"),  # from 0.3, short of a tenth of the way to 1 (0.37)
        ({"best": 0.38}, "learning slowly"),
        ({"lead": 0.04, "kept": 0.04}, "not learning"),  # the batch's own masks, hardly better than the others'
        ({"lead": 0.04, "kept": 0.04, "apart": 0.1}, "learned"),  # masks much alike: a quarter of 0.1 is enough
        ({"lead": 0.3, "kept": 0.02}, "not learning"),  # learned by heart: other pictures keep under a tenth
        ({"lead": 0.3, "kept": 0.04}, "learned"),
        ({"lead": 0.06, "kept": 0.008}, "not learning"),  # a tenth is kept, but within the noise
        ({"loss": math.nan}, "diverged"),
    ],
)
def test_the_verdict_rule(numbers, verdict):
    assert result(**numbers).verdict == verdict


class NaNFromCall(nn.Module):
    """A loss that turns NaN from its ``n``-th call on, as a diverging run's does."""

    def __init__(self, loss_fn: nn.Module, n: int):
        super().__init__()
        self.loss_fn, self.n, self.calls = loss_fn, n, 0

    def forward(self, logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        loss = self.loss_fn(logits, masks)
        return loss * math.nan if self.calls >= self.n else loss


def test_a_loss_that_becomes_nan_has_diverged():
    torch.manual_seed(0)
    model = UNet(3, 1, features=(4, 8))
    images, masks = pictures(1)
    loss_fn = NaNFromCall(make_loss("bce_dice", 1), n=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    with fake_clock(lambda: 0.0):
        result = overfit_batch(model, (images[:4], masks[:4]), loss_fn, optimizer)
    assert result.verdict == "diverged" and result.steps == 2 and math.isnan(result.loss)
    assert overfit_message(result) == (
        "overfit-batch: diverged: the loss became nan after 2 steps, 0 s: lower the learning rate (--lr)"
    )


def test_the_step_limit_ends_the_run():
    result = overfit(1, lr=1e-6, limits=(7, math.inf))
    assert result.steps == 7 and result.verdict == "not learning"


def test_the_time_limit_ends_the_run_and_lines_show_the_way(capsys, monkeypatch):
    monkeypatch.setenv("UNET_PROGRESS", "0")  # no terminal: lines, not a bar
    ticks = iter(range(0, 1000, 7))  # a clock that moves 7 s at each reading: a step takes 7 s

    result = overfit(1, lr=1e-6, limits=(OVERFIT_STEPS, 30), clock=lambda: next(ticks))
    assert result.steps == 4  # 7, 14, 21, 28 s: a fifth step would end at 35 s, past the limit
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"overfit-batch: 4 pictures at 16x24, up to {OVERFIT_STEPS} steps or 30 s"
    assert [line.split("  ")[:2] for line in lines[1:]] == [["step 1", "7 s"], ["step 3", "21 s"]]  # every 10 s
    assert all(re.fullmatch(r"step \d+  \d+ s  loss \d\.\d{4}  batch dice \d\.\d{3}", line) for line in lines[1:])


def test_a_few_steps_are_taken_however_slow_they_are():
    ticks = iter(range(0, 10_000, 100))  # a step takes 100 s, past the limit of 30
    assert overfit(1, lr=1e-6, limits=(OVERFIT_STEPS, 30), clock=lambda: next(ticks)).steps == OVERFIT_MIN_STEPS


def test_train_takes_a_step_limit_and_returns_the_verdict(tmp_path):
    make_folder_tree(tmp_path / "data", count=10)
    config = recipe(
        "folder-quick", data_dir=str(tmp_path / "data"), image_size=(32, 48), features=(4, 8), lr=1e-2, threads=1
    )
    (row,) = train(config, probe=functools.partial(overfit_check, steps=3))
    assert row["steps"] == 3 and row["held_out"] == 4
    assert row["verdict"] in ("learned", "learning slowly", "not learning")


ARGS = ["train", "folder", "--data", "data", "--size", "32x48", "--features", "4,8", "--lr", "1e-2", "--threads", "1"]
VERDICT = re.compile(
    r"overfit-batch: (learned|learning, but slowly|not learning): batch dice \d\.\d{3} \(from \d\.\d{3}, target 0\.9\)"
    r" after (\d+) steps, \d+ s; 4 pictures it did not train on: \d\.\d{3} with their own masks, \d\.\d{3} with"
    r" each other's: .+"
)


def test_overfit_batch_from_the_command_line_prints_its_verdict_last(tmp_path, capsys, monkeypatch):
    make_folder_tree(tmp_path / "data", count=10)
    monkeypatch.chdir(tmp_path)
    before = listing(tmp_path)
    capsys.readouterr()
    assert main([*ARGS, "--overfit-batch", "--quiet"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == str(Precision.choose(torch.device("cpu")))  # as training would run: bf16 where native
    assert lines[1] == f"overfit-batch: 4 pictures at 32x48, up to {OVERFIT_STEPS} steps or {OVERFIT_SECONDS:.0f} s"
    assert lines[2].startswith("step 1  ")
    found = VERDICT.fullmatch(lines[-1])
    assert found and found[1] == "learned" and int(found[2]) < OVERFIT_STEPS
    assert listing(tmp_path) == before  # no run folder, nothing written

    assert main([*ARGS, "--overfit-batch", "--steps", "2", "--quiet"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1] == "overfit-batch: 4 pictures at 32x48, up to 2 steps"  # a step limit asked for: no time limit
    assert (found := VERDICT.fullmatch(lines[-1])) and found[2] == "2"


def test_steps_and_resume_are_refused_where_they_mean_nothing(tmp_path, capsys, monkeypatch):
    make_folder_tree(tmp_path / "data", count=6)
    monkeypatch.chdir(tmp_path)
    assert main([*ARGS, "--overfit-batch", "--resume", "--out", "x"]) == 2
    assert main([*ARGS, "--steps", "5"]) == 2
    assert "--steps: is the step limit of --overfit-batch" in capsys.readouterr().err


def test_the_flags_help_states_the_limits_and_the_outcomes(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    dice, miou = OVERFIT_TARGETS["dice"], OVERFIT_TARGETS["miou"]
    for part in (f"{OVERFIT_STEPS} steps (--steps) or {OVERFIT_SECONDS:.0f} s", f"Dice {dice} / mIoU {miou}"):
        assert part in text
    for outcome in ("learned", "learning but slowly", "not learning", "--steps N"):
        assert outcome in text
