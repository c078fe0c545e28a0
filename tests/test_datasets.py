"""Carvana and Cityscapes readers on hand-made trees: layouts, splits, label mapping, bad input."""

import dataclasses
import pickle

import numpy as np
import pytest
import torch
from conftest import car_mask, make_carvana_tree, make_cityscapes_tree
from PIL import Image
from torchvision.datasets import Cityscapes

from unet_lib import InputError, recipe
from unet_lib.cli.carvana import mask_coverage
from unet_lib.data import CarvanaDataset, CityscapesDataset, build_datasets, split_by_car
from unet_lib.data.carvana import car_of


@pytest.mark.parametrize("masks", ["gif", "csv", "png255"])
def test_carvana_reads_every_mask_format(tmp_path, masks):
    make_carvana_tree(tmp_path, cars=5, views=2, masks=masks)
    train = CarvanaDataset(tmp_path, "train")
    val = CarvanaDataset(tmp_path, "val")
    assert len(train) + len(val) == 10
    for dataset in (train, val):
        for i in range(len(dataset)):
            image, mask = dataset[i]
            assert image.shape == (3, 32, 48) and image.dtype == torch.float32
            assert 0 <= image.min() and image.max() <= 1
            assert mask.shape == (32, 48)
            view = int(dataset.ids[i][-2:])
            assert torch.equal(mask, torch.from_numpy(car_mask(32, 48, shift=view)).long())


def test_carvana_validation_holds_out_whole_cars(carvana_tree):
    train = CarvanaDataset(carvana_tree, "train")
    val = CarvanaDataset(carvana_tree, "val")
    assert {car_of(i) for i in train.ids}.isdisjoint({car_of(i) for i in val.ids})
    assert len(val) == 2  # 1 of 5 cars, 2 views each


def test_split_by_car_is_deterministic_and_never_straddles():
    ids = [f"{car:012x}_{view:02d}" for car in range(50) for view in range(1, 17)]
    train, val = split_by_car(ids, val_fraction=0.2)
    assert len(val) == 10 * 16
    shuffled_train, shuffled_val = split_by_car(list(reversed(ids)), val_fraction=0.2)
    assert set(shuffled_val) == set(val)  # depends on the set of cars, not on listing order
    assert {car_of(i) for i in train}.isdisjoint({car_of(i) for i in val})
    assert sorted(train + val) == sorted(ids)


def test_carvana_resizes_image_bilinear_and_mask_nearest(carvana_tree):
    image, mask = CarvanaDataset(carvana_tree, "train", size=(16, 24))[0]
    assert image.shape == (3, 16, 24) and mask.shape == (16, 24)
    assert set(mask.unique().tolist()) == {0, 1}


def test_carvana_original_layout_with_val_folder(tmp_path):
    make_carvana_tree(tmp_path, cars=2, views=2)
    make_carvana_tree(tmp_path / "v", cars=1, views=3)
    (tmp_path / "v" / "train").rename(tmp_path / "val")
    (tmp_path / "v" / "train_masks").rename(tmp_path / "val_masks")
    assert len(CarvanaDataset(tmp_path, "train")) == 4
    assert len(CarvanaDataset(tmp_path, "val")) == 3


def test_carvana_test_split_has_images_only(carvana_tree):
    (carvana_tree / "train").rename(carvana_tree / "test")
    dataset = CarvanaDataset(carvana_tree, "test", size=(16, 24))
    assert dataset[0].shape == (3, 16, 24)


def one_line_error(match, make, *args, **kwargs):
    with pytest.raises(InputError, match=match) as info:
        make(*args, **kwargs)
    return str(info.value)


def test_carvana_bad_layouts(tmp_path):
    message = one_line_error("folder not found", CarvanaDataset, tmp_path / "nothing")
    assert "train_masks/" in message  # shows the expected tree
    make_carvana_tree(tmp_path / "a", cars=2, views=1)
    (tmp_path / "a" / "train_masks" / "000000000001_01_mask.gif").unlink()
    one_line_error("000000000001_01.jpg: image without mask", CarvanaDataset, tmp_path / "a")
    make_carvana_tree(tmp_path / "b", cars=2, views=1)
    (tmp_path / "b" / "train" / "000000000000_01.jpg").unlink()
    one_line_error("000000000000_01_mask.gif: mask without image", CarvanaDataset, tmp_path / "b")
    make_carvana_tree(tmp_path / "c", cars=2, views=1)
    (tmp_path / "c" / "train_masks").rename(tmp_path / "c" / "elsewhere")
    one_line_error("no masks", CarvanaDataset, tmp_path / "c")


