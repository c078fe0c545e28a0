"""Losses checked against hand-written formulas: values, ignored pixels, gradients and bad inputs."""

import pytest
import torch
from torch import nn

from unet_lib.errors import InputError
from unet_lib.losses import BCEDiceLoss, MaskBCEWithLogitsLoss, MaskCrossEntropyLoss, make_loss, soft_dice
from unet_lib.metrics import IGNORE_INDEX
from unet_lib.model import UNet


def binary_batch(seed: int = 0, shape=(3, 1, 8, 6)):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=generator, dtype=torch.float64) * 2
    masks = (torch.rand(shape, generator=generator) < 0.4).to(torch.uint8)[:, 0]  # [N, H, W], as a loader yields
    return logits, masks


def hand_bce_dice(logits, masks, bce_weight, dice_weight, smooth):
    """BCE + (1 - soft Dice) written out pixel by pixel and image by image."""
    p = torch.sigmoid(logits[:, 0])
    t = masks.double()
    bce = -(t * torch.log(p) + (1 - t) * torch.log(1 - p)).mean()
    dices = [(2 * (p[i] * t[i]).sum() + smooth) / (p[i].sum() + t[i].sum() + smooth) for i in range(len(p))]
    return bce_weight * bce + dice_weight * (1 - sum(dices) / len(dices))


def test_bce_dice_equals_hand_formula():
    logits, masks = binary_batch()
    loss_fn = BCEDiceLoss(bce_weight=0.3, dice_weight=2.0, smooth=0.5)
    expected = hand_bce_dice(logits, masks, 0.3, 2.0, 0.5)
    torch.testing.assert_close(loss_fn(logits, masks), expected)
    torch.testing.assert_close(loss_fn(logits, masks[:, None].float()), expected)  # [N, 1, H, W] float masks
    torch.testing.assert_close(make_loss("bce_dice", 1)(logits, masks), hand_bce_dice(logits, masks, 1.0, 1.0, 1.0))


def test_bce_equals_hand_formula():
    logits, masks = binary_batch(seed=1)
    expected = hand_bce_dice(logits, masks, 1.0, 0.0, 1.0)
    torch.testing.assert_close(make_loss("bce", 1)(logits, masks), expected)
    torch.testing.assert_close(make_loss("bce", 1)(logits, masks.bool()[:, None]), expected)


def test_soft_dice_has_an_exact_gradient():
    logits, masks = binary_batch(seed=2, shape=(2, 1, 3, 4))
    target = masks[:, None].double()
    assert torch.autograd.gradcheck(lambda x: soft_dice(x, target, smooth=1.0), logits.requires_grad_())


def test_soft_dice_stays_float32_under_half_precision():
    logits = torch.full((1, 1, 300, 300), 10.0, dtype=torch.float16)  # 90,000 pixels: the sum overflows fp16
    target = torch.ones(1, 1, 300, 300)
    score = soft_dice(logits, target)
    assert score.dtype == torch.float32
    torch.testing.assert_close(score, torch.ones(1), atol=1e-4, rtol=0)


def test_perfect_confident_logits_give_near_zero_loss():
    masks = torch.zeros(2, 8, 8, dtype=torch.long)
    masks[0, 2:6, 1:5] = 1  # image 1 stays empty: Dice must still be at its best there
    binary_logits = (masks[:, None].float() * 2 - 1) * 30  # +30 on the mask, -30 elsewhere
    for name in ("bce", "bce_dice"):
        assert make_loss(name, 1)(binary_logits, masks).item() < 1e-6, name

    labels = torch.randint(0, 4, (2, 8, 8), generator=torch.Generator().manual_seed(0))
    labels[:, 0] = IGNORE_INDEX
    # clamp: ignored pixels get some class; their logits must not matter
    ce_logits = nn.functional.one_hot(labels.clamp(max=3), 4).permute(0, 3, 1, 2).float() * 30  # [N, C, H, W]
    assert make_loss("ce", 4)(ce_logits, labels).item() < 1e-6
    wrong = make_loss("ce", 4)(ce_logits.roll(1, dims=1), labels).item()  # confident and wrong
    assert wrong > 10


