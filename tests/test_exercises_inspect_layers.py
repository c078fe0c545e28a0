"""The checks of ``inspect_layers``' exercises: a right answer, computed here another way, passes; wrong ones get a hint."""

from __future__ import annotations

import io
from contextlib import redirect_stdout

import pytest
import torch
import torch.nn.functional as F
from exercises import inspect_layers as ex
from torch import nn

from unet_lib.inspect.interpret import without_skips
from unet_lib.metrics import dice_per_image
from unet_lib.model import UNet

SIZE = (32, 48)


def said(check, *args) -> tuple[bool, str]:
    """The check's verdict and what it printed."""
    out = io.StringIO()
    with redirect_stdout(out):
        result = check(*args)
    return result, out.getvalue()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return UNet(3, 1, features=(4, 8, 16, 32)).eval()


def refused(check, answer, *args) -> str:
    ok, text = said(check, answer, *args)
    assert ok is False and "not yet. Hint:" in text, text
    return text


def test_every_check_says_not_tried_yet_for_an_ellipsis(model):
    images, x, bn = torch.rand(2, 3, *SIZE), torch.randn(2, 3, 4, 4), nn.BatchNorm2d(3)
    loader = [(images, torch.zeros(2, *SIZE, dtype=torch.long))]
    acts, grads = torch.rand(1, 2, 3, 3), torch.randn(1, 2, 3, 3)
    for check, args in (
        (ex.check_exercise_1, (model, SIZE)),
        (ex.check_exercise_2, (model, loader, 0.5)),
        (ex.check_exercise_3, (acts, grads)),
        (ex.check_exercise_4, (model, images)),
        (ex.check_exercise_5, (x, bn)),
        (ex.check_exercise_6, ()),
    ):
        ok, text = said(check, ..., *args)
        assert ok is False and "not tried yet" in text


def test_exercise_1_shapes(model):
    h, w = SIZE
    right = {"bottleneck": (1, 64, h // 16, w // 16), "ups.1": (1, 16, h // 4, w // 4)}  # widths (4, 8, 16, 32)
    assert said(ex.check_exercise_1, right, model, SIZE)[0]
    hint = refused(ex.check_exercise_1, right | {"bottleneck": (1, 32, h // 16, w // 16)}, model, SIZE)
    assert "channels" in hint and "down block at the same resolution" in hint
    assert "H and W" in refused(ex.check_exercise_1, right | {"ups.1": (1, 16, h // 8, w // 8)}, model, SIZE)
    refused(ex.check_exercise_1, {"bottleneck": right["bottleneck"]}, model, SIZE)


def test_exercise_2_the_costliest_skip(model):
    torch.manual_seed(1)
    images = torch.rand(4, 3, *SIZE)
    with torch.no_grad():
        logits = model(images)[:, 0]
    cut = logits.median()  # the model's own masks, half of the pixels: every skip's loss shows
    masks, threshold = (logits > cut).long(), torch.sigmoid(cut).item()
    loader = [(images[:2], masks[:2]), (images[2:], masks[2:])]
    dice = {}
    for level in range(4):
        with torch.no_grad(), without_skips(model, [level]):
            dice[level] = dice_per_image(model(images)[:, 0] > cut, masks).mean().item()
    worst, best = min(dice, key=dice.get), max(dice, key=dice.get)
    assert dice[best] > dice[worst] + 1e-3, dice
    assert said(ex.check_exercise_2, worst, model, loader, threshold)[0]
    refused(ex.check_exercise_2, best, model, loader, threshold)
    refused(ex.check_exercise_2, 7, model, loader, threshold)
    for not_an_int in (str(worst), worst + 0.9):  # the right level, but not written as an int
        assert "as an int" in refused(ex.check_exercise_2, not_an_int, model, loader, threshold)


def test_exercise_3_grad_cam_map():
    torch.manual_seed(2)
    acts, grads = torch.rand(1, 4, 3, 5), torch.randn(1, 4, 3, 5)
    weights = torch.stack([grads[0, c].mean() for c in range(4)])
    raw = sum(weights[c] * acts[0, c] for c in range(4))[None]  # (1, 3, 5)
    assert said(ex.check_exercise_3, raw.clamp(min=0), acts, grads)[0]
    if (raw < 0).any():
        assert "ReLU" in refused(ex.check_exercise_3, raw, acts, grads)
    assert "MEAN" in refused(ex.check_exercise_3, 15 * raw.clamp(min=0), acts, grads)
    refused(ex.check_exercise_3, torch.zeros(1, 3, 5) - 1, acts, grads)
    assert "shape" in refused(ex.check_exercise_3, raw.clamp(min=0)[0], acts, grads)  # (3, 5), not (1, 3, 5)


def test_exercise_4_train_and_eval_mode_differ(model):
    images = torch.rand(2, 3, *SIZE)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert said(ex.check_exercise_4, False, model, images)[0]
    assert "BatchNorm" in refused(ex.check_exercise_4, True, model, images)
    refused(ex.check_exercise_4, "no", model, images)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the running stats stay
    assert not model.training


def test_exercise_5_batchnorm_by_hand():
    torch.manual_seed(3)
    x, bn = 2 * torch.randn(4, 3, 5, 5) + 1, nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
    right = F.batch_norm(x, None, None, bn.weight, bn.bias, training=True, eps=bn.eps).detach()
    assert said(ex.check_exercise_5, right, x, bn)[0]
    mean, var = x.mean(dim=(0, 2, 3), keepdim=True), x.var(dim=(0, 2, 3), keepdim=True)  # unbiased: wrong
    wrong = (x - mean) / torch.sqrt(var + bn.eps) * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)
    assert "biased" in refused(ex.check_exercise_5, wrong.detach(), x, bn)
    refused(ex.check_exercise_5, x, x, bn)
    assert torch.equal(bn.running_mean, torch.zeros(3))  # the check ran a copy in train mode


def test_exercise_6_receptive_field():
    field, step = 1, 1
    for kernel, stride in ((3, 1), (3, 1), (2, 2), (3, 1)):
        field, step = field + (kernel - 1) * step, step * stride
    assert said(ex.check_exercise_6, field)[0]
    for wrong in (7, 5, 8):
        refused(ex.check_exercise_6, wrong)
    for not_an_int in (field + 0.9, str(field), True):
        assert "int" in refused(ex.check_exercise_6, not_an_int)
