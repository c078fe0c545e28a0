"""The benchmarks measure the right things: the fast data pipeline gives the original's pictures,
FLOPs are counted as a hand count says, and a quick ``make bench`` run prints its table.

No timing is asserted here: speed is judged by ``make bench``, side by side in one run.
"""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from benchmarks.data_pipeline import SIZE, TARGET_MASK_AGREEMENT, TARGET_PSNR, OriginalCarvana, original_pairs, psnr
from benchmarks.train_step import step_flops
from unet_lib.config import recipe
from unet_lib.data import CarvanaDataset
from unet_lib.data.sample import write_carvana_sample
from unet_lib.engine import build_model

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def full_size_car(tmp_path_factory) -> Path:
    """One sample car (16 views) at Kaggle's 1918x1280, where the 1/4-scale JPEG decode applies."""
    root = tmp_path_factory.mktemp("carvana")
    write_carvana_sample(root, num_cars=1, num_test_cars=0)
    return root


def test_fast_pipeline_gives_the_original_pictures(full_size_car):
    ours = CarvanaDataset(full_size_car, "train", size=SIZE, val_fraction=0.0)
    original = OriginalCarvana(original_pairs(ours))
    assert len(ours) == len(original) == 16
    for i in (0, 4, 8, 12):  # front, side, back, other side
        image, mask = ours[i]
        ref_image, ref_mask = original[i]
        assert image.shape == ref_image.shape == (3, *SIZE)
        assert psnr(image, ref_image.clamp(0, 1)) >= TARGET_PSNR
        assert (mask == (ref_mask[0] > 0.5)).float().mean().item() >= TARGET_MASK_AGREEMENT


def test_psnr_by_hand():
    reference = torch.zeros(3, 4, 4)
    assert psnr(reference + 0.1, reference) == pytest.approx(20.0)  # 10 log10(1 / 0.01)
    assert psnr(reference, reference) == float("inf")


def test_step_flops_match_a_hand_count():
    """Forward: 2 * MACs of every convolution; backward: twice that, less the first layer's input gradient."""
    config = dataclasses.replace(recipe("original-160x240", batch_size=2), features=(8, 16, 32, 64))
    model = build_model(config)
    forward = []

    def count(module, inputs, output):
        kh, kw = module.kernel_size
        if isinstance(module, nn.ConvTranspose2d):  # each input pixel feeds out_channels * kh * kw outputs
            forward.append(2 * inputs[0].numel() * module.out_channels * kh * kw // module.groups)
        else:  # each output pixel sums in_channels * kh * kw products
            forward.append(2 * output.numel() * module.in_channels * kh * kw // module.groups)

    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            module.register_forward_hook(count)
    model(torch.rand(2, 3, *config.image_size))
    # The images need no gradient, so the first convolution's backward computes only its weight gradient.
    assert step_flops(config, 2) == 3 * sum(forward) - forward[0]


def test_quick_bench_prints_its_table(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--threads", "1", "--data", str(tmp_path / "absent")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for figure in ("data 320x480, cold epoch", "train step", "epochs to Dice 0.97", "submission", "cuda"):
        assert figure in out
    assert "targets met" in out.splitlines()[-1]
    assert not (tmp_path / "absent").exists()  # a quick run writes its sample to a temporary folder
