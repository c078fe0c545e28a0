"""Kaggle Carvana: RLE, flip TTA, the submission CSV and the full-resolution score, against references written here."""

import copy
import csv

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import rle_by_hand
from PIL import Image
from torch import nn

from unet_lib import InputError, UNet
from unet_lib.cli.carvana import rle_encode, write_submission
from unet_lib.cli.full_res import binary_metrics, with_full_masks
from unet_lib.cli.pictures import Inference
from unet_lib.cli.sample import write_carvana_sample
from unet_lib.data import CarvanaDataset
from unet_lib.data.io import read_image
from unet_lib.data.rle import rle_decode
from unet_lib.data.transforms import resize_pair
from unet_lib.evaluation import Scores, evaluate, predict_logits
from unet_lib.losses import make_loss

SIZE = (32, 48)  # (H, W) the tiny networks see
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def carvana(tmp_path_factory):
    """Generated Carvana data at 240x160: 2 training cars (one becomes validation) and 1 test car."""
    root = tmp_path_factory.mktemp("submission") / "carvana"
    write_carvana_sample(root, num_cars=2, size=(240, 160), num_test_cars=1)
    return root


def tiny_model(seed: int = 0) -> UNet:
    """A random one-class U-Net, its bias set so that about half of a random picture is "car"."""
    torch.manual_seed(seed)
    model = UNet(3, 1, (4, 8)).eval()
    with torch.no_grad():
        model.final_conv.bias -= model(torch.rand(1, 3, *SIZE)).median()
    return model


def mirrored(model: nn.Module, symmetric: bool) -> nn.Module:
    """A copy whose convolution kernels are flipped left-right, or made left-right symmetric."""
    model = copy.deepcopy(model)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
                flipped = module.weight.flip(-1)
                module.weight.copy_((module.weight + flipped) / 2 if symmetric else flipped)
    return model


def network_input(path) -> torch.Tensor:
    """A file as the network sees it: decoded at reduced scale, resized, scaled to [0, 1]."""
    small, _ = resize_pair(read_image(path, min_size=SIZE), None, SIZE)
    return small.float() / 255


def test_rle_of_a_hand_made_mask():
    mask = np.array([[0, 1, 1], [1, 0, 1]], dtype=np.uint8)
    # Row-major pixels 0 1 1 1 0 1: a run of 3 from pixel 2, a run of 1 at pixel 6 (1-indexed).
    assert rle_encode(mask) == "2 3 6 1"
    np.testing.assert_array_equal(rle_decode("2 3 6 1", (2, 3)), mask)
    assert rle_encode(np.zeros((2, 3), dtype=bool)) == "" and rle_decode("", (2, 3)).sum() == 0
    assert rle_encode(np.ones((2, 3), dtype=bool)) == "1 6"


def test_rle_round_trips_the_generated_gif_masks(carvana):
    with open(carvana / "train_masks.csv", newline="") as f:
        rows = dict(csv.reader(f))
    gifs = sorted((carvana / "train_masks").glob("*_mask.gif"))
    assert len(gifs) == 32
    for gif in gifs:
        mask = np.asarray(Image.open(gif))  # palette indices 0/1
        assert mask.shape == (160, 240) and 0 < mask.mean() < 1
        rle = rle_encode(mask)
        assert rle == rle_by_hand(mask) == rows[gif.name.replace("_mask.gif", ".jpg")]
        np.testing.assert_array_equal(rle_decode(rle, mask.shape), mask)


def test_rle_round_trips_a_full_resolution_mask():
    mask = np.random.default_rng(0).random((1280, 1918)) < 0.5
    np.testing.assert_array_equal(rle_decode(rle_encode(mask), mask.shape), mask)


def test_tta_of_a_symmetric_model_on_a_symmetric_input_changes_nothing():
    model = mirrored(tiny_model(), symmetric=True)
    half = torch.rand(2, 3, *SIZE)
    images = (half + half.flip(-1)) / 2  # left-right symmetric
    plain = predict_logits(model, images)
    torch.testing.assert_close(predict_logits(model, images, tta=True), plain, rtol=0, atol=1e-5)
    torch.testing.assert_close(plain, plain.flip(-1), rtol=0, atol=1e-5)


def test_tta_averages_the_model_and_its_mirror_image():
    model = tiny_model(seed=1)
    images = torch.rand(2, 3, *SIZE)
    with torch.no_grad():
        expected = (model(images) + mirrored(model, symmetric=False)(images)) / 2
    tta = predict_logits(model, images, tta=True)
    torch.testing.assert_close(tta, expected, rtol=0, atol=1e-5)
    assert (tta - predict_logits(model, images)).abs().max() > 1e-3  # the model is not symmetric


