"""``evaluate`` and ``predict`` end to end from the command line: Kaggle CSVs, Cityscapes result files, errors."""

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import (
    assert_between,
    bce_dice_by_hand,
    binary_scores_by_hand,
    gif_mask,
    logits_by_hand,
    make_cityscapes_tree,
    strict_json,
)
from PIL import Image

from unet_lib import UNet
from unet_lib.checkpoint import model_from_checkpoint, save_checkpoint
from unet_lib.cli import main
from unet_lib.cli.carvana import write_submission
from unet_lib.cli.original import checkpoint_config
from unet_lib.cli.pictures import Inference
from unet_lib.cli.sample import write_carvana_sample
from unet_lib.config import TrainConfig
from unet_lib.data import DATASETS, CarvanaDataset, CityscapesDataset, class_names
from unet_lib.data.rle import rle_decode
from unet_lib.runtime import Precision
from unet_lib.training import build_model


def save_model(path, config: TrainConfig, steps: int = 0):
    """A checkpoint in the format ``engine.fit`` writes; with ``steps``, of a model first fitted to the
    training pictures by that many plain Adam steps (all pictures in one batch), else untrained."""
    torch.manual_seed(0)
    model = build_model(config)
    if steps:
        train = DATASETS[config.dataset].from_config(config, "train")
        images, masks = (torch.stack(t) for t in zip(*(train[i] for i in range(len(train))), strict=True))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(steps):
            logits = model(images)
            if logits.shape[1] == 1:  # binary: BCE on the car masks
                loss = F.binary_cross_entropy_with_logits(logits, masks[:, None].float())
            else:  # classes: cross-entropy over the labelled pixels
                loss = F.cross_entropy(logits, masks.long(), ignore_index=255)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    state = {
        "model": model.state_dict(),
        "optimizer": torch.optim.AdamW(model.parameters()).state_dict(),
        "scheduler": None,
        "scaler": None,
        "epoch": 0,
        "config": config.to_dict(),
        "arch": dict(model.arch),
        "metrics": {},
        "history": [],
        "best": float("-inf"),
        "class_names": class_names(config),
    }
    return save_checkpoint(state, path)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, one_thread_for_the_module):
    """Carvana sample data at 240x160 and Cityscapes stripes at 128x64, and a checkpoint for each, fitted
    for a few steps so that their predictions are partly right: held-out Dice about 0.9, mIoU about 0.2."""
    root = tmp_path_factory.mktemp("cli_eval")
    write_carvana_sample(root / "carvana", num_cars=2, size=(240, 160), num_test_cars=1)
    make_cityscapes_tree(root / "cityscapes", size=(128, 64))
    carvana = TrainConfig(image_size=(32, 48), features=(4, 8), data_dir=str(root / "carvana"))
    cityscapes = TrainConfig(
        dataset="cityscapes", image_size=(32, 64), features=(4, 8), loss="ce", data_dir=str(root / "cityscapes")
    )
    save_model(root / "carvana.pt", carvana, steps=40)
    save_model(root / "cityscapes.pt", cityscapes, steps=60)
    torch.manual_seed(0)
    torch.save(UNet(3, 34, (4, 8)).state_dict(), root / "original_cityscapes.h5")  # as the original project saved
    return root


