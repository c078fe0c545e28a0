"""The command line end to end on small sample data: sample-data, train, evaluate, predict, errors."""

import contextlib
import io
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import (
    assert_between,
    band_by_hand,
    bce_dice_by_hand,
    binary_scores_by_hand,
    gif_mask,
    logits_by_hand,
    strict_json,
)
from PIL import Image

from unet_lib import runtime
from unet_lib.checkpoint import save_checkpoint
from unet_lib.cli import main
from unet_lib.data import CarvanaDataset
from unet_lib.metrics import dice_per_image
from unet_lib.model import UNet


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Sample data (3 cars at 240x160) and one trained run, shared by the tests below; what ``train`` printed
    is kept in ``train-output.txt``. Batch 2 gives the 2 epochs enough steps to learn something: the model
    marks some pixels car and some not, so its scores are neither trivial nor all equal."""
    root = tmp_path_factory.mktemp("cli")
    assert main(["sample-data", "carvana", str(root / "carvana"), "--cars", "3", "--size", "240x160"]) == 0
    args = ["train", "carvana", "--data", str(root / "carvana"), "--recipe", "demo", "--size", "32x48"]
    args += ["--features", "4,8", "--epochs", "2", "--batch-size", "2", "--out", str(root / "run"), "--quiet"]
    args += ["--device", "cpu", "--no-amp"]  # the scores below are checked against a CPU computation in fp32
    threads = torch.get_num_threads()
    try:
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            assert main([*args, "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(threads)  # --threads 1 set it for the whole process
    (root / "train-output.txt").write_text(printed.getvalue())
    return root


@pytest.fixture(scope="module")
def held_out(workdir):
    """The held-out car by hand: its 16 views at the network's 32x48 (unet_lib's resize: its data tests
    compare it with the original's), their masks, and the masks at the photos' 240x160 read straight from
    the GIFs. Also the logits of ``best.pt`` on them, computed with plain torch."""
    val = CarvanaDataset(workdir / "carvana", "val", size=(32, 48))
    images, masks = (torch.stack(t) for t in zip(*(val[i] for i in range(len(val))), strict=True))
    full_masks = [gif_mask(workdir / "carvana" / "train_masks" / f"{image_id}_mask.gif") for image_id in val.ids]
    logits = logits_by_hand(workdir / "run" / "best.pt", images)  # (16, 1, 32, 48)
    return images, masks, full_masks, logits


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


EPOCH_LINE = re.compile(
    r"epoch (\d+)/2  train loss (\d\.\d{4})  val loss (\d\.\d{4})  val dice (\d\.\d{4})"
    r"  val pixel accuracy (\d\.\d{4})  \d+ s"
)


def test_train_writes_a_run_and_prints_one_line_per_epoch(workdir, held_out):
    run = workdir / "run"
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "history.json", "last.pt"]
    history = strict_json((run / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    best = max(history, key=lambda row: row["val_dice"])
    lines = (workdir / "train-output.txt").read_text().splitlines()
    assert lines[:2] == [f"training on cpu -> {run}", "cpu: fp32 (amp off)"]
    # 12 training views in batches of 2: the first epoch's 5 steps after its first are timed, then the run told.
    assert re.fullmatch(
        r"time: \d+\.\d\d s a step: about \d+(\.\d)? s an epoch, \d+(\.\d)? s for 2 epochs", lines[2]
    ), lines[2]
    best_line = (
        f"best val_dice {best['val_dice']:.4f} at epoch {best['epoch']}; checkpoints in {run} (best.pt, last.pt)"
    )
    assert lines[-1] == best_line
    assert len(lines) == 6  # no doctor line: after its first epoch the model called every pixel car, but not later
    for line, row in zip(lines[3:5], history, strict=True):
        found = EPOCH_LINE.fullmatch(line)
        assert found, line
        printed = [float(v) for v in found.groups()[1:]]
        assert int(found[1]) == row["epoch"]
        keys = ("train_loss", "val_loss", "val_dice", "val_pixel_accuracy")
        assert printed == pytest.approx([row[k] for k in keys], abs=5e-5), line  # printed to 4 decimals
    saved = {name: torch.load(run / name, weights_only=True) for name in ("best.pt", "last.pt")}
    assert (saved["best.pt"]["epoch"], saved["last.pt"]["epoch"]) == (best["epoch"], 2)
    # The best epoch's validation scores, recomputed by hand from best.pt on the held-out car.
    _, masks, _, logits = held_out
    assert_between({k.removeprefix("val_"): v for k, v in best.items()}, binary_scores_by_hand(logits[:, 0], masks))


def test_evaluate_prints_the_scores_computed_by_hand(workdir, held_out, capsys):
    checkpoint, data = workdir / "run" / "best.pt", workdir / "carvana"
    args = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(data), "--quiet", "--device", "cpu", "--no-amp"]
    capsys.readouterr()
    assert main([*args, "--json"]) == 0
    metrics = strict_json(capsys.readouterr().out)
    assert list(metrics) == [
        "checkpoint", "split", "images", "loss", "dice", "pixel_accuracy", "precision", "recall", "iou",
        "dice_full_res", "dice_tta", "dice_full_res_tta",
    ]  # fmt: skip
    assert (metrics["checkpoint"], metrics["split"], metrics["images"]) == (str(checkpoint), "val", 16)  # 1 car
    images, masks, full_masks, logits = held_out
    mirrored = logits_by_hand(checkpoint, images.flip(-1)).flip(-1)
    tta = (logits + mirrored) / 2  # flip test-time augmentation: the mean of the two logits

    def full_size(x):  # the logits upsampled to the photos' 160x240 before the threshold, as Kaggle scores
        return F.interpolate(x, size=(160, 240), mode="bilinear", align_corners=False)[:, 0]

    at_32x48 = binary_scores_by_hand(logits[:, 0], masks)
    assert_between(metrics, at_32x48)
    assert_between(metrics, binary_scores_by_hand(full_size(logits), full_masks), ["dice"], "_full_res")
    assert_between(metrics, binary_scores_by_hand(tta[:, 0], masks), ["dice"], "_tta")
    assert_between(metrics, binary_scores_by_hand(full_size(tta), full_masks), ["dice"], "_full_res_tta")
    low, high = at_32x48  # not a trivial model: some car found, some missed, some background called car
    assert 0 < low["recall"] and high["recall"] < 1 and high["precision"] < 1
    assert metrics["loss"] == pytest.approx(bce_dice_by_hand(logits[:, 0], masks), rel=1e-5)  # the demo recipe's loss

    assert main(args) == 0  # the same scores as a table, 4 decimals
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{checkpoint} on {data} (val, 16 images, network at 32x48):"
    assert lines[1:4] == [
        f"  checkpoint             {checkpoint}",
        "  split                  val",
        "  images                 16",
    ]
    assert lines[4:] == [f"  {key:<22} {value:.4f}" for key, value in list(metrics.items())[3:]]


def test_analyze_lists_every_picture_worst_first_with_its_dice_loss_and_band_by_hand(
    workdir, held_out, tmp_path, capsys
):
    checkpoint, data = workdir / "run" / "best.pt", workdir / "carvana"
    args = ["analyze", "--checkpoint", str(checkpoint), "--data", str(data), "--quiet", "--device", "cpu", "--no-amp"]
    capsys.readouterr()
    assert main([*args, "--json", "--out", str(tmp_path / "atlas")]) == 0
    result = strict_json(capsys.readouterr().out)
    _, masks, _, logits = held_out
    preds = (logits[:, 0] > 0).long()  # sigmoid > 0.5
    dice = dice_per_image(preds, masks)
    ids = CarvanaDataset(data, "val", size=(32, 48)).ids
    pictures = result["pictures"]
    assert (result["images"], len(pictures), result["score_name"]) == (16, 16, "dice")
    assert [p["score"] for p in pictures] == sorted(p["score"] for p in pictures)  # worst first
    wrong, in_band = 0, 0
    for p in pictures:
        i = p["index"]
        assert p["id"] == ids[i]
        assert p["score"] == pytest.approx(dice[i].item(), abs=1e-6)  # dice_per_image is float32
        assert p["loss"] == pytest.approx(bce_dice_by_hand(logits[i : i + 1], masks[i : i + 1]), rel=1e-4)
        errors = (preds[i] != masks[i]).numpy()
        assert p["wrong"] == errors.sum()
        wrong += errors.sum()
        in_band += (errors & band_by_hand(masks[i].numpy(), 3)).sum()
    assert (result["boundary"]["wrong"], result["boundary"]["wrong_in_band"]) == (wrong, in_band)
    assert (tmp_path / "atlas" / "worst.png").stat().st_size > 10_000
    err = error_of(capsys, [*args, "--out", str(tmp_path / "atlas")])  # the figure is not replaced unasked
    assert (
        err
        == f"error: --out: {tmp_path / 'atlas' / 'worst.png'} exists; pass --overwrite to replace it, or choose another --out\n"
    )
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{checkpoint} on {data} (val, 16 pictures), Dice per picture, worst first:"
    assert lines[2].split()[:3] == ["1", pictures[0]["id"], f"{pictures[0]['score']:.4f}"]


def test_compare_gives_the_paired_difference_of_two_checkpoints_by_hand(workdir, held_out, tmp_path, capsys):
    """B is A with its final bias lowered by 2: fewer pixels called car. Every number is checked against Dice
    computed by hand from both models' logits."""
    a = workdir / "run" / "best.pt"
    state = torch.load(a, weights_only=True)
    state["model"]["final_conv.bias"] = state["model"]["final_conv.bias"] - 2
    b = tmp_path / "lower.pt"
    save_checkpoint(state, b)
    images, masks, _, logits = held_out
    dice = [dice_per_image((x[:, 0] > 0).long(), masks).double() for x in (logits, logits_by_hand(b, images))]
    diff = dice[1] - dice[0]
    args = ["compare", "--checkpoint", str(a), "--checkpoint", str(b), "--data", str(workdir / "carvana")]
    args += ["--quiet", "--device", "cpu", "--no-amp"]
    capsys.readouterr()
    assert main([*args, "--json", "--out", str(tmp_path / "cmp")]) == 0
    result = strict_json(capsys.readouterr().out)
    assert result["images"] == 16 and result["score_name"] == "dice"
    assert result["mean_difference"] == pytest.approx(diff.mean().item(), abs=1e-6)
    assert [p["difference"] for p in result["pictures"]] == pytest.approx(diff.tolist(), abs=1e-6)
    assert (result["b_wins"], result["a_wins"]) == ((diff > 1e-6).sum().item(), (diff < -1e-6).sum().item())
    low, high = result["interval"]
    assert low <= result["mean_difference"] <= high and result["interval_contains_zero"] == (low <= 0 <= high)
    assert (tmp_path / "cmp" / "disagreement.png").stat().st_size > 10_000
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [f"A = {a}", f"B = {b}"]
    assert f"B - A {result['mean_difference']:+.4f}, 95 % bootstrap interval [{low:+.4f}, {high:+.4f}]" in lines[3]
    err = error_of(capsys, ["compare", "--checkpoint", str(a), "--data", str(workdir / "carvana")])
    assert err == "error: --checkpoint: expected two, A then B; got 1\n"


