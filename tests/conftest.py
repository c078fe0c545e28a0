"""Small hand-made dataset trees, written with PIL directly (independently of unet_lib's generator)."""

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unet_lib.cli.cache import CACHE_ENV

# The notebooks' exercise checks import as ``exercises``, as they do in a kernel started in notebooks/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "notebooks"))


def rle_by_hand(mask: np.ndarray) -> str:
    """Kaggle RLE with a plain loop: 1-indexed (start, length) pairs over the row-major pixels."""
    pairs, start = [], None
    flat = list(mask.flatten()) + [0]
    for i, value in enumerate(flat):
        if value and start is None:
            start = i
        elif not value and start is not None:
            pairs += [start + 1, i - start]
            start = None
    return " ".join(map(str, pairs))


def car_mask(height: int, width: int, shift: int) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    return (((yy - height / 2) / (height / 3)) ** 2 + ((xx - width / 2 - shift) / (width / 3)) ** 2 < 1).astype(
        np.uint8
    )


def make_carvana_tree(root: Path, cars: int = 5, views: int = 2, size=(48, 32), masks: str = "gif") -> list[str]:
    """A Kaggle-layout tree: train/<id>.jpg plus masks as palette GIFs, a CSV, or 0/255 PNGs."""
    width, height = size
    (root / "train").mkdir(parents=True)
    rows, ids = ["img,rle_mask"], []
    rng = np.random.default_rng(0)
    for car in range(cars):
        for view in range(1, views + 1):
            image_id = f"{car:012x}_{view:02d}"
            ids.append(image_id)
            mask = car_mask(height, width, shift=view)
            pixels = rng.integers(0, 60, (height, width, 3), dtype=np.uint8) + mask[..., None] * 150
            Image.fromarray(pixels).save(root / "train" / f"{image_id}.jpg", quality=95)
            if masks == "gif":
                (root / "train_masks").mkdir(exist_ok=True)
                gif = Image.fromarray(mask, mode="P")
                gif.putpalette([0, 0, 0, 255, 255, 255])
                gif.save(root / "train_masks" / f"{image_id}_mask.gif")
            elif masks == "png255":
                (root / "train_masks").mkdir(exist_ok=True)
                Image.fromarray(mask * 255).save(root / "train_masks" / f"{image_id}_mask.png")
            rows.append(f"{image_id}.jpg,{rle_by_hand(mask)}")
    if masks == "csv":
        (root / "train_masks.csv").write_text("\n".join(rows) + "\n")
    return ids


def make_cityscapes_tree(
    root: Path, label_ids=range(34), size=(64, 32), per_split: int = 2, coarse: bool = False
) -> None:
    """leftImg8bit/ and gtFine/ (and gtCoarse/) for train and val, each label map striped with ``label_ids``."""
    width, height = size
    label_ids = list(label_ids)
    for split, city in (("train", "aachen"), ("val", "lindau")):
        for k in range(per_split):
            stem = f"{city}_{k:06d}_000019"
            labels = np.array([label_ids[(x + k) % len(label_ids)] for x in range(width)], dtype=np.uint8)
            labels = np.tile(labels, (height, 1))
            codes = labels.astype(np.int64)
            image = np.stack([codes * 7 % 256, codes * 3 % 256, np.full_like(codes, 90)], axis=-1).astype(np.uint8)
            (root / "leftImg8bit" / split / city).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
            for gt in ("gtFine", "gtCoarse") if coarse else ("gtFine",):
                (root / gt / split / city).mkdir(parents=True, exist_ok=True)
                Image.fromarray(labels).save(root / gt / split / city / f"{stem}_{gt}_labelIds.png")


@pytest.fixture(autouse=True, scope="session")
def picture_cache_in_tmp(tmp_path_factory):
    """Disk-cached pictures go to a temporary folder for the whole run (subprocesses too), never to ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("picture-cache")))
        yield


@pytest.fixture
def carvana_tree(tmp_path):
    root = tmp_path / "carvana"
    make_carvana_tree(root)
    return root


@pytest.fixture
def cityscapes_tree(tmp_path):
    root = tmp_path / "cityscapes"
    make_cityscapes_tree(root)
    return root


def strict_json(text: str):
    """Parse JSON as strict parsers (jq, JavaScript) do: NaN and Infinity are refused."""
    import json

    def refuse(constant: str):
        raise AssertionError(f"not strict JSON: found {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def no_pyplot_figures():
    """Figures are made outside pyplot's list, so none piles up (used by the figure tests)."""
    from matplotlib import pyplot as plt

    yield
    assert plt.get_fignums() == []
    plt.close("all")


