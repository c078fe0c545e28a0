"""``make demo`` end to end on a tiny sample (2 cars at 240x160, one epoch): the run folder it writes,
the lines it prints, each number on them recomputed by hand, and its exit status."""

import re

import numpy as np
import pytest
import torch
from conftest import binary_scores_by_hand, logits_by_hand, strict_json
from PIL import Image

import unet_lib.cli.demo
from unet_lib.cli.demo import run_demo
from unet_lib.cli.sample import write_carvana_sample
from unet_lib.data import CarvanaDataset
from unet_lib.runtime import Precision

PRINTED = 5e-5  # half the last printed digit of a 4-decimal score
EDGE = 2e-4  # a pixel within float rounding of a grid threshold may fall either side: about 1e-5 each

RESULT_LINES = re.compile(
    r"  U-Net {27}(?P<dice>\d\.\d{4})   \(pixel accuracy (?P<accuracy>\d\.\d{4})\)\n"
    r"  baseline: mean training mask    (?P<mean_mask>\d\.\d{4})\n"
    r"  baseline: best global threshold (?P<threshold_dice>\d\.\d{4})"
    r"   \((?P<feature>brightness|colour distance) (?P<polarity>>=|<) t at (?P<t>\S+)\)\n"
)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """2 cars of 16 views at 240x160: the demo holds one out (its 20 % of the cars, at least one)."""
    root = tmp_path_factory.mktemp("demo") / "carvana"
    write_carvana_sample(root, num_cars=2, size=(240, 160), num_test_cars=0)
    return root


def stacked(dataset: CarvanaDataset) -> tuple[torch.Tensor, np.ndarray]:
    """All items of a dataset: images [N, 3, H, W] and masks as a bool array [N, H, W]."""
    images, masks = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
    return torch.stack(images), torch.stack(masks).numpy() == 1