@pytest.fixture(scope="module")
def one_thread_for_the_module():
    """One CPU thread while the Carvana model is fitted: the same model on every run of this CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# The 19 evaluated classes in trainId order, and labelId -> trainId, re-typed from the official cityscapesScripts
# labels.py; every other labelId is not evaluated.
CLASS_NAMES = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
               "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"]  # fmt: skip
TRAIN_ID_OF_LABEL_ID = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
                        26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}  # fmt: skip


def official_scores_by_hand(logits: torch.Tensor, label_files: list, margin: float = 1e-4) -> dict:
    """The official pixel-level scores in plain numpy: each image's logits [C, h, w] upsampled (bilinear) to
    its label file's size, the argmax taken (C = 19: a trainId; C = 34: a labelId, mapped to its trainId)
    and compared over the evaluated pixels. Per class: TP, FN (any other prediction, not-evaluated ones
    included) and FP (predicted on another evaluated class's pixels); IoU = TP / (TP + FP + FN).

    Also ``unsure``: pixels whose two best logits lie within ``margin``, whose argmax another batch size
    may flip; ``tolerance`` bounds what they can change in each score.
    """
    to_train = np.full(256, 255)
    to_train[list(TRAIN_ID_OF_LABEL_ID)] = list(TRAIN_ID_OF_LABEL_ID.values())
    tp, fp, fn = np.zeros(19), np.zeros(19), np.zeros(19)
    correct = total = unsure = 0
    for logit, path in zip(logits, label_files, strict=True):
        truth = to_train[np.asarray(Image.open(path))]  # (H, W) trainIds, 255 not evaluated
        up = F.interpolate(logit[None], size=truth.shape, mode="bilinear", align_corners=False)[0].numpy()
        pred = up.argmax(0) if len(up) == 19 else to_train[up.argmax(0)]
        second, best = np.sort(up, axis=0)[-2:]
        evaluated = truth != 255
        unsure += (evaluated & (best - second < margin)).sum()
        correct, total = correct + (pred == truth)[evaluated].sum(), total + evaluated.sum()
        for c in range(19):
            tp[c] += ((pred == c) & (truth == c)).sum()
            fn[c] += ((pred != c) & (truth == c)).sum()
            fp[c] += ((pred == c) & (truth != c) & evaluated).sum()
    union = tp + fp + fn
    iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    # An unsure pixel moves a class's TP and union by at most one each: IoU by at most unsure / (union - unsure).
    slack = np.where(union > unsure, unsure / np.maximum(union - unsure, 1), np.inf)
    return {
        "pixel_accuracy": correct / total,
        "iou": dict(zip(CLASS_NAMES, iou.tolist(), strict=True)),
        "miou": np.nanmean(iou),
        "unsure": unsure / total,
        "slack": dict(zip(CLASS_NAMES, slack.tolist(), strict=True)),
    }


def argmax_by_hand(logits: torch.Tensor, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The argmax of the logits upsampled (bilinear) to ``size``, and where it is sure: the best two logits
    more than 1e-4 apart, so that no batch size can flip it (almost everywhere, or the check says little)."""
    up = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    best, second = up.topk(2, dim=1).values.unbind(1)
    sure = (best - second > 1e-4).numpy()
    assert sure.mean() > 0.999
    return up.argmax(1).numpy(), sure


def check_official(metrics: dict, by_hand: dict) -> None:
    """``evaluate``'s scores against the by-hand ones: absent classes are null (NaN in Python), the rest
    equal, give or take what the unsure pixels could change (nothing, when there are none)."""
    assert by_hand["unsure"] < 1e-3  # few pixels are that close to a tie, or the check would be loose
    assert metrics["pixel_accuracy"] == pytest.approx(by_hand["pixel_accuracy"], abs=by_hand["unsure"] + 1e-12)
    assert list(metrics["iou"]) == CLASS_NAMES
    for name, value in by_hand["iou"].items():
        reported, slack = metrics["iou"][name], by_hand["slack"][name]
        if slack == np.inf:  # so few pixels that the unsure ones could make or unmake the class
            continue
        assert (reported is None or math.isnan(reported)) == math.isnan(value), name
        if not math.isnan(value):
            assert reported == pytest.approx(value, abs=slack + 1e-12), name
    worst = max(by_hand["slack"].values())  # the mean moves no more than its most movable term
    assert metrics["miou"] == pytest.approx(by_hand["miou"], abs=worst + 1e-12)


def run(capsys, args, code=0):
    """Run the CLI in-process, check its exit code, return (stdout, stderr)."""
    capsys.readouterr()
    assert main(args) == code
    out, err = capsys.readouterr()
    if code == 2:
        assert err.startswith("error: ") and "Traceback" not in err
    return out, err


def test_submission_csv_from_the_command_line(workdir, capsys, tmp_path):
    out = tmp_path / "submission.csv"
    args = ["predict", "--checkpoint", str(workdir / "carvana.pt"), "--data", str(workdir / "carvana")]
    args += ["--submission", str(out), "--tta", "--threshold", "0.4", "--batch-size", "3", "--quiet"]
    stdout, _ = run(capsys, args)
    assert "wrote 16 rows" in stdout
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    paths = sorted((workdir / "carvana" / "test").glob("*.jpg"))
    assert rows[0] == ["img", "rle_mask"] and [r[0] for r in rows[1:]] == [p.name for p in paths]
    assert all(rle_decode(r[1], (160, 240)).shape == (160, 240) for r in rows[1:])

    model, _ = model_from_checkpoint(workdir / "carvana.pt")
    precision = Precision.choose(torch.device("cpu"))  # as the command runs it: bf16 + channels_last where native
    model = precision.prepare(model)
    how = Inference((32, 48), True, 3, precision=precision)
    same = write_submission(model, paths, tmp_path / "direct.csv", how, 0.4)
    assert same.read_text() == out.read_text()

    _, err = run(capsys, args, code=2)
    assert f"{out}: already exists" in err and "--overwrite" in err
    run(capsys, [*args, "--overwrite", "--workers", "2"])
    assert out.read_text() == same.read_text()  # decoding in worker processes changes nothing


def test_evaluate_carvana_reports_the_kaggle_score(workdir, capsys):
    checkpoint, data = workdir / "carvana.pt", workdir / "carvana"
    args = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(data), "--quiet", "--device", "cpu"]
    args += ["--no-amp"]  # fp32, as the scores by hand below
    metrics = strict_json(run(capsys, [*args, "--json"])[0])
    assert (metrics["images"], metrics["split"], metrics["checkpoint"]) == (16, "val", str(checkpoint))

    # By hand: the held-out car's 16 views at the network's 32x48, through the model with plain torch; the
    # logits upsampled (bilinear) to the photos' 160x240 and thresholded at 0.5 against the GIF masks.
    val = CarvanaDataset(data, "val", size=(32, 48))
    images, masks = (torch.stack(t) for t in zip(*(val[i] for i in range(len(val))), strict=True))
    full_masks = [gif_mask(data / "train_masks" / f"{image_id}_mask.gif") for image_id in val.ids]
    logits = logits_by_hand(checkpoint, images)  # (16, 1, 32, 48)
    tta = (logits + logits_by_hand(checkpoint, images.flip(-1)).flip(-1)) / 2  # mirrored, and back

    def full_size(x):
        return F.interpolate(x, size=(160, 240), mode="bilinear", align_corners=False)[:, 0]

    at_32x48 = binary_scores_by_hand(logits[:, 0], masks)
    assert_between(metrics, at_32x48)  # dice, pixel_accuracy, precision, recall, iou
    assert_between(metrics, binary_scores_by_hand(full_size(logits), full_masks), ["dice"], "_full_res")
    assert_between(metrics, binary_scores_by_hand(tta[:, 0], masks), ["dice"], "_tta")
    assert_between(metrics, binary_scores_by_hand(full_size(tta), full_masks), ["dice"], "_full_res_tta")
    low, high = at_32x48  # not a trivial model: some car found, some missed, some background called car
    assert 0 < low["recall"] and high["recall"] < 1 and high["precision"] < 1
    assert metrics["loss"] == pytest.approx(bce_dice_by_hand(logits[:, 0], masks), rel=1e-5)  # the config's loss

    table = run(capsys, args)[0].splitlines()
    assert table[0] == f"{checkpoint} on {data} (val, 16 images, network at 32x48):"
    assert table[4:] == [f"  {key:<22} {value:.4f}" for key, value in list(metrics.items())[3:]]
    assert [line.split()[0] for line in table[4:]] == [
        "loss", "dice", "pixel_accuracy", "precision", "recall", "iou", "dice_full_res", "dice_tta",
        "dice_full_res_tta",
    ]  # fmt: skip


