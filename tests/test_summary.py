"""model_summary against hand-computed shapes and parameter counts, and against the model itself."""

import pytest
import torch
from torch import nn

from unet_lib.errors import InputError
from unet_lib.inspect.summary import format_summary, model_summary
from unet_lib.model import UNet, count_parameters


def double_conv_params(cin: int, cout: int) -> int:
    # conv3x3 without bias, BN (weight + bias), conv3x3 with bias, BN
    return 9 * cin * cout + 2 * cout + 9 * cout * cout + cout + 2 * cout


def transpose_params(cin: int, cout: int) -> int:
    return 4 * cin * cout + cout  # 2x2 kernel + bias


def expected_rows(features, height, width, in_channels=3, num_classes=1):
    """The U-Net's table worked out by hand: (name, input shape, output shape, parameters)."""
    rows, skips, c, h, w = [], [], in_channels, height, width
    for i, f in enumerate(features):
        rows.append((f"downs.{i}", (c, h, w), (f, h, w), double_conv_params(c, f)))
        skips.append((f, h, w))
        rows.append(("pool", (f, h, w), (f, h // 2, w // 2), 0))  # odd sizes round down
        c, h, w = f, h // 2, w // 2
    rows.append(("bottleneck", (c, h, w), (2 * c, h, w), double_conv_params(c, 2 * c)))
    c = 2 * c
    for i, (f, sh, sw) in enumerate(reversed(skips)):
        rows.append((f"upconvs.{i}", (c, h, w), (f, 2 * h, 2 * w), transpose_params(c, f)))
        # the upsampled map is padded to the skip's size, then concatenated with it: 2f channels
        rows.append((f"ups.{i}", (2 * f, sh, sw), (f, sh, sw), double_conv_params(2 * f, f)))
        c, h, w = f, sh, sw
    rows.append(("final_conv", (c, h, w), (num_classes, h, w), c * num_classes + num_classes))
    return rows


@pytest.mark.parametrize(
    "features, size",
    [((4, 8), (32, 48)), ((4, 8, 16), (50, 70)), ((8, 16, 32, 64), (37, 29))],
)
def test_rows_match_hand_computed_shapes_and_parameters(features, size):
    torch.manual_seed(0)
    model = UNet(3, 2, features)
    rows = model_summary(model, size)
    got = [(r["name"], r["input_shape"], r["output_shape"], r["params"]) for r in rows]
    assert got == expected_rows(features, *size, num_classes=2)
    assert sum(r["params"] for r in rows) == count_parameters(model)
    assert rows[-1]["output_shape"] == tuple(model(torch.rand(1, 3, *size)).shape[1:])
    assert rows[0]["type"] == "DoubleConv" and rows[1]["type"] == "MaxPool2d"


@pytest.mark.parametrize("block, upsample", [("residual", "transpose"), ("double", "bilinear")])
def test_parameters_of_each_row_are_the_modules_own(block, upsample):
    model = UNet(3, 1, (4, 8), block=block, upsample=upsample)
    rows = model_summary(model, (16, 16))
    modules = dict(model.named_modules())
    for row in rows:
        if row["name"] != "pool":
            assert row["params"] == sum(p.numel() for p in modules[row["name"]].parameters())
    assert sum(r["params"] for r in rows) == count_parameters(model)
    assert [r["output_shape"] for r in rows if r["name"].startswith("ups.")] == [(8, 8, 8), (4, 16, 16)]


def test_leaves_the_model_as_it_was():
    model = UNet(3, 1, (4, 8)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model_summary(model, (16, 24))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN statistics untouched
    assert all(not m._forward_hooks for m in model.modules())
    model.eval()
    model_summary(model, (16, 24))
    assert not model.training


def test_channels_given_and_other_models():
    model = UNet(1, 1, (4,))
    rows = model_summary(model, (1, 8, 8))
    assert rows[0]["input_shape"] == (1, 8, 8)
    assert model_summary(model, (8, 8))[0]["input_shape"] == (1, 8, 8)  # read from the model
    seq = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(), nn.Conv2d(5, 2, 1))
    rows = model_summary(seq, (6, 7))
    assert [(r["name"], r["output_shape"], r["params"]) for r in rows] == [
        ("0", (5, 6, 7), 3 * 5 * 9 + 5),
        ("1", (5, 6, 7), 0),
        ("2", (2, 6, 7), 5 * 2 + 2),
    ]
    rows = model_summary(model, (8, 8), names=["final_conv"])
    assert [r["name"] for r in rows] == ["final_conv"]


@pytest.mark.parametrize("size", [(0, 16), (16,), (3, 16, 16, 1), (16.0, 16)])
def test_bad_input_size(size):
    with pytest.raises(InputError, match="input_size"):
        model_summary(UNet(3, 1, (4,)), size)


def test_input_the_model_cannot_take():
    with pytest.raises(InputError, match=r"input_size: the model cannot take an input of shape \(2, 16, 16\)"):
        model_summary(UNet(3, 1, (4,)), (2, 16, 16))
    with pytest.raises(InputError, match="names: no layer 'downs.7'"):
        model_summary(UNet(3, 1, (4,)), (16, 16), names=["downs.7"])


def test_format_summary_lines_up_every_row():
    model = UNet(3, 1, (4, 8))
    rows = model_summary(model, (16, 24))
    text = format_summary(rows)
    lines = text.splitlines()
    assert len(lines) == len(rows) + 4  # header, rule, rows, rule, total
    assert lines[-1] == f"total parameters: {count_parameters(model):,}"
    assert len({len(line) for line in lines[:-1] if not line.startswith("-")}) == 1  # all rows the same width
    assert lines[2].split() == [
        "downs.0",
        "DoubleConv",
        "3",
        "x",
        "16",
        "x",
        "24",
        "4",
        "x",
        "16",
        "x",
        "24",
        str(double_conv_params(3, 4)),
    ]
    assert format_summary(rows, total=12345).endswith("total parameters: 12,345")


class SharedConv(nn.Module):
    """One convolution applied twice: two rows, its parameters counted once."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        return self.conv(self.conv(x))


def test_a_layer_called_twice_counts_its_parameters_once():
    model = SharedConv()
    rows = model_summary(model, (2, 5, 5), names=["conv"])
    assert [r["params"] for r in rows] == [2 * 2 * 9 + 2, 0]
    assert sum(r["params"] for r in rows) == count_parameters(model)
