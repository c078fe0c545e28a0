"""Checkpoints: atomic round trip, clear errors, and the original project's .h5 files."""

import os
import pickle

import pytest
import torch
from conftest import strict_json
from torch import nn

from unet_lib import InputError, UNet
from unet_lib.checkpoint import (
    load_checkpoint,
    model_from_checkpoint,
    new_run_dir,
    save_checkpoint,
    to_json,
    write_json,
)
from unet_lib.cli.original import load_original


class RefDoubleConv(nn.Module):
    """The original project's block, re-typed from its key layout: conv (no bias), BN, ReLU, conv (bias), BN, ReLU."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=True), nn.BatchNorm2d(cout), nn.ReLU(),
        )  # fmt: skip

    def forward(self, x):
        return self.conv(x)


class RefUNet(nn.Module):
    """The original project's U-Net, written independently of unet_lib.model from its description."""

    def __init__(self, classes, features=(64, 128, 256, 512)):
        super().__init__()
        self.downs = nn.ModuleList()
        cin = 3
        for f in features:
            self.downs.append(RefDoubleConv(cin, f))
            cin = f
        self.bottleneck = RefDoubleConv(features[-1], features[-1] * 2)
        self.upconvs = nn.ModuleList(nn.ConvTranspose2d(2 * f, f, 2, 2) for f in reversed(features))
        self.ups = nn.ModuleList(RefDoubleConv(2 * f, f) for f in reversed(features))
        self.final_conv = nn.Conv2d(features[0], classes, 1)

    def forward(self, x):
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
            x = nn.functional.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for i in range(len(self.ups)):
            x = self.upconvs[i](x)
            x = torch.cat((skips[-1 - i], x), dim=1)
            x = self.ups[i](x)
        return self.final_conv(x)


def randomize_batchnorm(model):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)


@pytest.mark.parametrize("classes", [1, 34])
def test_original_h5_files_give_identical_outputs(tmp_path, classes):
    torch.manual_seed(classes)
    reference = RefUNet(classes)
    randomize_batchnorm(reference)
    path = tmp_path / "model_1703926149.h5"
    torch.save(reference.state_dict(), path)  # exactly how the original project saved its models

    model = load_original(path)
    assert model.arch["num_classes"] == classes
    assert model.arch["features"] == [64, 128, 256, 512]
    images = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(model(images), reference.eval()(images), rtol=1e-5, atol=1e-5)


def test_round_trip_keeps_everything(tmp_path):
    model = UNet(features=(4, 8))
    state = {
        "model": model.state_dict(),
        "epoch": 3,
        "config": {"lr": 1e-3, "image_size": [32, 48]},
        "arch": model.arch,
    }
    path = save_checkpoint(state, tmp_path / "run" / "last.pt")
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary file left behind
    loaded, stored = model_from_checkpoint(path)
    assert stored["epoch"] == 3 and stored["config"]["image_size"] == [32, 48]
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


class FailsHalfway:
    def __reduce__(self):
        raise RuntimeError("disk full")  # the write breaks off after part of the file is out


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    path = save_checkpoint({"epoch": 1}, tmp_path / "last.pt")
    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint({"epoch": 2, "bad": FailsHalfway()}, path)
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(os.listdir(tmp_path)) == ["last.pt"]


def test_wrong_class_count_is_named(tmp_path):
    path = save_checkpoint({"model": UNet(num_classes=19, features=(4, 8)).state_dict()}, tmp_path / "c.pt")
    with pytest.raises(InputError, match="19 classes, expected 1"):
        model_from_checkpoint(path, num_classes=1)


def test_bad_files_give_one_line_errors(tmp_path):
    good = save_checkpoint({"model": UNet(features=(4, 8)).state_dict()}, tmp_path / "good.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    cases = {
        tmp_path / "missing.pt": "not found",
        truncated: "truncated or corrupt",
        text: "truncated or corrupt",
    }
    for path, message in cases.items():
        with pytest.raises(InputError, match=message) as info:
            load_checkpoint(path)
        assert "\n" not in str(info.value)
        assert str(path) in str(info.value)
    other = save_checkpoint({"weights": [1, 2]}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="no 'model' weights"):
        model_from_checkpoint(other)


class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_crafted_pickle_does_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"model": RunsCode()}, path, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    with pytest.raises(InputError, match="refused to load"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_new_run_dir_never_reuses_a_folder(tmp_path):
    first, second = new_run_dir(tmp_path), new_run_dir(tmp_path)
    assert (first.name, second.name) == ("run-001", "run-002")


def test_json_is_strict_undefined_scores_are_null(tmp_path):
    value = {"miou": float("nan"), "iou": [0.5, float("inf"), -float("inf")], "mat": torch.tensor([[1, 2]])}
    text = to_json(value)
    assert strict_json(text) == {"miou": None, "iou": [0.5, None, None], "mat": [[1, 2]]}
    write_json(value, tmp_path / "scores.json")
    assert strict_json((tmp_path / "scores.json").read_text()) == strict_json(text)
    assert [p.name for p in tmp_path.iterdir()] == ["scores.json"]  # no temporary file left behind
