"""``evaluate`` and ``predict`` end to end from the command line: Kaggle CSVs, Cityscapes result files, errors."""

import csv
import math

import numpy as np
import pytest
import torch
from conftest import make_cityscapes_tree, strict_json
from PIL import Image

from unet_lib import UNet
from unet_lib.checkpoint import checkpoint_config, model_from_checkpoint, save_checkpoint
from unet_lib.cli import main
from unet_lib.cli.carvana import write_submission
from unet_lib.cli.pictures import Inference
from unet_lib.cli.sample import write_carvana_sample
from unet_lib.config import TrainConfig
from unet_lib.data import CityscapesDataset, class_names
from unet_lib.data.cityscapes import OfficialScores
from unet_lib.data.rle import rle_decode
from unet_lib.evaluation import evaluate as evaluate_model
from unet_lib.evaluation import with_full_masks
from unet_lib.training import build_model


def save_untrained(path, config: TrainConfig):
    """A checkpoint in the format ``engine.fit`` writes, of a model that has not been trained."""
    torch.manual_seed(0)
    model = build_model(config)
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
def workdir(tmp_path_factory):
    """Carvana sample data at 240x160, Cityscapes stripes at 128x64, and an untrained checkpoint for each."""
    root = tmp_path_factory.mktemp("cli_eval")
    write_carvana_sample(root / "carvana", num_cars=2, size=(240, 160), num_test_cars=1)
    make_cityscapes_tree(root / "cityscapes", size=(128, 64))
    carvana = TrainConfig(image_size=(32, 48), features=(4, 8), data_dir=str(root / "carvana"))
    cityscapes = TrainConfig(dataset="cityscapes", image_size=(32, 64), features=(4, 8), loss="ce")
    save_untrained(root / "carvana.pt", carvana)
    save_untrained(root / "cityscapes.pt", cityscapes)
    torch.manual_seed(0)
    torch.save(UNet(3, 34, (4, 8)).state_dict(), root / "original_cityscapes.h5")  # as the original project saved
    return root


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
    same = write_submission(model, paths, tmp_path / "direct.csv", Inference((32, 48), True, 3), 0.4)
    assert same.read_text() == out.read_text()

    _, err = run(capsys, args, code=2)
    assert f"{out}: already exists" in err and "--overwrite" in err
    run(capsys, [*args, "--overwrite", "--workers", "2"])
    assert out.read_text() == same.read_text()  # decoding in worker processes changes nothing


def test_evaluate_carvana_reports_the_kaggle_score(workdir, capsys):
    args = ["evaluate", "--checkpoint", str(workdir / "carvana.pt"), "--data", str(workdir / "carvana"), "--quiet"]
    metrics = strict_json(run(capsys, [*args, "--json"])[0])
    assert metrics["images"] == 16 and metrics["split"] == "val"
    for key in ("dice", "dice_full_res", "dice_tta", "dice_full_res_tta", "pixel_accuracy", "precision", "recall"):
        assert 0 <= metrics[key] <= 1 or np.isnan(metrics[key]), key
    table = run(capsys, args)[0]
    assert "dice_full_res_tta" in table and "network at 32x48" in table


def test_cityscapes_result_files_and_scores(workdir, capsys, tmp_path):
    checkpoint, data = str(workdir / "cityscapes.pt"), str(workdir / "cityscapes")
    predict = ["predict", "--checkpoint", checkpoint, "--data", data, "--split", "val", "--format", "cityscapes"]
    stdout, _ = run(capsys, [*predict, "--out", str(tmp_path), "--quiet"])
    assert "CITYSCAPES_RESULTS" in stdout
    written = sorted(tmp_path.glob("*_leftImg8bit.png"))
    assert [p.name for p in written] == ["lindau_000000_000019_leftImg8bit.png", "lindau_000001_000019_leftImg8bit.png"]
    assert all(Image.open(p).size == (128, 64) and Image.open(p).mode == "L" for p in written)
    assert len(list((tmp_path / "color").glob("color_lindau_*.png"))) == 2

    evaluate = ["evaluate", "--checkpoint", checkpoint, "--data", data, "--batch-size", "2", "--quiet"]
    metrics = strict_json(run(capsys, [*evaluate, "--json"])[0])
    model, _ = model_from_checkpoint(checkpoint)
    direct = evaluate_model(model, with_full_masks(CityscapesDataset(data, "val", size=(32, 64))), [OfficialScores()])
    assert metrics["images"] == 2 and len(metrics["iou"]) == 19 and len(metrics["category_iou"]) == 7
    assert metrics["iou"] == {k: None if math.isnan(v) else v for k, v in direct["iou"].items()}  # absent: null
    assert metrics["miou"] == direct["miou"] and metrics["pixel_accuracy"] == direct["pixel_accuracy"]
    table = run(capsys, [*evaluate, "--tta"])[0]
    assert "Score Average" in table and "vehicle" in table and "sidewalk" in table


def test_the_original_34_class_model(workdir, capsys, tmp_path):
    h5, data = str(workdir / "original_cityscapes.h5"), str(workdir / "cityscapes")
    state = {"arch": {"num_classes": 34, "features": [4, 8]}, "model": {}}
    config = checkpoint_config(state, h5)
    assert config.dataset == "cityscapes" and config.image_size == (160, 320)
    metrics = strict_json(run(capsys, ["evaluate", "--checkpoint", h5, "--data", data, "--size", "32x64", "--json"])[0])
    assert 0 <= metrics["pixel_accuracy"] <= 1 and len(metrics["iou"]) == 19
    predict = ["predict", "--checkpoint", h5, "--data", data, "--split", "val", "--size", "32x64", "--quiet"]
    run(capsys, [*predict, "--format", "cityscapes", "--out", str(tmp_path / "results")])
    assert np.asarray(Image.open(next((tmp_path / "results").glob("*.png")))).max() <= 33
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