def label_files(dataset: CityscapesDataset) -> list[Path]:
    """Each picture's gtFine labelIds PNG, found from its name as the Cityscapes layout says."""
    return [
        Path(str(p).replace("leftImg8bit", "gtFine", 1)).with_name(p.name.replace("leftImg8bit", "gtFine_labelIds"))
        for p in dataset.images
    ]


def test_cityscapes_result_files_and_scores(workdir, capsys, tmp_path):
    checkpoint, data = str(workdir / "cityscapes.pt"), str(workdir / "cityscapes")
    predict = ["predict", "--checkpoint", checkpoint, "--data", data, "--split", "val", "--format", "cityscapes"]
    predict += ["--device", "cpu", "--no-amp"]  # compared below with a CPU computation in fp32, as every score here
    stdout, _ = run(capsys, [*predict, "--out", str(tmp_path), "--quiet"])
    assert "CITYSCAPES_RESULTS" in stdout
    written = sorted(tmp_path.glob("*_leftImg8bit.png"))
    assert [p.name for p in written] == ["lindau_000000_000019_leftImg8bit.png", "lindau_000001_000019_leftImg8bit.png"]
    assert all(Image.open(p).size == (128, 64) and Image.open(p).mode == "L" for p in written)
    assert len(list((tmp_path / "color").glob("color_lindau_*.png"))) == 2

    val = CityscapesDataset(data, "val", size=(32, 64))
    images = torch.stack([val[i][0] for i in range(len(val))])
    logits = logits_by_hand(checkpoint, images)  # (2, 19, 32, 64) trainIds
    # The written labelIds are the argmax at the labels' 128x64, mapped to labelIds.
    train_ids, sure = argmax_by_hand(logits, (64, 128))
    label_of_train = {train: label for label, train in TRAIN_ID_OF_LABEL_ID.items()}
    written_ids = np.stack([np.asarray(Image.open(path)) for path in written])
    np.testing.assert_array_equal(written_ids[sure], np.vectorize(label_of_train.get)(train_ids)[sure])

    evaluate = ["evaluate", "--checkpoint", checkpoint, "--data", data, "--batch-size", "2", "--quiet"]
    evaluate += ["--device", "cpu", "--no-amp"]
    metrics = strict_json(run(capsys, [*evaluate, "--json"])[0])
    assert metrics["images"] == 2 and len(metrics["category_iou"]) == 7
    check_official(metrics, official_scores_by_hand(logits, label_files(val)))
    table = run(capsys, [*evaluate, "--tta"])[0].splitlines()
    tta = official_scores_by_hand((logits + logits_by_hand(checkpoint, images.flip(-1)).flip(-1)) / 2, label_files(val))
    assert tta["unsure"] < 1e-3
    assert table[1:3] == ["classes          IoU", "-" * 22] and (table[22], table[24]) == ("-" * 22, "")
    rows = dict(line.rsplit(maxsplit=1) for line in table[3:22])  # the class table, 3 decimals
    assert list(rows) == CLASS_NAMES
    for name, value in tta["iou"].items():
        assert rows[name] == ("nan" if math.isnan(value) else f"{value:.3f}"), name
    assert table[23] == f"Score Average    {tta['miou']:.3f}"
    assert table[25:27] == ["categories       IoU", "-" * 22]  # 7 categories: checked in test_cityscapes_eval
    assert table[-1] == f"pixel accuracy   {tta['pixel_accuracy']:.3f}"


