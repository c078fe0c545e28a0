"""The layer explorer: pure helpers directly, then the widgets driven by setting their values."""

import matplotlib
import numpy as np
import pytest
import torch

from unet_lib.activations import capture
from unet_lib.errors import InputError
from unet_lib.model import UNet
from unet_lib.widgets import LayerExplorer, describe_activation, run_with_activations, select_activation

matplotlib.use("Agg")


@pytest.fixture
def model() -> UNet:
    torch.manual_seed(0)
    return UNet(3, 1, features=(4, 8))


@pytest.fixture
def images() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(2, 3, 16, 16)


def test_select_activation_channel_grid_and_clamp():
    acts = {"a": torch.randn(6, 5, 5)}
    np.testing.assert_array_equal(select_activation(acts, "a", 2, grid=False), acts["a"][2].numpy())
    np.testing.assert_array_equal(select_activation(acts, "a", 99, grid=False), acts["a"][5].numpy())
    assert select_activation(acts, "a", 0, grid=True).shape == (2 * 6 + 1, 3 * 6 + 1)  # 6 tiles, 3 per row


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
    model.eval()
    with torch.no_grad(), capture(model, ["final_conv"]) as expected:
        model(images[:1])
    assert acts["downs.0"].shape == (4, 16, 16)
    assert torch.equal(acts["final_conv"], expected["final_conv"][0])


def test_explorer_follows_its_widgets(model, images):
    explorer = LayerExplorer(model, images, masks=torch.rand(2, 16, 16) > 0.5)
    state = explorer.state()
    assert (state["sample"], state["layer"], state["channel"], state["grid"]) == (0, "downs.0", 0, False)
    assert state["channel_max"] == 3 and state["shape"] == (16, 16)
    assert state["label"].startswith("downs.0, shape (C, H, W) = (4, 16, 16), channel 0")

    explorer.layer.value = "bottleneck"  # 16 channels at 4x4
    bottleneck = run_with_activations(model, images[1], ["bottleneck"])["bottleneck"]
    channel = 4 + int(bottleneck[4:].std(dim=(1, 2)).argmax())  # a channel past downs.0's 4 that ReLU left alive
    explorer.channel.value = channel
    state = explorer.state()
    assert state["channel_max"] == 15 and state["activation_shape"] == (16, 4, 4) and state["shape"] == (4, 4)
    assert f"channel {channel}:" in state["label"]
    before = explorer.displayed.copy()

    explorer.sample.value = 1  # same layer and channel, another image
    assert explorer.state()["label"] != state["label"]
    assert not np.array_equal(explorer.displayed, before)
    np.testing.assert_array_equal(explorer.displayed, bottleneck[channel].numpy())

    explorer.layer.value = "final_conv"  # one channel: the slider clamps to 0
    state = explorer.state()
    assert (state["channel"], state["channel_max"], state["activation_shape"]) == (0, 0, (1, 16, 16))
    assert state["label"].startswith("final_conv, shape (C, H, W) = (1, 16, 16), channel 0")

    explorer.layer.value = "ups.0"
    explorer.grid.value = True
    state = explorer.state()
    assert state["grid"] and explorer.channel.disabled
    assert state["shape"] == (3 * 9 + 1, 3 * 9 + 1)  # 8 channels of 8x8, 3 tiles per row
    assert "all channels" in state["label"]
    assert len(explorer._cache) == 2  # one forward pass per sample, not per change


def test_explorer_rejects_bad_inputs(model, images):
    with pytest.raises(InputError, match="masks"):
        LayerExplorer(model, images, masks=torch.zeros(3, 16, 16))
    with pytest.raises(InputError, match="layer"):
        LayerExplorer(model, images, layers=["downs.0", "middle"])
    with pytest.raises(InputError, match="layers"):
        LayerExplorer(model, images, layers=[])