def test_doctor_is_silent_on_the_healthy_run_and_names_a_folder_that_is_no_run(workdir, tmp_path, capsys):
    """The run trained above called every pixel car after its first epoch, but not at its end: nothing to say."""
    run = workdir / "run"
    capsys.readouterr()
    assert main(["doctor", str(run)]) == 0
    assert capsys.readouterr().out == f"doctor: nothing wrong found in 2 epochs of {run}\n"
    assert main(["doctor", str(run), "--json"]) == 0
    assert strict_json(capsys.readouterr().out) == {"run": str(run), "epochs": 2, "findings": []}
    err = error_of(capsys, ["doctor", str(tmp_path)])
    assert err == f"error: {tmp_path}: expected a run folder with history.json and last.pt (from train)\n"


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


def test_resume_continues_a_run(workdir, capsys, one_thread):
    run = workdir / "run"
    history = strict_json((run / "history.json").read_text())
    checkpoints = {name: (run / name).read_bytes() for name in ("best.pt", "last.pt")}
    capsys.readouterr()
    assert main(["train", "carvana", "--resume", "--out", str(run), "--quiet", "--threads", "1"]) == 0
    # Already finished: nothing to do, nothing rewritten, and the best epoch named again.
    assert strict_json((run / "history.json").read_text()) == history
    assert {name: (run / name).read_bytes() for name in checkpoints} == checkpoints
    best = max(history, key=lambda row: row["val_dice"])
    assert capsys.readouterr().out.splitlines() == [
        f"training on cpu -> {run}",
        "cpu: fp32 (amp off)",  # as the run was trained: --no-amp is stored with it
        f"best val_dice {best['val_dice']:.4f} at epoch {best['epoch']}; checkpoints in {run} (best.pt, last.pt)",
    ]


