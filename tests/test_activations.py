"""Forward-hook capture against torchvision's FX feature extractor, and hook clean-up."""

import pytest
import torch
from torch import nn
from torchvision.models import feature_extraction

from unet_lib.errors import InputError
from unet_lib.inspect.hooks import capture, layer_names
from unet_lib.model import UNet

NODES = ["downs.0", "bottleneck", "upconvs.0", "ups.1", "final_conv"]


@pytest.fixture
def model() -> UNet:
    torch.manual_seed(0)
    return UNet(3, 2, features=(4, 8)).eval()


def all_hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_layer_names_blocks_in_forward_order(model):
    assert layer_names(model) == [
        "downs.0",
        "downs.1",
        "bottleneck",
        "upconvs.0",
        "ups.0",
        "upconvs.1",
        "ups.1",
        "final_conv",
    ]


def test_layer_names_all_lists_every_named_module(model):
    names = layer_names(model, "all")
    assert names == [name for name, _ in model.named_modules() if name]
    assert {"downs", "downs.0", "downs.0.conv.0", "pool", "final_conv"} <= set(names)


def test_layer_names_of_a_plain_model_and_bad_kind():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ModuleList([nn.ReLU(), nn.ReLU()]))
    assert layer_names(model) == ["0", "1.0", "1.1"]
    with pytest.raises(InputError, match="kind"):
        layer_names(model, "leaves")


@pytest.mark.parametrize("size", [(16, 20), (17, 23)])  # 17x23: the decoder pads (model.pad_to, wrapped for fx)
def test_capture_matches_torchvision_feature_extractor(model, size):
    reference = feature_extraction.create_feature_extractor(model, return_nodes=NODES)
    x = torch.rand(2, 3, *size)
    expected = reference(x)
    with capture(model, NODES) as acts:
        logits = model(x)
    assert list(acts) == NODES
    for name in NODES:
        assert torch.equal(acts[name], expected[name]), name
    assert torch.equal(acts["final_conv"], logits)
    assert acts["bottleneck"].shape == (2, 16, 4, 5)


def test_capture_refills_on_each_forward_and_keeps_no_graph(model):
    model.train()  # BatchNorm in training mode: outputs depend on the batch
    x1, x2 = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    with capture(model, "downs.0") as acts:
        model(x1)
        first = acts["downs.0"]
        model(x2)
    assert not torch.equal(first, acts["downs.0"])
    assert not acts["downs.0"].requires_grad


def test_capture_survives_an_inplace_relu(model):
    # downs.0.conv.1 is a BatchNorm followed by ReLU(inplace=True): the stored output must keep its negatives.
    x = torch.rand(1, 3, 8, 8)
    with capture(model, "downs.0.conv.1") as acts:
        model(x)
    conv, bn = model.downs[0].conv[0], model.downs[0].conv[1]
    with torch.no_grad():
        expected = bn(conv(x))
    assert (expected < 0).any()
    torch.testing.assert_close(acts["downs.0.conv.1"], expected, rtol=0, atol=0)


def test_capture_inputs(model):
    x = torch.rand(1, 3, 8, 8)
    with capture(model, ["downs.0", "final_conv"], capture_inputs=True) as acts:
        model(x)
    assert torch.equal(acts.inputs["downs.0"], x)
    assert torch.equal(model.final_conv(acts.inputs["final_conv"]), acts["final_conv"])


def test_hooks_removed_after_exit(model):
    assert all_hooks(model) == 0
    with capture(model, NODES, capture_inputs=True):
        assert all_hooks(model) == 2 * len(NODES)
        model(torch.rand(1, 3, 8, 8))
    assert all_hooks(model) == 0


def test_hooks_removed_when_forward_raises(model):
    with pytest.raises(RuntimeError), capture(model, NODES):
        model(torch.rand(1, 5, 8, 8))  # 5 channels into a 3-channel UNet
    assert all_hooks(model) == 0


def test_unknown_name_raises_with_close_matches(model):
    with pytest.raises(InputError, match=r"'down.0'.*downs\.0"), capture(model, ["bottleneck", "down.0"]):
        pass
    with pytest.raises(InputError, match="try one of"), capture(model, "no_such_layer_at_all"):
        pass
    assert all_hooks(model) == 0
