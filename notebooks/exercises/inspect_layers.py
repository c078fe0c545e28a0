"""Checks of the exercises in ``inspect_layers``: each judges an answer against its own computation (a forward pass
with hooks, a gradient through a tiny network of ones, a U-Net forward written out here, ``nn.BatchNorm2d`` itself)."""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from exercises import verdict
from unet_lib.model import pad_to


def _shape(answer) -> tuple[int, ...]:
    """An answer that is a shape (a tuple, a list or a ``torch.Size``) as a tuple of ints."""
    return tuple(int(n) for n in answer)


def check_exercise_1(answer, model: nn.Module, size: tuple[int, int]) -> bool:
    """The output shapes of ``bottleneck`` and ``ups.1`` for one picture of ``size``, against a forward pass with hooks."""
    if answer is ... or answer is None:  # not tried yet: nothing to compute
        return verdict(1, answer, lambda answer: None, "")
    seen: dict[str, tuple[int, ...]] = {}
    handles = [
        model.get_submodule(name).register_forward_hook(
            lambda m, args, out, name=name: seen.update({name: tuple(out.shape)})
        )
        for name in ("bottleneck", "ups.1")
    ]
    try:
        with torch.inference_mode():
            model(torch.zeros(1, 3, *size, device=next(model.parameters()).device))
    finally:
        for handle in handles:
            handle.remove()

    def judge(answer):
        if set(answer) != set(seen):
            return f"answer a dict with the keys {sorted(seen)}, each a shape (B, C, H, W)"
        for name, right in seen.items():
            got = _shape(answer[name])
            if len(got) != 4:
                return f"{name}: a shape has four numbers, (B, C, H, W)"
            if got[1] != right[1]:
                return (
                    f"{name}: check the channels; the bottleneck has twice the last width, "
                    "and each ups block has the width of the down block at the same resolution"
                )
            if got[2:] != right[2:]:
                return f"{name}: check H and W; each pooling halves them, each upconv doubles them"
            if got != right:
                return f"{name}: one picture is a batch of B = 1"
        return None

    shown = ", ".join(f"{name} {shape}" for name, shape in seen.items())
    return verdict(1, answer, judge, f"{shown}: channels from the widths, H and W halved once per pooling.")


def _forward_without_skip(model: nn.Module, x: torch.Tensor, level: int) -> torch.Tensor:
    """The U-Net's forward written out, with the skip of ``level`` replaced by zeros."""
    skips = []
    for down in model.downs:
        x = down(x)
        skips.append(torch.zeros_like(x) if len(skips) == level else x)
        x = model.pool(x)
    x = model.bottleneck(x)
    for upconv, up, skip in zip(model.upconvs, model.ups, reversed(skips), strict=True):
        x = up(torch.cat([skip, pad_to(upconv(x), skip)], dim=1))  # (B, 2f, h, w)
    return model.final_conv(x)


def skip_dice(model: nn.Module, loader: Iterable, threshold: float) -> dict[int, float]:
    """Mean per-photo Dice with each skip level zeroed, by the forward above (not ``interpret.without_skips``)."""
    was_training = model.training
    model.eval()
    totals: dict[int, list[float]] = {level: [] for level in range(len(model.downs))}
    try:
        with torch.inference_mode():
            for images, masks in loader:
                target = masks.bool().flatten(1)
                for level in totals:
                    pred = (torch.sigmoid(_forward_without_skip(model, images, level)[:, 0]) > threshold).flatten(1)
                    tp, fp, fn = (pred & target).sum(1), (pred & ~target).sum(1), (~pred & target).sum(1)
                    dice = torch.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn).clamp(min=1), 1.0)
                    totals[level] += dice.tolist()
    finally:
        model.train(was_training)
    return {level: sum(d) / len(d) for level, d in totals.items()}


def check_exercise_2(answer, model: nn.Module, loader: Iterable, threshold: float) -> bool:
    """The skip whose loss costs the most Dice, against a forward written out here with that skip zeroed."""
    if answer is ... or answer is None:  # not tried yet: nothing to compute
        return verdict(2, answer, lambda answer: None, "")
    dice = skip_dice(model, loader, threshold)
    lowest = min(dice.values())

    def judge(answer):
        if not isinstance(answer, int) or isinstance(answer, bool):
            return f"write the level as an int, one of {sorted(dice)}, not {answer!r}"
        got = answer
        if got not in dice:
            return f"a level is one of {sorted(dice)} (0 is downs.0's full-resolution skip)"
        if dice[got] <= lowest + 1e-3:  # a tie within 0.001 Dice: either level is right
            return None
        return "not this one: without it the Dice stays higher than without another level; run the next cell"

    shown = ", ".join(f"level {level} {d:.3f}" for level, d in dice.items())
    return verdict(2, answer, judge, f"the Dice without each skip: {shown}.")