def test_carvana_bad_files(tmp_path):
    make_carvana_tree(tmp_path, cars=1, views=3, masks="png255")
    dataset = CarvanaDataset(tmp_path, "train")  # one car: all of it is training data
    soft = (car_mask(32, 48, 0) * 255).astype(np.uint8)
    soft[10, 10:14] = [64, 128, 192, 250]  # anti-aliased edge pixels
    Image.fromarray(soft).save(tmp_path / "train_masks" / "000000000000_01_mask.png")
    message = one_line_error("expected only {0, 1} or {0, 255}", dataset.__getitem__, 0)
    assert "000000000000_01_mask.png" in message and "threshold" in message and "\n" not in message
    jpeg = tmp_path / "train" / "000000000000_02.jpg"
    jpeg.write_bytes(jpeg.read_bytes()[:300])
    one_line_error("000000000000_02.jpg: .*truncated", dataset.__getitem__, 1)
    (tmp_path / "train" / "000000000000_03.jpg").write_bytes(b"")
    one_line_error("000000000000_03.jpg: empty file", dataset.__getitem__, 2)


def test_carvana_image_and_mask_of_different_sizes(tmp_path):
    make_carvana_tree(tmp_path, cars=1, views=1, masks="png255")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "train_masks" / "000000000000_01_mask.png")
    one_line_error(
        "image is 48x32 but its mask .*000000000000_01_mask.png is 10x10",
        CarvanaDataset(tmp_path, "train").__getitem__,
        0,
    )


def expected_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """labelId -> trainId straight from torchvision's table; every ignored id -> 255."""
    table = {c.id: (c.train_id if 0 <= c.train_id < 255 else 255) for c in Cityscapes.classes}
    return np.vectorize(table.__getitem__)(label_ids)


def test_cityscapes_maps_all_34_label_ids(cityscapes_tree):
    dataset = CityscapesDataset(cityscapes_tree, "train")
    assert dataset.ids == ["aachen_000000_000019", "aachen_000001_000019"]
    for i in range(len(dataset)):
        image, labels = dataset[i]
        assert image.shape == (3, 32, 64)
        raw = np.asarray(Image.open(dataset.targets[i]))
        assert set(np.unique(raw).tolist()) == set(range(34))
        np.testing.assert_array_equal(labels.numpy(), expected_train_ids(raw))
    assert set(labels.unique().tolist()) == set(range(19)) | {255}


def test_cityscapes_coarse_and_resize(tmp_path):
    make_cityscapes_tree(tmp_path, coarse=True)
    image, labels = CityscapesDataset(tmp_path, "val", mode="coarse", size=(16, 32))[0]
    assert image.shape == (3, 16, 32) and labels.shape == (16, 32)
    assert set(labels.unique().tolist()) <= set(range(19)) | {255}


def test_cityscapes_bad_layouts(tmp_path):
    make_cityscapes_tree(tmp_path)
    one_line_error("gtCoarse half is missing", CityscapesDataset, tmp_path, "train", mode="coarse")
    one_line_error("split: expected one of", CityscapesDataset, tmp_path, "extra")
    (tmp_path / "gtFine" / "val" / "lindau" / "lindau_000001_000019_gtFine_labelIds.png").unlink()
    one_line_error("image without labels", CityscapesDataset, tmp_path, "val")
    next((tmp_path / "leftImg8bit" / "train" / "aachen").iterdir()).unlink()
    one_line_error("labels without image", CityscapesDataset, tmp_path, "train")
    import shutil

    shutil.rmtree(tmp_path / "gtFine")
    message = one_line_error("gtFine half is missing", CityscapesDataset, tmp_path, "train")
    assert "leftImg8bit/<split>/<city>" in message


def test_limit_keeps_the_first_items_and_the_dataset_s_own_answers(carvana_tree, cityscapes_tree):
    for dataset, root in (("carvana", carvana_tree), ("cityscapes", cityscapes_tree)):
        base = recipe("quick" if dataset == "carvana" else "cityscapes-quick", data_dir=str(root))
        full_train, full_val = build_datasets(base)
        train, val = build_datasets(dataclasses.replace(base, limit=2))
        assert len(train) == 2 and train.ids == full_train.ids[:2] and val.ids == full_val.ids[: len(val)]
        assert torch.equal(val[1][1], full_val[1][1])  # item i is the dataset's item i
        if dataset == "carvana":
            np.testing.assert_array_equal(val.read_mask(1), full_val.read_mask(1))
            assert mask_coverage(val).shape == (len(val),)  # what the notebooks call on it
        else:
            assert torch.equal(val.read_labels(1), full_val.read_labels(1))
        revived = pickle.loads(pickle.dumps(train))  # DataLoader workers may receive it pickled
        assert revived.ids == train.ids and len(revived) == 2