def read_submission(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], dict(rows[1:])


@pytest.mark.parametrize("tta", [False, True])
def test_submission_rows_are_the_full_resolution_thresholded_predictions(carvana, tmp_path, tta):
    model = tiny_model(seed=2)
    paths = sorted((carvana / "test").glob("*.jpg"))
    out = write_submission(model, paths, tmp_path / "submission.csv", Inference(SIZE, tta=tta, batch_size=5))
    header, rows = read_submission(out)
    assert header == ["img", "rle_mask"]
    assert list(rows) == [p.name for p in paths] and len(paths) == 16
    assert not list(tmp_path.glob(".*.tmp"))
    images = torch.stack([network_input(p) for p in paths])
    with torch.no_grad():
        logits = model(images)
        if tta:
            logits = (logits + model(images.flip(-1)).flip(-1)) / 2
        logits = F.interpolate(logits, size=(160, 240), mode="bilinear", align_corners=False)[:, 0]
    expected = torch.sigmoid(logits) > 0.5
    for k, path in enumerate(paths):
        mask = rle_decode(rows[path.name], (160, 240)).astype(bool)
        differ = mask != expected[k].numpy()
        # Batches of 5 against one batch of 16 may differ in the last bit: only on the threshold itself.
        assert (logits[k].abs().numpy()[differ] < 1e-4).all()
    assert 0.05 < expected.float().mean() < 0.95  # a mask with both classes, not a trivial one


def test_submission_threshold_and_overwrite(carvana, tmp_path):
    model = tiny_model(seed=2)
    paths = sorted((carvana / "test").glob("*.jpg"))[:3]
    low = read_submission(write_submission(model, paths, tmp_path / "low.csv", Inference(SIZE), 0.3))[1]
    out = tmp_path / "half.csv"
    half = read_submission(write_submission(model, paths, out, Inference(SIZE), 0.5))[1]
    for name in half:
        more, fewer = rle_decode(low[name], (160, 240)), rle_decode(half[name], (160, 240))
        assert (more >= fewer).all() and more.sum() > fewer.sum()
    with pytest.raises(InputError, match="half.csv: already exists"):
        write_submission(model, paths, out, Inference(SIZE))
    write_submission(model, paths[:1], out, Inference(SIZE), overwrite=True)
    assert len(read_submission(out)[1]) == 1
    with pytest.raises(InputError, match="threshold"):
        write_submission(model, paths, tmp_path / "bad.csv", Inference(SIZE), 1.0)


def dice(pred: np.ndarray, target: np.ndarray) -> float:
    total = pred.sum() + target.sum()
    return 1.0 if total == 0 else 2 * np.logical_and(pred, target).sum() / total


def test_full_resolution_score_equals_an_independent_computation(carvana):
    model = tiny_model(seed=3)
    dataset = CarvanaDataset(carvana, "val", size=SIZE)
    scores = evaluate(model, with_full_masks(dataset, batch_size=16), binary_metrics(), make_loss("bce", 1))
    loader = torch.utils.data.DataLoader(dataset, batch_size=16)  # no full-size masks: training's validation
    reference = evaluate(model, loader, [Scores(1)], make_loss("bce", 1))
    for key in ("loss", "dice", "pixel_accuracy", "precision", "recall", "iou"):
        assert scores[key] == pytest.approx(reference[key], abs=1e-6), key

    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    with torch.no_grad():
        plain = model(images)
        variants = {"": plain, "_tta": (plain + model(images.flip(-1)).flip(-1)) / 2}
    for suffix, logits in variants.items():
        masks = [np.asarray(Image.open(carvana / "train_masks" / f"{i}_mask.gif")) for i in dataset.ids]
        big = F.interpolate(logits, size=(160, 240), mode="bilinear", align_corners=False)[:, 0]
        full = [dice(torch.sigmoid(big[k]).numpy() > 0.5, m == 1) for k, m in enumerate(masks)]
        small = [dice(torch.sigmoid(logits[k, 0]).numpy() > 0.5, dataset[k][1].numpy() == 1) for k in range(16)]
        assert scores[f"dice_full_res{suffix}"] == pytest.approx(np.mean(full), abs=1e-4)
        assert scores[f"dice{suffix}"] == pytest.approx(np.mean(small), abs=1e-4)
    assert scores["dice_full_res"] != scores["dice"] and scores["dice_tta"] != scores["dice"]
