"""The layer explorer: pure helpers directly, then the widgets driven by setting their values, each view
checked against an independent computation (a copy of the model in eval mode, the conv's weight, Grad-CAM)."""

import copy

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

import unet_lib.viz.widgets
from unet_lib.errors import InputError
from unet_lib.inspect.hooks import capture
from unet_lib.inspect.interpret import grad_cam
from unet_lib.metrics import IGNORE_INDEX
from unet_lib.model import UNet
from unet_lib.viz.widgets import (
    LayerExplorer,
    cam_image,
    describe_activation,
    filter_image,
    layer_conv,
    run_with_activations,
    view_image,
)

matplotlib.use("Agg")

H, W = 32, 48


@pytest.fixture
def model() -> UNet:
    torch.manual_seed(0)
    return UNet(3, 1, features=(4, 8, 16, 32))  # channels 4, 8, 16, 32, bottleneck 64; left in training mode


@pytest.fixture
def images() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(2, 3, H, W)


@pytest.fixture
def masks() -> torch.Tensor:
    masks = torch.zeros(2, H, W, dtype=torch.uint8)
    masks[0, 8:24, 10:40] = 1  # a 16x30 "car"
    masks[1, 4:20, 6:30] = 1
    return masks


def reference_acts(model: UNet, image: torch.Tensor, layer: str) -> torch.Tensor:
    """The layer's output [C, H, W] from a copy of the model in eval mode: the oracle for the activation views."""
    oracle = copy.deepcopy(model).eval()
    with torch.no_grad(), capture(oracle, layer) as acts:
        oracle(image[None])
    return acts[layer][0]


