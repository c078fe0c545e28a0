"""Training losses that take ``(logits, masks)`` straight from the model and the data loader: BCE, optionally
plus soft Dice, for one output channel; cross-entropy that skips ``IGNORE_INDEX`` pixels for classes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

import torch
import torch.nn.functional as F
from torch import nn

from unet_lib.config import LossName
from unet_lib.errors import InputError
from unet_lib.metrics import IGNORE_INDEX

LOSSES = get_args(LossName)


def _binary_target(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Masks [N, H, W] or [N, 1, H, W] of 0/1 -> float [N, 1, H, W], matching the logits."""
    if logits.ndim != 4 or logits.shape[1] != 1:
        raise InputError(f"logits: expected one channel of binary logits [N, 1, H, W], got {tuple(logits.shape)}")
    if masks.ndim == 3:
        masks = masks.unsqueeze(1)  # [N, H, W] -> [N, 1, H, W]
    if masks.shape != logits.shape:
        raise InputError(f"masks: expected shape {tuple(logits.shape)} to match the logits, got {tuple(masks.shape)}")
    return masks.to(logits.dtype)


def soft_dice(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice of each image, float [N] in (0, 1]: Dice computed on sigmoid probabilities instead of hard
    0/1 masks. Unlike the hard Dice it is differentiable, so ``1 - soft_dice`` can be minimised directly.

    Args:
        logits: Binary logits [N, 1, H, W].
        target: Float masks of 0/1, same shape.
        smooth: Added to numerator and denominator: keeps the ratio defined for empty masks (an empty,
            confidently empty prediction scores 1).
    """
    # At least float32: a sum over a few hundred thousand fp16 probabilities would overflow under autocast.
    probs = logits.to(torch.promote_types(logits.dtype, torch.float32)).sigmoid().flatten(1)  # [N, H*W]
    target = target.to(probs.dtype).flatten(1)
    overlap = (probs * target).sum(1)  # [N]
    total = probs.sum(1) + target.sum(1)  # [N]
    return (2 * overlap + smooth) / (total + smooth)


class BCEDiceLoss(nn.Module):
    """bce_weight * BCE(logits, masks) + dice_weight * (1 - mean soft Dice per image).

    BCE judges every pixel on its own; Dice judges the overlap of the whole shape, so it does not let a small
    object drown in background pixels. ``smooth`` is :func:`soft_dice`'s; ``pos_weight`` weighs BCE's
    foreground pixels (as ``nn.BCEWithLogitsLoss``'s does).
    """

    def __init__(
        self,
        bce_weight: float = 1.0,
        dice_weight: float = 1.0,
        smooth: float = 1.0,
        pos_weight: torch.Tensor | None = None,
    ):
        super().__init__()
        self.bce_weight, self.dice_weight, self.smooth = bce_weight, dice_weight, smooth
        self.register_buffer("pos_weight", pos_weight)  # moves with .to(device); None: unweighted

    def forward(self, logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        target = _binary_target(logits, masks)
        bce = F.binary_cross_entropy_with_logits(logits, target, pos_weight=self.pos_weight)
        dice = soft_dice(logits, target, self.smooth).mean()
        return self.bce_weight * bce + self.dice_weight * (1 - dice)

    def extra_repr(self) -> str:
        return f"bce_weight={self.bce_weight}, dice_weight={self.dice_weight}, smooth={self.smooth}"


class MaskBCEWithLogitsLoss(nn.BCEWithLogitsLoss):
    """``nn.BCEWithLogitsLoss`` that accepts masks [N, H, W] or [N, 1, H, W] of any dtype."""

    def forward(self, logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return super().forward(logits, _binary_target(logits, masks))


class MaskCrossEntropyLoss(nn.CrossEntropyLoss):
    """``nn.CrossEntropyLoss`` that skips ``IGNORE_INDEX`` pixels and accepts masks [N, H, W] or [N, 1, H, W]."""

    def __init__(self, ignore_index: int = IGNORE_INDEX, weight: torch.Tensor | None = None):
        super().__init__(weight=weight, ignore_index=ignore_index)

    def forward(self, logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        if masks.ndim == 4 and masks.shape[1] == 1:
            masks = masks[:, 0]  # [N, 1, H, W] -> [N, H, W]
        if logits.ndim != 4 or masks.shape != (logits.shape[0], *logits.shape[2:]):
            raise InputError(
                f"logits and masks: expected [N, C, H, W] and [N, H, W], got {tuple(logits.shape)} and {tuple(masks.shape)}"
            )
        return super().forward(logits, masks.long())


def make_loss(name: LossName, num_classes: int, weights: Sequence[float] = ()) -> nn.Module:
    """Build a loss by name; the module is called as ``loss_fn(logits, masks)`` (move it to the logits' device).

    Args:
        name: ``"bce"`` (binary cross-entropy), ``"bce_dice"`` (BCE + soft Dice) or ``"ce"`` (cross-entropy
            over classes, ignoring ``IGNORE_INDEX``).
        num_classes: The model's output channels: 1 for the binary losses, 2 or more for ``"ce"``.
        weights: Class weights (``"ce"``: one per class) or ``[pos_weight]`` (binary), e.g. the ones check-data
            prints (``unet_lib.data.check.loss_weights``); empty: unweighted.
    """
    if name not in LOSSES:
        raise InputError(f"loss name: expected one of {', '.join(LOSSES)}, got {name!r}")
    expected = num_classes if name == "ce" else 1
    if weights and len(weights) != expected:
        raise InputError(f"weights: the {name!r} loss takes {expected} (one per output channel), got {len(weights)}")
    weight = torch.tensor(weights, dtype=torch.float32) if weights else None
    if name == "ce":
        if num_classes < 2:
            raise InputError(f"num_classes: the 'ce' loss needs 2 or more classes, got {num_classes}")
        return MaskCrossEntropyLoss(weight=weight)
    if num_classes != 1:
        raise InputError(
            f"num_classes: the {name!r} loss needs a single-channel model (num_classes=1), got {num_classes}"
        )
    return MaskBCEWithLogitsLoss(pos_weight=weight) if name == "bce" else BCEDiceLoss(pos_weight=weight)