@pytest.fixture
def one_thread():
    """PyTorch on one CPU thread for the test, then as it was: float sums split across threads differ
    from CPU to CPU, and code under test that sets the thread count (``threads=1``) must not leak it."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def logits_by_hand(checkpoint: Path, images, arch: dict | None = None, bf16: bool = False):
    """The logits [N, C, h, w] of a checkpoint's model on ``images`` [N, 3, h, w]: loaded with plain
    ``torch.load`` and run in eval mode in one batch, without unet_lib's loading or evaluation code.
    A bare state_dict (the original project's ``.h5``) needs its ``arch``, the ``UNet`` arguments.
    ``bf16``: under bf16 autocast with the model in channels_last, as unet_lib runs where bf16 is native."""
    import torch

    from unet_lib.model import UNet

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if arch is not None:
        state = {"arch": arch, "model": state}
    model = UNet(**state["arch"])
    model.load_state_dict(state["model"])
    if bf16:
        model = model.to(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return model.eval()(images).float()


def gif_mask(path: Path) -> np.ndarray:
    """A Carvana mask as Kaggle ships it: a palette GIF whose indices are 0 (background) and 1 (car)."""
    return np.asarray(Image.open(path)) == 1


def binary_scores_by_hand(logits, masks, threshold: float = 0.5, margin: float = 1e-4) -> tuple[dict, dict]:
    """Carvana's scores in plain numpy: Dice per image (1 when both masks are empty, Kaggle's rule), then its
    mean; pixel accuracy, precision, recall and IoU pooled over all pixels. A pixel is car where
    sigmoid(logit) > threshold.

    A pixel whose logit lies within ``margin`` of the cut-off may fall on either side in another batch
    size (float sums in another order), so two sets of scores come back: ``(low, high)``, those pixels
    all wrong and all right. Every score rises as a pixel is put right, so the true one lies between.

    Args:
        logits: 2-D logits, one array per image (at the masks' size).
        masks: 2-D masks of 0/1 or bool, one per image.
    """
    import math

    cut = math.log(threshold / (1 - threshold))
    low, high = [], []  # per image: (tp, fp, fn, tn)
    for logit, mask in zip(logits, masks, strict=True):
        logit, truth = np.asarray(logit, dtype=np.float64), np.asarray(mask).astype(bool)
        assert logit.shape == truth.shape
        pred = 1 / (1 + np.exp(-logit)) > threshold
        sure = np.abs(logit - cut) > margin
        for counts, unsure_as in ((low, ~truth), (high, truth)):
            p = np.where(sure, pred, unsure_as)
            counts.append(((p & truth).sum(), (p & ~truth).sum(), (~p & truth).sum(), (~p & ~truth).sum()))

    def scores(counts: list) -> dict:
        tp, fp, fn, tn = np.array(counts, dtype=np.float64).T
        dice = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 1.0)
        tp, fp, fn, tn = tp.sum(), fp.sum(), fn.sum(), tn.sum()
        return {
            "dice": dice.mean(),
            "pixel_accuracy": (tp + tn) / (tp + fp + fn + tn),
            "precision": tp / (tp + fp) if tp + fp else math.nan,
            "recall": tp / (tp + fn) if tp + fn else math.nan,
            "iou": tp / (tp + fp + fn) if tp + fp + fn else math.nan,
        }

    return scores(low), scores(high)


def assert_between(reported: dict, bounds: tuple[dict, dict], keys=None, suffix: str = "", spread: float = 1e-3):
    """Each reported score lies between the by-hand ``(low, high)`` (see ``binary_scores_by_hand``), and
    those are at most ``spread`` apart: few pixels were too close to the cut-off to tell."""
    low, high = bounds
    for key in keys or low:
        value = reported[key + suffix]
        assert low[key] - 1e-12 <= value <= high[key] + 1e-12, (key + suffix, low[key], value, high[key])
        assert high[key] - low[key] <= spread, (key + suffix, low[key], high[key])


def bce_dice_by_hand(logits, masks) -> float:
    """BCE with logits over every pixel, plus 1 - the mean soft Dice per image (smoothing 1): ``bce_dice``."""
    x, y = (np.asarray(a, dtype=np.float64).reshape(len(a), -1) for a in (logits, masks))
    bce = np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))  # log(1 + e^x) - x y, computed stably
    p = 1 / (1 + np.exp(-x))
    soft_dice = (2 * (p * y).sum(1) + 1) / (p.sum(1) + y.sum(1) + 1)
    return bce.mean() + 1 - soft_dice.mean()


def band_by_hand(mask: np.ndarray, band: int) -> np.ndarray:
    """The boundary band of a label map [H, W], pixel by pixel: an edge pixel has a 4-neighbour with another
    label; a band pixel has an edge pixel at most ``band`` rows and ``band`` columns away."""
    height, width = mask.shape
    edge = np.zeros(mask.shape, dtype=bool)
    for r in range(height):
        for c in range(width):
            for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                if 0 <= nr < height and 0 <= nc < width and mask[nr, nc] != mask[r, c]:
                    edge[r, c] = True
    out = np.zeros(mask.shape, dtype=bool)
    for r in range(height):
        for c in range(width):
            out[r, c] = edge[max(0, r - band) : r + band + 1, max(0, c - band) : c + band + 1].any()
    return out
