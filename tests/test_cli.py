"""The command line end to end on small sample data: sample-data, train, evaluate, predict, errors."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import strict_json
from PIL import Image

from unet_lib.checkpoint import save_checkpoint
from unet_lib.cli import main
from unet_lib.model import UNet


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Sample data (3 cars at 240x160) and one trained run, shared by the tests below."""
    root = tmp_path_factory.mktemp("cli")
    assert main(["sample-data", "carvana", str(root / "carvana"), "--cars", "3", "--size", "240x160"]) == 0
    args = ["train", "carvana", "--data", str(root / "carvana"), "--recipe", "demo", "--size", "32x48"]
    args += ["--features", "4,8", "--epochs", "2", "--out", str(root / "run"), "--quiet", "--threads", "1"]
    assert main(args) == 0
    return root


def error_of(capsys, args):
    """Run the CLI, expect exit code 2, return its stderr (which must be an error, not a traceback)."""
    capsys.readouterr()  # drop what earlier commands printed
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    return err


def test_sample_data_layout(workdir):
    carvana = workdir / "carvana"
    assert len(list((carvana / "train").glob("*.jpg"))) == 3 * 16
    assert len(list((carvana / "train_masks").glob("*_mask.gif"))) == 3 * 16
    assert (carvana / "train_masks.csv").read_text().startswith("img,rle_mask\n")
    assert Image.open(next((carvana / "train").iterdir())).size == (240, 160)


def test_train_writes_a_run(workdir):
    assert {p.name for p in (workdir / "run").iterdir()} >= {"best.pt", "last.pt", "history.json"}
    history = strict_json((workdir / "run" / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]


def test_evaluate_json(workdir, capsys):
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(workdir / "run" / "best.pt"),
                "--data",
                str(workdir / "carvana"),
                "--json",
                "--quiet",
            ]
        )
        == 0
    )
    metrics = strict_json(capsys.readouterr().out)
    assert metrics["images"] == 16  # one held-out car, 16 views
    assert 0 <= metrics["dice"] <= 1 and 0 <= metrics["pixel_accuracy"] <= 1


def test_predict_writes_masks_at_the_input_resolution(workdir, capsys):
    out = workdir / "predictions"
    test_dir = workdir / "carvana" / "test"
    assert main(["predict", "--checkpoint", str(workdir / "run" / "best.pt"), str(test_dir), "--out", str(out)]) == 0
    masks = sorted(out.glob("*_mask.png"))
    assert len(masks) == len(list(test_dir.glob("*.jpg"))) > 0
    mask = np.asarray(Image.open(masks[0]))
    assert mask.shape == (160, 240) and set(np.unique(mask).tolist()) <= {0, 255}
    assert len(list(out.glob("*_overlay.jpg"))) == len(masks)
    err = error_of(
        capsys, ["predict", "--checkpoint", str(workdir / "run" / "best.pt"), str(test_dir), "--out", str(out)]
    )
    assert "already exists" in err and "--overwrite" in err


def test_user_mistakes_are_one_line_errors(workdir, tmp_path, capsys):
    data = str(workdir / "carvana")
    err = error_of(capsys, ["sample-data", "carvana", data, "--cars", "1", "--size", "240x160"])
    assert data in err
    err = error_of(capsys, ["train", "carvana", "--data", str(tmp_path / "missing"), "--quiet"])
    assert err.splitlines()[0].startswith(f"error: {tmp_path / 'missing'}: folder not found")
    err = error_of(
        capsys,
        [
            "train",
            "carvana",
            "--data",
            data,
            "--out",
            str(workdir / "run"),
            "--size",
            "32x48",
            "--features",
            "4,8",
            "--quiet",
        ],
    )
    assert "last.pt: a checkpoint is already there" in err
    err = error_of(capsys, ["train", "carvana", "--data", data, "--size", "161x243", "--quiet"])
    assert "not divisible by 16" in err
    cityscapes_model = save_checkpoint({"model": UNet(num_classes=19, features=(4, 8)).state_dict()}, tmp_path / "c.pt")
    err = error_of(capsys, ["evaluate", "--checkpoint", str(cityscapes_model), "--data", data])
    assert "c.pt: a 19-class cityscapes model, but" in err and "holds carvana data" in err
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((workdir / "run" / "best.pt").read_bytes()[:1000])
    err = error_of(capsys, ["evaluate", "--checkpoint", str(truncated), "--data", data])
    assert "truncated.pt: not a readable checkpoint" in err
    err = error_of(capsys, ["evaluate", "--checkpoint", str(tmp_path / "none.pt"), "--data", data])
    assert "none.pt: checkpoint file not found" in err


def test_resume_continues_a_run(workdir, capsys):
    history = strict_json((workdir / "run" / "history.json").read_text())
    assert main(["train", "carvana", "--resume", "--out", str(workdir / "run"), "--quiet", "--threads", "1"]) == 0
    assert strict_json((workdir / "run" / "history.json").read_text()) == history  # already finished: nothing to do
    assert "best val_dice" in capsys.readouterr().out


def test_module_entry_point_and_help():
    done = subprocess.run([sys.executable, "-m", "unet_lib", "--help"], capture_output=True, text=True, check=True)
    assert "sample-data" in done.stdout and "predict" in done.stdout
    done = subprocess.run(
        [sys.executable, "-m", "unet_lib", "train", "carvana", "--lr", "fast"], capture_output=True, text=True
    )
    assert done.returncode == 2 and "--lr" in done.stderr and "Traceback" not in done.stderr


def test_train_options_override_the_recipe():
    from unet_lib.cli import build_parser
    from unet_lib.cli.commands import train_config

    def config(*options):
        return train_config(build_parser().parse_args(["train", "carvana", *options]))

    default = config()
    assert (default.amp, default.channels_last, default.optimizer) == (True, False, "adamw")  # the recommended recipe
    chosen = config("--no-amp", "--channels-last", "--recipe", "original-160x240", "--lr", "3e-4", "--size", "64x96")
    assert (chosen.amp, chosen.channels_last, chosen.optimizer) == (False, True, "adam")
    assert (chosen.lr, chosen.image_size) == (3e-4, (64, 96))