def dice_by_hand(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Dice 2|X and Y| / (|X| + |Y|) of each image [N, H, W]; 1 when both are empty (Kaggle's rule)."""
    both, total = (pred & truth).sum((1, 2)), pred.sum((1, 2)) + truth.sum((1, 2))
    return np.where(total > 0, 2 * both / np.maximum(total, 1), 1.0)


def threshold_baseline_by_hand(images: torch.Tensor, masks: np.ndarray, grid: int = 256) -> dict:
    """The best global threshold, tried exhaustively: for brightness (the mean of R, G and B) and for the
    distance in RGB from each image's background colour (the median colour of its outermost ring of pixels,
    the lower middle value), every ``t = low + j (high - low) / grid``, both ``>= t`` and ``< t``.

    Returns:
        ``{(feature, polarity): (best mean Dice, its t)}``.
    """
    x = images.double().numpy()  # (N, 3, H, W)
    ring = np.concatenate([x[..., 0, :], x[..., -1, :], x[..., 1:-1, 0], x[..., 1:-1, -1]], axis=-1)  # (N, 3, P)
    background = np.sort(ring, axis=-1)[..., (ring.shape[-1] - 1) // 2]  # (N, 3)
    features = {
        "brightness": x.mean(1),
        "colour distance": np.sqrt(((x - background[..., None, None]) ** 2).sum(1)),
    }
    best = {}
    for name, feature in features.items():
        low, high = feature.min(), feature.max()
        for polarity in (">=", "<"):
            scores = []
            for j in range(grid):
                t = low + j * (high - low) / grid
                pred = feature >= t if polarity == ">=" else feature < t
                scores.append((dice_by_hand(pred, masks).mean(), t))
            best[name, polarity] = max(scores)
    return best


def test_demo_trains_scores_and_compares_with_the_baselines(sample, tmp_path, capsys, monkeypatch, one_thread):
    models = tmp_path / "models"
    code = run_demo(sample, models, epochs=1, threads=1)
    out = capsys.readouterr().out
    run = models / "run-001"

    # What it writes: one new run folder, its checkpoints, the history of its one epoch, the figure.
    assert [p.name for p in models.iterdir()] == ["run-001"]
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "history.json", "last.pt", "predictions.png"]
    history = strict_json((run / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1]
    state = torch.load(run / "best.pt", weights_only=True)
    config = state["config"]
    assert state["epoch"] == 1 and config["num_epochs"] == 1 and config["threads"] == 1
    with Image.open(run / "predictions.png") as figure:
        assert figure.format == "PNG" and figure.width > figure.height > 100  # 6 cars side by side, 2 rows
        assert len(figure.convert("RGB").getcolors(2**24)) > 100  # photos and masks, not a blank page

    # What it prints.
    height, width = config["image_size"]
    train = CarvanaDataset(sample, "train", size=(height, width))
    val = CarvanaDataset(sample, "val", size=(height, width))
    assert (len(train), len(val)) == (16, 16) and not {i[:12] for i in train.ids} & {i[:12] for i in val.ids}
    lines = out.splitlines()
    # The doctor may speak after this one short epoch (a first epoch often calls every pixel one class); its lines
    # are findings about epoch 1, and the rest of the output is as without them.
    said = [line for line in lines if line.startswith("doctor: ")]
    assert all(line.startswith(("doctor: predictions at epoch 1: ", "doctor: loss: ")) for line in said), said
    lines = [line for line in lines if not line.startswith("doctor: ")]
    assert lines[0] == (
        f"training {tuple(config['features'])} U-Net at {height}x{width} on the CPU: "
        f"16 training / 16 held-out images -> {run}"
    )
    precision = Precision.choose(torch.device("cpu"))  # bf16 + channels_last where native, else fp32
    assert lines[1:3] == [f"training on cpu -> {run}", str(precision)]
    assert re.fullmatch(
        r"time: \d+\.\d\d s a step: about \d+(\.\d)? s an epoch, \d+(\.\d)? s for 1 epochs", lines[3]
    ), lines[3]
    assert lines[4].startswith("epoch 1/1  train loss ")
    assert f"val dice {history[0]['val_dice']:.4f}  " in lines[4]
    assert re.fullmatch(
        rf"trained 1 epochs in \d+\.\d min; best checkpoint {re.escape(str(run / 'best.pt'))}", lines[7]
    )
    assert lines[8] == "held-out cars (mean per-image Dice, the Kaggle metric):"
    found = RESULT_LINES.search(out)
    assert found and found.start() == out.index(lines[9]), out
    assert lines[12] == f"figure: {run / 'predictions.png'}"

    # The U-Net's scores, by hand: best.pt run with plain torch on the held-out car, sigmoid > threshold.
    val_images, val_masks = stacked(val)
    logits = logits_by_hand(run / "best.pt", val_images, bf16=precision.dtype is not None)[:, 0]
    low, high = binary_scores_by_hand(logits, val_masks, config["threshold"])
    for key, printed in (("dice", "dice"), ("pixel_accuracy", "accuracy")):
        assert low[key] - PRINTED <= float(found[printed]) <= high[key] + PRINTED, (key, low[key], high[key])
    assert float(found["dice"]) == pytest.approx(history[0]["val_dice"], abs=PRINTED)  # training's validation

    # The mean-mask baseline, by hand: pixels that are car in at least half of the training masks.
    _, train_masks = stacked(CarvanaDataset(sample, "train", size=(height, width), augment="none"))
    mean_mask = np.broadcast_to(train_masks.mean(0) >= 0.5, val_masks.shape)
    assert float(found["mean_mask"]) == pytest.approx(dice_by_hand(mean_mask, val_masks).mean(), abs=PRINTED)

    # The threshold baseline: the best of every feature, direction and grid threshold, tried one by one.
    tried = threshold_baseline_by_hand(val_images, val_masks)
    assert float(found["threshold_dice"]) == pytest.approx(max(tried.values())[0], abs=EDGE)
    dice, t = tried[found["feature"], found["polarity"]]  # the one it names is (one of) the best
    assert float(found["threshold_dice"]) == pytest.approx(dice, abs=EDGE)
    assert float(found["t"]) == pytest.approx(t, rel=5e-3)  # printed to 3 significant digits

    # Its exit status: 1, with a line saying so, when the held-out Dice misses the target; else 0.
    missed = float(found["dice"]) < unet_lib.cli.demo.TARGET_DICE  # 1 epoch on 1 car: it misses
    assert code == (1 if missed else 0)
    below = f"validation Dice {found['dice']} is below the demo's target {unet_lib.cli.demo.TARGET_DICE}"
    assert lines[13:] == ([below] if missed else [])

    # Again, with a target it meets: 0, into a new folder next to the first, with the same numbers
    # (same seed, one thread).
    monkeypatch.setattr(unet_lib.cli.demo, "TARGET_DICE", float(found["dice"]) - 0.01)
    assert run_demo(sample, models, epochs=1, threads=1) == 0
    again = capsys.readouterr().out
    assert sorted(p.name for p in models.iterdir()) == ["run-001", "run-002"]
    assert RESULT_LINES.search(again)[0] == found[0]
    assert "below the demo's target" not in again
