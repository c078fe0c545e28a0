"""The sample-data generators write exactly the real on-disk formats, deterministically."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from torchvision.datasets import Cityscapes

from unet_lib.cli.sample import write_carvana_sample, write_cityscapes_sample
from unet_lib.cli.sample.common import WriteOptions
from unet_lib.data.rle import rle_decode
from unet_lib.errors import InputError

SMALL = (240, 160)  # (W, H)
CLASSES = {c.name: c for c in Cityscapes.classes}
HAS_INSTANCES = {c.id: c.has_instances for c in Cityscapes.classes if c.id >= 0}


@pytest.fixture(scope="module")
def carvana(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("carvana")
    return root, write_carvana_sample(root, num_cars=2, size=SMALL, num_test_cars=1, options=WriteOptions(seed=3))


@pytest.fixture(scope="module")
def cityscapes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cityscapes")
    write_cityscapes_sample(root, num_images=2, size=(256, 128), options=WriteOptions(seed=0))
    return root


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------------------- Carvana


def test_carvana_layout(carvana):
    root, ids = carvana
    assert len(ids) == 32 and ids == sorted(ids)
    assert all(re.fullmatch(r"[0-9a-f]{12}_(0[1-9]|1[0-6])", i) for i in ids)
    assert len({i[:12] for i in ids}) == 2
    assert sorted(p.stem for p in (root / "train").iterdir()) == ids
    assert sorted(p.name for p in (root / "train_masks").iterdir()) == [f"{i}_mask.gif" for i in ids]
    test_ids = sorted(p.name for p in (root / "test").iterdir())
    assert len(test_ids) == 16 and all(name.endswith(".jpg") for name in test_ids)
    assert not {name[:12] for name in test_ids} & {i[:12] for i in ids}  # test cars are other cars
    with open(root / "metadata.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][:4] == ["id", "year", "make", "model"] and len(rows) == 1 + 3


def test_carvana_formats_and_csv_matches_gifs(carvana):
    root, ids = carvana
    with open(root / "train_masks.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["img", "rle_mask"]
    assert [row[0] for row in rows[1:]] == [f"{i}.jpg" for i in ids]
    for image_id, rle in rows[1:]:
        with Image.open(root / "train" / image_id) as photo:
            assert photo.format == "JPEG" and photo.mode == "RGB" and photo.size == SMALL
        with Image.open(root / "train_masks" / image_id.replace(".jpg", "_mask.gif")) as gif:
            assert gif.format == "GIF" and gif.mode == "P" and gif.size == SMALL
            assert gif.getpalette()[:6] == [0, 0, 0, 255, 255, 255]
            mask = np.asarray(gif)
        assert set(np.unique(mask)) == {0, 1}
        np.testing.assert_array_equal(rle_decode(rle, (SMALL[1], SMALL[0])), mask)


def test_carvana_views_turn_the_car(carvana):
    root, ids = carvana

    def aspect(view: str) -> float:
        mask = np.asarray(Image.open(root / "train_masks" / f"{ids[0][:12]}_{view}_mask.gif"))
        rows, cols = np.nonzero(mask)
        return (cols.max() - cols.min()) / (rows.max() - rows.min())

    # Side views are long and low, the front and the back narrow and tall.
    assert min(aspect("05"), aspect("13")) > 1.6 * max(aspect("01"), aspect("09"))


def test_carvana_is_deterministic(carvana, tmp_path):
    root, _ = carvana
    write_carvana_sample(tmp_path / "again", num_cars=2, size=SMALL, num_test_cars=1, options=WriteOptions(seed=3))
    assert files(tmp_path / "again") == files(root)
    write_carvana_sample(tmp_path / "other", num_cars=2, size=SMALL, num_test_cars=1, options=WriteOptions(seed=4))
    assert files(tmp_path / "other").keys() != files(root).keys()


def test_any_number_of_processes_writes_the_same_files(carvana, tmp_path):
    root, _ = carvana
    one, two = WriteOptions(seed=3, workers=1), WriteOptions(seed=3, workers=2)
    write_carvana_sample(tmp_path / "one", num_cars=2, size=SMALL, num_test_cars=1, options=one)
    write_carvana_sample(tmp_path / "two", num_cars=2, size=SMALL, num_test_cars=1, options=two)
    assert files(tmp_path / "one") == files(tmp_path / "two") == files(root)
    counts = {"train": 3, "val": 1}
    write_cityscapes_sample(tmp_path / "streets1", num_images=counts, size=(128, 64), options=WriteOptions(workers=1))
    write_cityscapes_sample(tmp_path / "streets2", num_images=counts, size=(128, 64), options=WriteOptions(workers=2))
    assert files(tmp_path / "streets1") == files(tmp_path / "streets2")
    assert len(list((tmp_path / "streets1" / "leftImg8bit" / "train").rglob("*.png"))) == 3


def test_full_size_asks_for_the_real_counts(monkeypatch, tmp_path, capsys):
    from unet_lib.cli import main, sample

    asked = {}
    monkeypatch.setattr(
        sample, "write_carvana_sample", lambda root, **kw: asked.update(kw) or ["id"] * 16 * kw["num_cars"]
    )
    monkeypatch.setattr(sample, "write_cityscapes_sample", lambda root, **kw: asked.update(kw))
    assert main(["sample-data", "carvana", str(tmp_path / "c"), "--full-size", "--workers", "3"]) == 0
    assert (
        asked["num_cars"] == 318
        and asked["options"].workers == 3
        and "wrote 5088 training images" in capsys.readouterr().out
    )
    assert main(["sample-data", "cityscapes", str(tmp_path / "s"), "--full-size"]) == 0
    assert asked["num_images"] == {"train": 2975, "val": 500} and asked["options"].workers is None


def test_more_cars_keep_the_first_ones(carvana, tmp_path):
    root, ids = carvana
    more = write_carvana_sample(tmp_path, num_cars=3, size=SMALL, num_test_cars=0, options=WriteOptions(seed=3))
    assert set(ids) < set(more)
    assert (tmp_path / "train" / f"{ids[0]}.jpg").read_bytes() == (root / "train" / f"{ids[0]}.jpg").read_bytes()


@pytest.mark.slow
def test_carvana_default_size(tmp_path):
    ids = write_carvana_sample(tmp_path, num_cars=1, num_test_cars=0)
    for name in (f"train/{ids[0]}.jpg", f"train_masks/{ids[0]}_mask.gif", f"train/{ids[-1]}.jpg"):
        with Image.open(tmp_path / name) as image:
            assert image.size == (1918, 1280)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"num_cars": 0}, "num_cars"),
        ({"num_cars": -2}, "num_cars"),
        ({"num_cars": 1.5}, "num_cars"),
        ({"num_test_cars": -1}, "num_test_cars"),
        ({"size": (0, 100)}, "size"),
        ({"size": (100,)}, "size"),
    ],
)
def test_carvana_bad_arguments(tmp_path, kwargs, name):
    with pytest.raises(InputError, match=name):
        write_carvana_sample(tmp_path / "out", **{"size": SMALL, **kwargs})
    assert not (tmp_path / "out").exists()


def test_never_overwrites_without_asking(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        write_carvana_sample(tmp_path, num_cars=1, size=SMALL)
    with pytest.raises(InputError, match="not empty"):
        write_cityscapes_sample(tmp_path, num_images=1, size=(64, 32))
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_overwrite_replaces_the_sample_and_keeps_the_rest(tmp_path):
    first = write_carvana_sample(tmp_path, num_cars=2, size=SMALL, num_test_cars=0, options=WriteOptions(seed=1))
    (tmp_path / "notes.txt").write_text("mine")
    again = WriteOptions(seed=2, overwrite=True)
    second = write_carvana_sample(tmp_path, num_cars=1, size=SMALL, num_test_cars=0, options=again)
    assert sorted(p.stem for p in (tmp_path / "train").iterdir()) == second
    assert not set(first) & set(second)
    assert (tmp_path / "notes.txt").read_text() == "mine"


# ------------------------------------------------------------------------------------ Cityscapes

STEM = re.compile(r"(aachen|bochum|frankfurt|lindau)_\d{6}_000019")


def label_files(root: Path, mode: str = "gtFine") -> list[Path]:
    return sorted((root / mode).rglob(f"*_{mode}_labelIds.png"))


def test_cityscapes_layout(cityscapes):
    images = sorted((cityscapes / "leftImg8bit").rglob("*.png"))
    assert [p.relative_to(cityscapes).parts[:3] for p in images] == [
        ("leftImg8bit", "train", "aachen"),
        ("leftImg8bit", "train", "bochum"),
        ("leftImg8bit", "val", "frankfurt"),
        ("leftImg8bit", "val", "lindau"),
    ]
    for image in images:
        stem = image.name.removesuffix("_leftImg8bit.png")
        assert STEM.fullmatch(stem) and image.parent.name == stem.split("_")[0]
        for mode in ("gtFine", "gtCoarse"):
            folder = cityscapes / mode / image.parent.relative_to(cityscapes / "leftImg8bit")
            for suffix in ("labelIds.png", "color.png", "instanceIds.png", "polygons.json"):
                assert (folder / f"{stem}_{mode}_{suffix}").is_file()
        with Image.open(image) as photo:
            assert photo.format == "PNG" and photo.mode == "RGB" and photo.size == (256, 128)


def test_all_34_label_ids_appear(cityscapes):
    seen = set()
    for path in label_files(cityscapes):
        with Image.open(path) as labels:
            assert labels.mode == "L"
            seen |= set(np.unique(np.asarray(labels)).tolist())
    assert seen == set(range(34))


def render(annotations: dict) -> np.ndarray:
    """cityscapesScripts' json2labelImg: fill each polygon in file order with its labelId."""
    image = Image.new("L", (annotations["imgWidth"], annotations["imgHeight"]), CLASSES["unlabeled"].id)
    draw = ImageDraw.Draw(image)
    for obj in annotations["objects"]:
        cls = CLASSES[obj["label"]]
        if cls.id >= 0:
            draw.polygon([tuple(p) for p in obj["polygon"]], fill=cls.id)
    return np.asarray(image)