def grad_cam_map(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Grad-CAM from an activation and its gradient, both [B, C, h, w], as an einsum: [B, h, w]."""
    weights = grads.sum(dim=(2, 3)) / (grads.shape[2] * grads.shape[3])  # (B, C)
    return torch.einsum("bc,bchw->bhw", weights, acts).clamp(min=0)


def check_exercise_3(answer, acts: torch.Tensor, grads: torch.Tensor) -> bool:
    """A Grad-CAM map from a given activation and gradient, against an einsum of the definition."""
    right = grad_cam_map(acts.double(), grads.double())
    no_relu = torch.einsum("bc,bchw->bhw", grads.double().mean(dim=(2, 3)), acts.double())
    summed = right * grads.shape[2] * grads.shape[3]
    pointwise = (grads.double() * acts.double()).sum(1).clamp(min=0)

    def judge(answer):
        got = torch.as_tensor(answer).detach().double()
        if tuple(got.shape) != tuple(right.shape):
            return (
                f"the map has the shape (B, h, w) = {tuple(right.shape)}, not {tuple(got.shape)}: sum over dim=1 only"
            )
        if torch.allclose(got, right, rtol=1e-4, atol=1e-6):
            return None
        if torch.allclose(got, no_relu, rtol=1e-4, atol=1e-6):
            return "apply the ReLU last: negative places become 0"
        if torch.allclose(got, summed, rtol=1e-4, atol=1e-6):
            return "the channel weight is the MEAN of its gradient over h and w, not the sum"
        if torch.allclose(got, pointwise, rtol=1e-4, atol=1e-6):
            return "first average each channel's gradient to one number, then weigh the whole channel with it"
        return "weights = grads.mean(dim=(2, 3), keepdim=True); map = relu((weights * acts).sum(dim=1))"

    return verdict(3, answer, judge, "one weight per channel (its mean gradient), a weighted sum, then the ReLU.")


def check_exercise_4(answer, model: nn.Module, images: torch.Tensor) -> bool:
    """Whether train-mode and eval-mode outputs are equal, against both run on a copy of the model."""
    if answer is ... or answer is None:  # not tried yet: nothing to compute
        return verdict(4, answer, lambda answer: None, "")
    twin = copy.deepcopy(model)  # train mode updates the running statistics: never on the real model
    with torch.no_grad():
        in_eval = twin.eval()(images)
        in_train = twin.train()(images)
    right = torch.allclose(in_eval, in_train, rtol=1e-4, atol=1e-5)

    def judge(answer):
        if not isinstance(answer, bool):
            return "answer True or False"
        if answer == right:
            return None
        return "in train mode BatchNorm divides by this batch's own statistics; eval uses the running averages"

    largest = (in_eval - in_train).abs().max().item()
    return verdict(4, answer, judge, f"{'equal' if right else 'not equal'}: the logits differ by up to {largest:.3g}.")


def check_exercise_5(answer, x: torch.Tensor, bn: nn.BatchNorm2d) -> bool:
    """BatchNorm's train-mode output by hand, against ``nn.BatchNorm2d`` itself (on a copy, in train mode)."""
    with torch.no_grad():
        right = copy.deepcopy(bn).train()(x)
        weight, bias = bn.weight[None, :, None, None], bn.bias[None, :, None, None]
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        unbiased = (x - mean) / torch.sqrt(x.var(dim=(0, 2, 3), keepdim=True) + bn.eps) * weight + bias
        per_image = (x - x.mean(dim=(2, 3), keepdim=True)) / torch.sqrt(
            x.var(dim=(2, 3), unbiased=False, keepdim=True) + bn.eps
        ) * weight + bias
        running = F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps)

    def judge(answer):
        got = torch.as_tensor(answer).detach().to(right.dtype).reshape(right.shape)
        if torch.allclose(got, right, rtol=1e-4, atol=1e-5):
            return None
        if torch.allclose(got, unbiased, rtol=1e-4, atol=1e-5):
            return "BatchNorm normalises with the biased variance: var(..., unbiased=False)"
        if torch.allclose(got, per_image, rtol=1e-4, atol=1e-5):
            return "the statistics are over the whole batch and the pixels, dim=(0, 2, 3), not per picture"
        if torch.allclose(got, running, rtol=1e-4, atol=1e-5):
            return "that is eval mode (the running statistics); train mode uses the batch's own mean and variance"
        return "y = (x - mean) / sqrt(var + eps) * weight + bias, mean and var over dim=(0, 2, 3) per channel"

    return verdict(5, answer, judge, "each channel normalised by the batch's mean and (biased) variance, then scaled.")


def _field_by_gradient(layers: list[nn.Module], size: int = 32) -> int:
    """Rows of the input that the centre output pixel depends on: the span of the nonzero gradient."""
    net = nn.Sequential(*layers).double()
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.ones_(module.weight)  # every tap counts: no weight can cancel another
    x = torch.ones(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    out = net(x)
    (grad,) = torch.autograd.grad(out[0, 0, out.shape[2] // 2, out.shape[3] // 2], x)
    rows = grad[0, 0].abs().sum(1).nonzero().flatten()
    return int(rows.max() - rows.min() + 1)


def check_exercise_6(answer) -> bool:
    """Receptive field of conv3x3, conv3x3, pool 2x2, conv3x3, measured by a gradient through convolutions of ones."""
    if answer is ... or answer is None:  # not tried yet: nothing to compute
        return verdict(6, answer, lambda answer: None, "")

    def conv() -> nn.Conv2d:
        return nn.Conv2d(1, 1, 3, padding=1, bias=False)

    # AvgPool has MaxPool's geometry, but its gradient reaches all four pixels of a window, not one.
    right = _field_by_gradient([conv(), conv(), nn.AvgPool2d(2), conv()])
    before_pool = _field_by_gradient([conv(), conv()])

    def judge(answer):
        if not isinstance(answer, int) or isinstance(answer, bool):
            return f"a receptive field is a whole number of input pixels: write it as an int, not {answer!r}"
        got = answer
        if got == right:
            return None
        if got == before_pool + 2:
            return "after the pool one step of the last conv is 2 input pixels, not 1"
        if got == before_pool:
            return f"{before_pool} is the field before the pool; the pool and the last conv widen it"
        return f"two 3x3 convs see {before_pool} px; the pool adds (2 - 1) x 1, the last conv (3 - 1) x 2"

    return verdict(6, answer, judge, f"{right} px: 5 after two convs, 6 after the pool, 6 + 2 x 2 after the last conv.")
