"""Small hand-made dataset trees, written with PIL directly (independently of unet_lib's generator)."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unet_lib.cli.cache import CACHE_ENV


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