def tile(grid: np.ndarray, i: int, h: int, w: int, ncols: int) -> np.ndarray:
    """Tile ``i`` of a grid made with a one-pixel border (``make_grid(padding=1)``)."""
    top, left = 1 + (i // ncols) * (h + 1), 1 + (i % ncols) * (w + 1)
    return grid[top : top + h, left : left + w]


def scaled(x: torch.Tensor) -> np.ndarray:
    """``x`` scaled to [0, 1]; a constant channel (a ReLU that never fires) becomes zeros."""
    span = x.max() - x.min()
    return ((x - x.min()) / span).numpy() if span > 0 else np.zeros(x.shape, dtype=np.float32)


def test_view_image_channel_mean_and_grid_pages():
    torch.manual_seed(2)
    acts = {"a": torch.randn(40, 5, 6)}
    act = acts["a"]
    np.testing.assert_array_equal(view_image(acts, "a", "channel", 7), act[7].numpy())
    np.testing.assert_array_equal(view_image(acts, "a", "channel", 99), act[39].numpy())  # clamped
    np.testing.assert_allclose(view_image(acts, "a", "mean", 3), act.mean(0).numpy())
    page = view_image(acts, "a", "grid", 16)  # channels 16..31: 16 tiles, 4 per row
    assert page.shape == (4 * 6 + 1, 4 * 7 + 1)
    for i in range(16):
        np.testing.assert_allclose(tile(page, i, 5, 6, 4), scaled(act[16 + i]), atol=1e-6)
    assert np.isnan(page[0]).all() and np.isnan(page[:, 7]).all()  # borders are NaN: imshow leaves them blank
    last = view_image(acts, "a", "grid", 32)  # channels 32..39: 8 tiles, 3 per row, one empty slot
    np.testing.assert_allclose(tile(last, 7, 5, 6, 3), scaled(act[39]), atol=1e-6)
    assert np.isnan(tile(last, 8, 5, 6, 3)).all()
    # The old helper still works: a channel, or the first 16 channels
    with pytest.raises(InputError, match="view"):
        view_image(acts, "a", "filters", 0)


def test_layer_conv_picks_the_block_s_last_3x3_conv(model):
    name, weight = layer_conv(model, "downs.1")
    assert name == "downs.1.conv.3" and torch.equal(weight, model.downs[1].conv[3].weight.detach())
    name, weight = layer_conv(model, "final_conv")  # a conv is its own conv
    assert name == "final_conv" and weight.shape == (1, 4, 1, 1)
    name, weight = layer_conv(model, "upconvs.0")  # ConvTranspose2d keeps [in, out, k, k]: turned to [out, in]
    assert name == "upconvs.0" and torch.equal(weight, model.upconvs[0].weight.detach().transpose(0, 1))
    residual = UNet(3, 1, features=(4, 8), block="residual")
    name, weight = layer_conv(residual, "downs.1")  # the 3x3 conv, not the 1x1 shortcut created after it
    assert name == "downs.1.conv.3" and weight.shape == (8, 8, 3, 3)
    with pytest.raises(InputError, match="no convolution"):
        layer_conv(model, "pool")


def test_filter_image_tiles_one_filter_s_kernels_unscaled():
    torch.manual_seed(3)
    weight = torch.randn(6, 8, 3, 3)
    shown = filter_image(weight, 4)  # 8 kernels, 3 per row
    assert shown.shape == (3 * 4 + 1, 3 * 4 + 1)
    for i in range(8):
        np.testing.assert_array_equal(tile(shown, i, 3, 3, 3), weight[4, i].numpy())
    np.testing.assert_array_equal(filter_image(weight[:, :1], 2), weight[2, 0].numpy())  # one kernel: no border


def test_cam_image_upsamples_bilinearly():
    cam = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    shown = cam_image(cam, (4, 4))
    assert shown.shape == (4, 4) and shown[0, 0] == 0 and shown[-1, -1] == 3
    np.testing.assert_allclose(shown[1, 1:3], [0.75, 1.25])  # pixel centres at 3/8 and 5/8 of the cell


def test_describe_activation():
    act = torch.tensor([[[1.0, 2.0]], [[-4.0, 10.0]]])  # (C, H, W) = (2, 1, 2)
    assert describe_activation(act, "ups.0", 1, grid=False) == (
        "ups.0, shape (C, H, W) = (2, 1, 2), channel 1: min -4, max 10, mean 3"
    )
    assert describe_activation(act, "ups.0", 1, grid=True).endswith("all channels: min -4, max 10, mean 2.25")


def test_run_with_activations_uses_eval_mode_and_restores_training(model, images):
    model.train()
    acts = run_with_activations(model, images[0], ["downs.0", "final_conv"])
    assert model.training
    assert acts["downs.0"].shape == (4, H, W)
    assert torch.equal(acts["final_conv"], reference_acts(model, images[0], "final_conv"))


def test_every_view_shows_what_an_independent_computation_gives(model, images, masks):
    explorer = LayerExplorer(model, images, masks)
    state = explorer.state()
    assert (state["sample"], state["layer"], state["view"], state["channel"]) == (0, "downs.0", "channel", 0)
    assert state["label"].startswith(f"downs.0, shape (C, H, W) = (4, {H}, {W}), channel 0: min")

    explorer.sample.value, explorer.layer.value = 1, "downs.1"  # 8 channels at 16x24
    expected = reference_acts(model, images[1], "downs.1")
    explorer.channel.value = 5
    np.testing.assert_allclose(explorer.displayed, expected[5].numpy(), atol=1e-6)
    assert explorer.state()["title"] == "channel 5 of 8" and explorer.state()["channel_enabled"]

    explorer.view.value = "mean"
    np.testing.assert_allclose(explorer.displayed, expected.mean(0).numpy(), atol=1e-6)
    state = explorer.state()
    assert state["title"] == "mean of 8 channels" and not state["channel_enabled"]

    explorer.view.value = "filters"
    weight = model.downs[1].conv[3].weight.detach()
    for i in range(8):
        np.testing.assert_array_equal(tile(explorer.displayed, i, 3, 3, 3), weight[5, i].numpy())
    state = explorer.state()
    assert state["conv"] == "downs.1.conv.3" and state["channel_enabled"] and state["channel_max"] == 7
    assert state["title"] == "downs.1.conv.3: filter 5 of 8, its 8 kernels 3x3"

    explorer.view.value = "grad-cam"
    cam = grad_cam(model, images[1:2], "downs.1", target=0)  # (1, 16, 24)
    upsampled = F.interpolate(cam[None], size=(H, W), mode="bilinear", align_corners=False)[0, 0]
    np.testing.assert_allclose(explorer.displayed, upsampled.numpy(), rtol=1e-5, atol=1e-7)
    state = explorer.state()
    assert (
        state["shape"] == (H, W)
        and state["title"] == "Grad-CAM of downs.1 for the car logit (output channel 0) (map 16x24)"
    )
    assert not state["channel_enabled"] and model.training  # the model's mode comes back


def test_grid_pages_through_all_channels_and_the_slider_follows_layer_and_view(model, images):
    explorer = LayerExplorer(model, images)
    explorer.layer.value = "bottleneck"  # 64 channels at 2x3
    assert explorer.state()["channel_max"] == 63
    explorer.view.value = "grid"
    assert explorer.state()["channel_max"] == 48  # the last page is full: channels 48..63
    bottleneck = reference_acts(model, images[0], "bottleneck")
    assert bottleneck[16:].amax(dim=(1, 2)).gt(bottleneck[16:].amin(dim=(1, 2))).sum() > 10  # live channels to check
    for first in (16, 48):
        explorer.channel.value = first
        state = explorer.state()
        assert (state["first_channel"], state["last_channel"], state["num_channels"]) == (first, first + 15, 64)
        assert state["grid"] and state["channel_enabled"] and state["shape"] == (4 * 3 + 1, 4 * 4 + 1)
        assert state["title"].startswith(f"channels {first}..{first + 15} of 64")
        for i in range(16):
            np.testing.assert_allclose(tile(explorer.displayed, i, 2, 3, 4), scaled(bottleneck[first + i]), atol=1e-5)
    explorer.view.value = "channel"  # the whole range again; the channel stays
    assert explorer.state()["channel_max"] == 63 and explorer.channel.value == 48
    explorer.view.value = "grid"
    explorer.layer.value = "downs.0"  # 4 channels: one page, the slider clamps to 0
    state = explorer.state()
    assert (state["channel"], state["channel_max"], state["first_channel"], state["last_channel"]) == (0, 0, 0, 3)
    explorer.layer.value = "upconvs.0"
    explorer.view.value = "filters"  # a ConvTranspose2d: 32 filters of 64 kernels 2x2
    state = explorer.state()
    assert (state["channel_max"], state["num_channels"], state["conv"]) == (31, 32, "upconvs.0")
    explorer.layer.value = "final_conv"
    assert explorer.state()["channel_max"] == 0 and explorer.state()["first_channel"] is None


def test_reference_outline_changes_the_input_only_at_the_boundary(model, images, masks):
    explorer = LayerExplorer(model, images, masks)
    assert explorer.reference.value and explorer.state()["reference"]
    on, right = explorer.displayed_input.clone(), explorer.displayed.copy()
    explorer.reference.value = False
    off = explorer.displayed_input
    assert not explorer.state()["reference"]
    assert torch.equal(off, (images[0] * 255).round().to(torch.uint8))  # the plain photo
    boundary = masks[0].bool().clone()
    boundary[10:22, 12:38] = False  # the 16x30 box less its 2-pixel rim
    assert ((on != off).any(dim=0) & ~boundary).sum() == 0  # the car itself and the background keep the photo
    assert all(on[:, i, j].tolist() == [255, 255, 0] for i, j in boundary.nonzero().tolist())
    np.testing.assert_array_equal(explorer.displayed, right)  # the right panel does not change
    without = LayerExplorer(model, images)
    assert not without.reference.value and without.reference.disabled and not without.state()["reference"]


def test_every_control_in_the_bar_changes_what_is_shown(model, images, masks):
    """Each control shown is wired to the view (how the bar wraps at a narrow width is test_browser's)."""
    explorer = LayerExplorer(model, images, masks)
    controls = (explorer.sample, explorer.layer, explorer.channel, explorer.view, explorer.reference)
    assert list(explorer.controls.children) == list(controls) and explorer.controls in explorer.widget.children

    def shown():
        return explorer.displayed.copy(), explorer.displayed_input.clone(), explorer.info.value

    for control, value, changes in (
        (explorer.sample, 1, "input"),
        (explorer.layer, "downs.1", "view"),
        (explorer.channel, 3, "view"),
        (explorer.reference, False, "input"),
    ):
        (view, picture, info), state = shown(), explorer.state()
        control.value = value
        assert explorer.state()[control.description.split()[0]] == value
        if changes == "input":  # the picture on the left changes
            assert not torch.equal(explorer.displayed_input, picture), control.description
        else:  # the view on the right, and the line of text above it
            assert explorer.displayed.shape != view.shape or not np.allclose(explorer.displayed, view, equal_nan=True)
            assert explorer.info.value != info and explorer.state()["title"] != state["title"], control.description

    titles = {}
    for option in explorer.view.options:  # every button draws a view of its own, with no error in the text line
        explorer.view.value = option
        titles[option] = explorer.state()["title"]
        assert explorer.info.value.startswith(("downs.1", "Grad-CAM of downs.1")), (option, explorer.info.value)
        assert explorer.figure().axes[1].get_title() == titles[option]
    assert len(set(titles.values())) == len(titles) == 5, titles


def test_figure_is_the_current_view(model, images, masks):
    explorer = LayerExplorer(model, images, masks)
    explorer.layer.value = "bottleneck"
    explorer.view.value = "grid"
    explorer.channel.value = 16
    fig = explorer.figure()
    assert isinstance(fig, Figure) and fig.get_suptitle() == "sample 0, layer bottleneck"
    left, right = fig.axes  # no colour bar: every tile has its own scale
    assert left.get_title() == "input, reference outlined"
    assert right.get_title() == "channels 16..31 of 64, each scaled to its own range"
    np.testing.assert_array_equal(right.images[0].get_array().filled(np.nan), explorer.displayed)
    explorer.view.value = "grad-cam"
    fig = explorer.figure()
    assert len(fig.axes) == 3 and len(fig.axes[1].images) == 2  # the photo, then the heat over it
    assert fig.axes[2].get_ylabel() == "Grad-CAM"  # the colour bar


def test_one_forward_per_sample_one_grad_cam_per_sample_and_layer_and_no_hooks_left(model, images, monkeypatch):
    calls = []

    def counted(*args, **kwargs):
        calls.append((args[2], kwargs))
        return grad_cam(*args, **kwargs)

    monkeypatch.setattr(unet_lib.viz.widgets, "grad_cam", counted)
    explorer = LayerExplorer(model, images)
    for sample in (0, 1, 0):
        explorer.sample.value = sample
        for layer in ("downs.1", "ups.1", "downs.1"):
            explorer.layer.value = layer
            for view in ("grad-cam", "mean", "grad-cam"):
                explorer.view.value = view
    assert len(explorer._cache) == 2  # one forward pass per sample, not per change
    assert sorted(layer for layer, _ in calls) == ["downs.1", "downs.1", "ups.1", "ups.1"]
    assert all(kwargs == {"target": 0} for _, kwargs in calls)
    for module in model.modules():
        assert not (module._forward_hooks or module._forward_pre_hooks or module._backward_hooks)
    assert all(p.grad is None for p in model.parameters()) and model.training


def test_explorer_rejects_bad_inputs_and_says_when_a_layer_has_no_filters(model, images):
    with pytest.raises(InputError, match="masks"):
        LayerExplorer(model, images, masks=torch.zeros(3, H, W))
    with pytest.raises(InputError, match="layer"):
        LayerExplorer(model, images, layers=["downs.0", "middle"])
    with pytest.raises(InputError, match="layers"):
        LayerExplorer(model, images, layers=[])
    explorer = LayerExplorer(model, images, layers=["downs.0", "pool"])
    explorer.layer.value = "pool"
    explorer.view.value = "filters"
    assert explorer.info.value == "layer 'pool': has no convolution, so it has no filters to show"
    masks = torch.zeros(2, H, W)
    masks[:, 4:8, 4:8] = IGNORE_INDEX  # ignored pixels are not the car: no outline at all
    explorer = LayerExplorer(model, images, masks)
    assert torch.equal(explorer.displayed_input, (images[0] * 255).round().to(torch.uint8))