@pytest.mark.parametrize("mode", ["gtFine", "gtCoarse"])
def test_label_pictures_agree_with_polygons(cityscapes, mode):
    colours = np.zeros((256, 3), dtype=np.uint8)
    for cls in Cityscapes.classes:
        if cls.id >= 0:
            colours[cls.id] = cls.color
    for path in label_files(cityscapes, mode):
        labels = np.asarray(Image.open(path))
        annotations = json.loads(Path(str(path).replace("labelIds.png", "polygons.json")).read_text())
        assert (annotations["imgWidth"], annotations["imgHeight"]) == (256, 128)
        np.testing.assert_array_equal(render(annotations), labels)
        color = np.asarray(Image.open(str(path).replace("labelIds", "color")))
        assert color.shape == (128, 256, 4)
        np.testing.assert_array_equal(color[..., :3], colours[labels])
        instances = np.asarray(Image.open(str(path).replace("labelIds", "instanceIds"))).astype(np.int64)
        has_instances = np.array([HAS_INSTANCES.get(i, False) for i in range(256)])[labels]
        assert (instances[~has_instances] == labels[~has_instances]).all()
        assert (instances[has_instances] // 1000 == labels[has_instances]).all()


def test_coarse_leaves_more_unlabelled(cityscapes):
    def unlabelled(mode: str) -> int:
        return sum(int((np.asarray(Image.open(p)) == 0).sum()) for p in label_files(cityscapes, mode))

    assert unlabelled("gtCoarse") > 2 * unlabelled("gtFine")


@pytest.mark.parametrize("target_type", ["semantic", "instance", "color", "polygon"])
@pytest.mark.parametrize("mode", ["fine", "coarse"])
def test_torchvision_reads_it(cityscapes, mode, target_type):
    dataset = Cityscapes(str(cityscapes), split="train", mode=mode, target_type=target_type)
    assert len(dataset) == 2
    image, target = dataset[0]
    assert image.size == (256, 128)
    if target_type == "polygon":
        assert target["imgWidth"] == 256 and target["objects"]
    else:
        assert target.size == (256, 128)


def test_cityscapes_is_deterministic(cityscapes, tmp_path):
    write_cityscapes_sample(tmp_path, num_images=2, size=(256, 128), options=WriteOptions(seed=0))
    assert files(tmp_path) == files(cityscapes)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"num_images": 0}, "num_images"),
        ({"size": (-5, 10)}, "size"),
        ({"splits": ("train", "extra")}, "splits"),
        ({"splits": "train"}, "splits"),
        ({"splits": ()}, "splits"),
        ({"num_images": {"train": 2}}, "num_images"),
        ({"num_images": {"train": 2, "val": 0}}, "num_images"),
        ({"options": WriteOptions(workers=0)}, "workers"),
    ],
)
def test_cityscapes_bad_arguments(tmp_path, kwargs, name):
    with pytest.raises(InputError, match=name):
        write_cityscapes_sample(tmp_path / "out", **{"size": (64, 32), **kwargs})
