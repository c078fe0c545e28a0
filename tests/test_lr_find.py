"""The learning-rate finder (``unet_lib.inspect.lr_find``): an exponential sweep on a copy of the model that leaves
the model, the random state and ``models/`` alone, its smoothing and suggestion recomputed by hand, an early stop
when the loss diverges, and the ``lr-find`` command."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from conftest import strict_json
from torch.utils.data import TensorDataset

from unet_lib.cli import main
from unet_lib.config import recipe
from unet_lib.inspect import lr_find as finder
from unet_lib.losses import make_loss
from unet_lib.model import UNet


@pytest.fixture
def pictures():
    """12 pictures whose mask is where the red channel is bright: learnable in a few steps."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(12, 3, 16, 24, generator=generator)
    return TensorDataset(images, (images[:, 0] > 0.5).long())


def test_the_sweep_leaves_the_model_and_the_random_state_as_they_were(pictures, one_thread):
    torch.manual_seed(0)
    model = UNet(3, 1, (4, 8))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = dataclasses.replace(recipe("quick"), batch_size=4)
    state = torch.get_rng_state()
    found = finder.lr_find(model, pictures, make_loss("bce_dice", 1), config)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    lrs = found["lrs"]
    assert lrs[0] == pytest.approx(1e-6) and len(lrs) == len(found["losses"]) <= 100
    ratios = np.diff(np.log(lrs))
    assert ratios == pytest.approx(np.full(len(ratios), math.log(10.0 / 1e-6) / 99))  # 1e-6 to 10 in 100 steps
    # The smoothing and the suggestion, by hand: a bias-corrected moving average, a tenth of the lowest point's rate.
    average, smoothed = 0.0, []
    for i, loss in enumerate(found["losses"]):
        average = 0.9 * average + 0.1 * loss
        smoothed.append(average / (1 - 0.9 ** (i + 1)))
    assert found["smoothed"] == pytest.approx(smoothed)
    lowest = int(np.argmin(smoothed))
    assert found["suggested_lr"] == pytest.approx(lrs[lowest] / 10) and found["lowest_loss_lr"] == lrs[lowest]
    slopes = np.diff(smoothed) / np.diff(np.log(lrs))
    settled = range(min(10, max(lowest - 1, 0)), max(lowest, 11))
    steepest = min((i for i in settled if i + 1 < len(lrs)), key=lambda i: slopes[i])
    assert found["steepest_lr"] == pytest.approx(lrs[steepest])
    assert found["config_lr"] == config.lr and found["rule"] == finder.RULE


def test_a_loss_that_diverges_stops_the_sweep_and_says_where(pictures, monkeypatch, one_thread):
    """Plain SGD-like Adam without bounds: rates up to 1e6 send the loss far above its lowest, or to infinity."""
    monkeypatch.setattr(finder, "END_LR", 1e8)
    torch.manual_seed(0)
    config = dataclasses.replace(recipe("quick"), batch_size=4, optimizer="adam", weight_decay=0.0)
    found = finder.lr_find(UNet(3, 1, (4, 8)), pictures, make_loss("bce", 1), config)
    assert len(found["lrs"]) < 100
    assert found["stopped"].startswith(("the smoothed loss passed 4 times its lowest at lr", "the loss was not finite"))


def test_lr_find_prints_a_suggestion_writes_a_figure_and_no_run(carvana_tree, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["lr-find", "carvana", "--data", str(carvana_tree), "--recipe", "quick", "--size", "32x48"]
    args += ["--features", "4,8", "--batch-size", "2", "--threads", "1", "--quiet", "--device", "cpu"]
    threads = torch.get_num_threads()
    try:
        capsys.readouterr()
        assert main([*args, "--json", "--out", "figs"]) == 0
        found = strict_json(capsys.readouterr().out)
        assert (tmp_path / "figs" / "lr_find.png").stat().st_size > 10_000
        assert not (tmp_path / "models").exists()  # no run written
        assert found["suggested_lr"] == pytest.approx(found["lowest_loss_lr"] / 10)
        assert main(args) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[-2].startswith(f"suggested --lr {found['suggested_lr']:.1e}: a tenth of the learning rate")
        capsys.readouterr()
        assert main([*args, "--out", "figs"]) == 2  # the figure is not replaced unasked
        assert "figs/lr_find.png exists; pass --overwrite" in capsys.readouterr().err
    finally:
        torch.set_num_threads(threads)