def test_cross_entropy_ignores_ignore_index():
    generator = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 5, 6, 7, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 5, (2, 6, 7), generator=generator)
    ignored = torch.rand(2, 6, 7, generator=generator) < 0.3
    labels[ignored] = IGNORE_INDEX
    loss_fn = make_loss("ce", 5)

    def loss_and_grad(x):
        x = x.clone().requires_grad_()
        loss = loss_fn(x, labels[:, None].to(torch.uint8))  # [N, 1, H, W] uint8, as a loader may yield
        loss.backward()
        return loss.detach(), x.grad

    loss, grad = loss_and_grad(logits)
    # Reference: mean of -log softmax at the labelled pixels only.
    log_probs = logits.log_softmax(1).permute(0, 2, 3, 1)[~ignored]  # [labelled, C]
    expected = -log_probs.gather(1, labels[~ignored][:, None]).mean()
    torch.testing.assert_close(loss, expected)

    # Changing the logits under ignored pixels changes neither the loss nor the gradient.
    noise = torch.randn(logits.shape, generator=generator, dtype=torch.float64) * 5
    changed = logits + noise * ignored[:, None]
    loss2, grad2 = loss_and_grad(changed)
    torch.testing.assert_close(loss2, loss)
    torch.testing.assert_close(grad2, grad)
    assert grad.permute(0, 2, 3, 1)[ignored].abs().max() == 0
    assert grad.permute(0, 2, 3, 1)[~ignored].abs().min() > 0


@pytest.mark.parametrize(("name", "num_classes"), [("bce", 1), ("bce_dice", 1), ("ce", 3)])
def test_every_parameter_gets_a_gradient(name, num_classes):
    torch.manual_seed(0)
    model = UNet(in_channels=3, num_classes=num_classes, features=(4, 8))
    images = torch.randn(2, 3, 16, 16)
    masks = torch.randint(0, 2 if num_classes == 1 else num_classes, (2, 16, 16))
    loss = make_loss(name, num_classes)(model(images), masks)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), param_name
        assert param.grad.abs().sum() > 0, param_name


def test_make_loss_builds_the_named_loss():
    assert isinstance(make_loss("bce", 1), MaskBCEWithLogitsLoss)
    assert isinstance(make_loss("bce_dice", 1), BCEDiceLoss)
    ce = make_loss("ce", 19)
    assert isinstance(ce, MaskCrossEntropyLoss) and ce.ignore_index == IGNORE_INDEX


@pytest.mark.parametrize(
    ("name", "num_classes", "message"),
    [
        ("dice", 1, "expected one of bce, bce_dice, ce, got 'dice'"),
        ("BCE", 1, "expected one of bce, bce_dice, ce"),
        ("ce", 1, "needs 2 or more classes"),
        ("bce", 2, "num_classes=1"),
        ("bce_dice", 19, "num_classes=1"),
    ],
)
def test_make_loss_rejects_bad_arguments(name, num_classes, message):
    with pytest.raises(ValueError, match=message):
        make_loss(name, num_classes)


@pytest.mark.parametrize(
    ("name", "num_classes", "logits_shape", "masks_shape"),
    [
        ("bce", 1, (2, 1, 4, 4), (2, 4, 5)),
        ("bce_dice", 1, (2, 2, 4, 4), (2, 4, 4)),
        ("ce", 3, (2, 3, 4, 4), (2, 3, 4, 4)),
        ("ce", 3, (2, 3, 4, 4), (1, 4, 4)),
    ],
)
def test_losses_reject_mismatched_shapes(name, num_classes, logits_shape, masks_shape):
    with pytest.raises(InputError, match="expected"):
        make_loss(name, num_classes)(torch.zeros(logits_shape), torch.zeros(masks_shape, dtype=torch.long))