def test_the_original_34_class_model(workdir, capsys, tmp_path):
    h5, data = str(workdir / "original_cityscapes.h5"), str(workdir / "cityscapes")
    state = {"arch": {"num_classes": 34, "features": [4, 8]}, "model": {}}
    config = checkpoint_config(state, h5)
    assert config.dataset == "cityscapes" and config.image_size == (160, 320)
    evaluate = ["evaluate", "--checkpoint", h5, "--data", data, "--size", "32x64", "--json", "--device", "cpu"]
    evaluate += ["--no-amp"]
    metrics = strict_json(run(capsys, evaluate)[0])
    val = CityscapesDataset(data, "val", size=(32, 64))
    images = torch.stack([val[i][0] for i in range(len(val))])
    logits = logits_by_hand(h5, images, dict(num_classes=34, features=(4, 8)))  # (2, 34, 32, 64) labelIds
    by_hand = official_scores_by_hand(logits, label_files(val))
    check_official(metrics, by_hand)
    assert "loss" not in metrics  # 34 labelIds against 19 trainIds: no loss to compute
    predict = ["predict", "--checkpoint", h5, "--data", data, "--split", "val", "--size", "32x64", "--quiet"]
    predict += ["--device", "cpu", "--no-amp"]
    run(capsys, [*predict, "--format", "cityscapes", "--out", str(tmp_path / "results")])
    written = np.stack([np.asarray(Image.open(p)) for p in sorted((tmp_path / "results").glob("*.png"))])
    label_ids, sure = argmax_by_hand(logits, (64, 128))
    np.testing.assert_array_equal(written[sure], label_ids[sure])  # the labelIds themselves
    image = next((workdir / "cityscapes" / "leftImg8bit" / "val" / "lindau").glob("*.png"))
    run(capsys, ["predict", "--checkpoint", h5, str(image), "--out", str(tmp_path / "files"), "--size", "32x64"])
    mask = np.asarray(Image.open(next((tmp_path / "files").glob("*_mask.png"))))
    assert set(np.unique(mask).tolist()) <= set(range(19)) | {255}  # labelIds mapped to trainIds


def test_mistakes_are_one_line_errors(workdir, capsys, tmp_path):
    carvana, cityscapes = str(workdir / "carvana.pt"), str(workdir / "cityscapes.pt")
    data = str(workdir / "carvana")
    cases = [
        (["predict", "--checkpoint", carvana], "INPUTS"),
        (["predict", "--checkpoint", carvana, "--data", data], "--submission"),
        (
            ["predict", "--checkpoint", carvana, "--data", data, "--submission", "x.csv", "--threshold", "1.5"],
            "threshold",
        ),
        (["predict", "--checkpoint", carvana, data, "--data", data, "--submission", "x.csv"], "not both"),
        (["predict", "--checkpoint", carvana, data, "--submission", "x.csv"], "--data"),
        (
            ["predict", "--checkpoint", cityscapes, "--data", str(workdir / "cityscapes"), "--submission", "x.csv"],
            "Cityscapes",
        ),
        (["predict", "--checkpoint", carvana, "--data", data, "--format", "cityscapes", "--out", "o"], "Carvana"),
        (["evaluate", "--checkpoint", carvana, "--data", data, "--split", "test"], "no masks"),
        (["evaluate", "--checkpoint", carvana, "--data", data, "--workers", "-1"], "--workers"),
    ]
    for args, expected in cases:
        _, err = run(capsys, args, code=2)
        assert expected in err, (args, err)
    assert not (tmp_path / "x.csv").exists()
