"""Grad-CAM against captum, skip ablation against a re-typed forward, receptive fields against autograd."""

import pytest
import torch
import torch.nn.functional as F
from captum.attr import LayerGradCam
from torch import nn

from unet_lib.errors import InputError
from unet_lib.inspect.interpret import effective_receptive_field, erf_size, grad_cam, receptive_fields, without_skips
from unet_lib.model import UNet

SIZE = (32, 48)


def calibrated(model: UNet, size=SIZE) -> UNet:
    """Set every BatchNorm's running statistics from one random batch, so activations are O(1) in eval mode."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None  # a plain average: one batch sets the statistics exactly
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 3, *size))
    return model.eval()


def all_hooks(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) + len(m._backward_pre_hooks)
        for m in model.modules()
    )


@pytest.fixture
def model() -> UNet:
    torch.manual_seed(0)
    return calibrated(UNet(3, 3, features=(4, 8, 16, 32)))


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(2, 3, *SIZE, generator=torch.Generator().manual_seed(1))


# Grad-CAM


@pytest.mark.parametrize("layer", ["downs.1", "bottleneck", "ups.1"])
@pytest.mark.parametrize("with_region", [False, True])
@pytest.mark.parametrize("num_classes, target", [(1, 0), (3, 2)])
def test_grad_cam_matches_captum(layer, with_region, num_classes, target, images):
    torch.manual_seed(0)
    model = calibrated(UNet(3, num_classes, features=(4, 8, 16, 32)))
    region = torch.rand(2, *SIZE, generator=torch.Generator().manual_seed(2)) > 0.6 if with_region else None
    mask = region.float() if with_region else torch.ones(2, *SIZE)

    def score(x: torch.Tensor) -> torch.Tensor:
        return (model(x)[:, target] * mask).sum(dim=(1, 2))  # (B,)

    module = dict(model.named_modules())[layer]
    expected = LayerGradCam(score, module).attribute(images, relu_attributions=True)[:, 0]  # (B, h, w)
    cam = grad_cam(model, images, layer, target=target, region=region)
    assert expected.max() > 1e-3  # a map worth comparing, not all zeros
    assert cam.shape == expected.shape and not cam.requires_grad
    torch.testing.assert_close(cam, expected, rtol=1e-4, atol=1e-6)


def test_grad_cam_leaves_the_model_as_it_was(model, images):
    model.train()
    model.downs[0].conv[1].eval()  # a mixed state (a frozen BatchNorm) comes back exactly
    modes = [m.training for m in model.modules()]
    stats = model.downs[1].conv[1].running_mean.clone()
    kept = torch.ones_like(model.final_conv.weight)
    model.final_conv.weight.grad = kept.clone()  # a gradient the caller had stays as it was
    with torch.no_grad():  # grad_cam switches gradients on inside
        cam = grad_cam(model, images, "downs.2")
    assert cam.shape == (2, 8, 12)
    assert [m.training for m in model.modules()] == modes
    torch.testing.assert_close(model.downs[1].conv[1].running_mean, stats, rtol=0, atol=0)  # ran in eval mode
    assert all_hooks(model) == 0
    assert torch.equal(model.final_conv.weight.grad, kept)
    assert all(p.grad is None for name, p in model.named_parameters() if name != "final_conv.weight")


def test_grad_cam_takes_images_made_under_inference_mode(model, images):
    with torch.inference_mode():
        frozen = images.clone()
    torch.testing.assert_close(grad_cam(model, frozen, "bottleneck"), grad_cam(model, images, "bottleneck"))


def test_grad_cam_refuses_bad_requests_and_cleans_up(model, images):
    model.train()
    with pytest.raises(InputError, match=r"layer 'downs\.9'.*try one of"):
        grad_cam(model, images, "downs.9")
    with pytest.raises(InputError, match=r"'pool'.*runs once.*outputs in this forward: \[\(2, 4, 16, 24\), "):
        grad_cam(model, images, "pool")  # called after every down block
    with pytest.raises(InputError, match="target: expected a class in 0..2"):
        grad_cam(model, images, "ups.1", target=3)
    with pytest.raises(InputError, match="region: expected a mask of shape"):
        grad_cam(model, images, "ups.1", region=torch.ones(*SIZE, dtype=torch.bool))
    with pytest.raises(InputError, match="inference_mode"), torch.inference_mode():
        grad_cam(model, images, "ups.1")
    with pytest.raises(RuntimeError):
        grad_cam(model, images[:, :2], "ups.1")  # the forward itself fails: 2 channels, not 3
    assert model.training and all(m.training for m in model.modules())
    assert all_hooks(model) == 0
    assert all(p.grad is None for p in model.parameters())


# Skip connections


def forward_without_skips(model: UNet, x: torch.Tensor, levels) -> torch.Tensor:
    """UNet.forward re-typed, with zeros in place of the encoder's output at ``levels``."""
    skips = []
    for down in model.downs:
        x = down(x)
        skips.append(x)
        x = model.pool(x)
    x = model.bottleneck(x)
    depth = len(model.downs)
    for j, (upconv, up) in enumerate(zip(model.upconvs, model.ups, strict=True)):
        level = depth - 1 - j
        skip = torch.zeros_like(skips[level]) if level in levels else skips[level]
        x = upconv(x)
        dh, dw = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
        x = F.pad(x, [dw // 2, dw - dw // 2, dh // 2, dh - dh // 2])
        x = up(torch.cat([skip, x], dim=1))
    return model.final_conv(x)


@pytest.mark.parametrize("levels", [[0], [3], [1, 2], [0, 1, 2, 3]])
@pytest.mark.parametrize("size", [SIZE, (30, 45)])  # odd sizes: the decoder pads before the cat
def test_without_skips_matches_a_retyped_forward(model, levels, size):
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        full = model(x)
        with without_skips(model, levels):
            cut = model(x)
        expected = forward_without_skips(model, x, levels)
    torch.testing.assert_close(forward_without_skips(model, x, []), full)  # the re-typed forward is the real one
    torch.testing.assert_close(cut, expected)
    assert not torch.allclose(cut, full)  # the cut made a difference
    assert all_hooks(model) == 0


def test_without_skips_removes_its_hooks_even_on_error(model, images):
    with torch.no_grad(), without_skips(model, []):
        torch.testing.assert_close(model(images), forward_without_skips(model, images, []))
    with pytest.raises(KeyError), without_skips(model, [0, 2]):
        assert all_hooks(model) == 2
        raise KeyError("raised inside the block")
    assert all_hooks(model) == 0


@pytest.mark.parametrize("level", [-1, 4, 1.0, True, "0"])
def test_without_skips_refuses_levels_outside_the_encoder(model, level):
    with pytest.raises(InputError, match=r"levels: expected skip levels in 0..3"), without_skips(model, [level]):
        pass
    assert all_hooks(model) == 0


# Receptive fields


def test_effective_receptive_field_matches_a_direct_gradient(model):
    x = torch.randn(3, 3, *SIZE)
    model.train()
    for position in (None, (5, 40)):
        row, col = position or (SIZE[0] // 2, SIZE[1] // 2)
        model.eval()
        leaf = x.clone().requires_grad_()
        (grads,) = torch.autograd.grad(model(leaf)[:, 0, row, col].sum(), leaf)
        expected = grads.abs().sum(dim=1).mean(dim=0)  # (H, W)
        model.train()
        erf = effective_receptive_field(model, x, position)
        assert erf.shape == SIZE and expected.max() > 0
        torch.testing.assert_close(erf, expected)
    assert model.training and all_hooks(model) == 0
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(InputError, match="position"):
        effective_receptive_field(model, x, (SIZE[0], 0))


def span(field: torch.Tensor) -> tuple[int, int, int, int]:
    """(first row, last row, first column, last column) where ``field`` is not zero."""
    rows, cols = torch.nonzero(field, as_tuple=True)
    return rows.min().item(), rows.max().item(), cols.min().item(), cols.max().item()


@pytest.mark.parametrize("upsample", ["transpose", "bilinear"])
def test_effective_receptive_field_stays_inside_the_theoretical_one(upsample):
    torch.manual_seed(0)
    model = calibrated(UNet(3, 1, features=(4, 8), upsample=upsample), size=(64, 64))
    side = receptive_fields(model)["ups.1"]  # the whole network's field: final_conv is 1x1
    assert side < 64  # the field fits in the picture, so its edges show
    x = torch.randn(4, 3, 64, 64)
    top, bottom, left, right = span(effective_receptive_field(model, x))
    assert 32 - side // 2 <= top and bottom <= 32 + side // 2 and 32 - side // 2 <= left and right <= 32 + side // 2
    widest = 0
    for offset in range(4):  # every alignment on the coarsest grid (4 pixels a step)
        top, bottom, left, right = span(effective_receptive_field(model, x, (30 + offset, 30 + offset)))
        assert bottom - top + 1 <= side and right - left + 1 <= side
        widest = max(widest, bottom - top + 1, right - left + 1)
    assert widest == side


def hand_recurrence(depth: int) -> dict[str, int]:
    """The encoder's field with r += (k - 1) * j; j *= s: two 3x3 convs per block, a 2x2 pool between."""
    fields, size, step = {}, 1, 1
    for level in range(depth + 1):
        if level:
            size, step = size + (2 - 1) * step, step * 2  # the 2x2 max-pool
        size += 2 * (3 - 1) * step  # two 3x3 convs
        fields["bottleneck" if level == depth else f"downs.{level}"] = size
    return fields


@pytest.mark.parametrize("features", [(64, 128, 256, 512), (4, 8), (4, 8, 16)])
@pytest.mark.parametrize("block", ["double", "residual"])
def test_receptive_fields_of_the_encoder_follow_the_recurrence(features, block):
    fields = receptive_fields(UNet(features=features, block=block))
    encoder = {name: size for name, size in fields.items() if not name.startswith("ups")}
    assert encoder == hand_recurrence(len(features))
    assert list(fields)[len(encoder) :] == [f"ups.{j}" for j in range(len(features))]


def test_receptive_fields_of_the_default_unet():
    assert receptive_fields(UNet()) == {
        "downs.0": 5,
        "downs.1": 14,
        "downs.2": 32,
        "downs.3": 68,
        "bottleneck": 140,
        "ups.0": 172,
        "ups.1": 188,
        "ups.2": 204,
        "ups.3": 204,
    }
    assert list(receptive_fields(UNet(upsample="bilinear")).values())[-4:] == [188, 220, 236, 236]


@pytest.mark.parametrize("block", ["double", "residual"])
@pytest.mark.parametrize("upsample", ["transpose", "bilinear"])
def test_receptive_fields_are_the_widest_gradient_of_each_block(block, upsample):
    """One position of a block's output depends on input pixels across at most its field, and one reaches it."""
    torch.manual_seed(0)
    model = calibrated(UNet(3, 1, features=(4, 8), block=block, upsample=upsample), size=(64, 64))
    fields = receptive_fields(model)
    outputs, handles = {}, []
    modules = dict(model.named_modules())
    try:
        for name in fields:
            handles.append(
                modules[name].register_forward_hook(lambda m, a, out, name=name: outputs.update({name: out}))
            )
        x = torch.randn(4, 3, 64, 64, requires_grad=True)
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    for name, out in outputs.items():
        middle, widest = out.shape[-1] // 2, 0
        for p in range(middle - 4, middle + 4):  # every alignment on the coarser grids
            (grads,) = torch.autograd.grad(out[:, :, p, p].sum(), x, retain_graph=True)
            top, bottom, left, right = span(grads.abs().sum(dim=(0, 1)))
            widest = max(widest, bottom - top + 1, right - left + 1)
        assert widest == fields[name], name


def test_erf_size_on_a_hand_made_map():
    field = torch.zeros(21, 21)
    field[9:12, 9:12] = 1.0  # 9 of the 10 units within one pixel of the centre (10, 10)
    field[10, 15] = 1.0  # the tenth, 5 pixels to the right
    assert erf_size(field) == 3
    assert erf_size(field, share=0.5) == 3
    assert erf_size(field, share=0.95) == 11
    assert erf_size(field, share=1.0) == 11
    field[10, 10] = 2.0  # now the centre alone holds 2 of 11
    assert erf_size(field, share=2 / 11) == 1
    corner = torch.zeros(8, 8)
    corner[0, 0], corner[3, 1] = 1.0, 3.0
    assert erf_size(corner, position=(0, 0), share=1.0) == 7  # chessboard distance 3
    assert erf_size(corner, position=(0, 0), share=0.25) == 1
    assert erf_size(torch.zeros(5, 5)) == 0
    with pytest.raises(InputError, match="share"):
        erf_size(field, share=0)
    with pytest.raises(InputError, match="erf"):
        erf_size(torch.zeros(1, 5, 5))