def test_module_entry_point_and_help(capsys):
    """``python -m unet_lib`` is the command line (one process: each costs 3-4 s to start); a bad option value is
    argparse's one-line usage error with exit code 2, not a traceback."""
    done = subprocess.run([sys.executable, "-m", "unet_lib", "--help"], capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("usage: python -m unet_lib [-h] COMMAND ...\n")
    listed = re.findall(r"^    (\S+)", done.stdout.partition("positional arguments:")[2], re.MULTILINE)
    assert listed == [
        "sample-data", "check-data", "train", "lr-find", "doctor", "evaluate", "analyze", "compare", "predict", "export",
        "demo",
    ]  # fmt: skip
    with pytest.raises(SystemExit) as exited:
        main(["train", "carvana", "--lr", "fast"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == "python -m unet_lib train: error: argument --lr: invalid float value: 'fast'"


def test_train_options_override_the_recipe():
    from unet_lib.cli import build_parser
    from unet_lib.cli.commands import train_config

    def config(*options):
        return train_config(build_parser().parse_args(["train", "carvana", *options]))

    default = config()
    assert (default.amp, default.channels_last, default.optimizer) == (True, None, "adamw")  # the recommended recipe
    chosen = config("--no-amp", "--channels-last", "--recipe", "original-160x240", "--lr", "3e-4", "--size", "64x96")
    assert (chosen.amp, chosen.channels_last, chosen.optimizer) == (False, True, "adam")
    assert (chosen.lr, chosen.image_size) == (3e-4, (64, 96))


# Evaluation in bf16 against fp32, on the sample car held out: measured 0.0005 apart (a pixel's probability near
# the threshold may fall on either side).
EVAL_DICE_ATOL = 5e-3


def test_evaluation_in_bf16_gives_the_fp32_dice(workdir, capsys, monkeypatch):
    args = ["evaluate", "--checkpoint", str(workdir / "run" / "best.pt"), "--data", str(workdir / "carvana")]
    args += ["--quiet", "--device", "cpu", "--json"]
    assert main([*args, "--no-amp"]) == 0
    fp32 = strict_json(capsys.readouterr().out)
    monkeypatch.setattr(runtime, "cpu_bf16", lambda: (True, "avx512_bf16"))  # forced: correct on any CPU
    assert main(args) == 0
    found = capsys.readouterr()
    assert found.err.splitlines()[0] == "cpu: bf16 autocast + channels_last (avx512_bf16)"  # on stderr: JSON stays JSON
    bf16 = strict_json(found.out)
    for key in ("dice", "dice_full_res", "dice_tta"):
        assert bf16[key] == pytest.approx(fp32[key], abs=EVAL_DICE_ATOL), key
