"""Your own data: FolderDataset's items, classes and split, and train / evaluate / predict on a folder tree."""

import dataclasses

import numpy as np
import pytest
import torch
from conftest import strict_json
from folder_trees import listing, make_folder_tree
from PIL import Image

from unet_lib.checkpoint import load_checkpoint
from unet_lib.cli import main
from unet_lib.cli.cache import use_cache
from unet_lib.config import ConfigError, TrainConfig, recipe
from unet_lib.data import FolderDataset, best_metric, build_datasets, class_names, configure, num_outputs
from unet_lib.data.folder import FolderClasses, classes_from_counts
from unet_lib.errors import InputError
from unet_lib.metrics import IGNORE_INDEX


def counts_of(values: dict[int, int]) -> np.ndarray:
    counts = np.zeros(256, dtype=np.int64)
    for value, n in values.items():
        counts[value] = n
    return counts


def test_classes_follow_the_mask_values_without_classes_txt():
    assert classes_from_counts(counts_of({0: 90, 1: 10})) == FolderClasses(("background", "foreground"))
    assert classes_from_counts(counts_of({0: 90, 255: 10})).foreground_255
    assert not classes_from_counts(counts_of({0: 80, 1: 10, 255: 10})).foreground_255  # 255: ignored
    assert classes_from_counts(counts_of({0: 5, 3: 5, 255: 1})).names == ("class 0", "class 1", "class 2", "class 3")
    smoothed = counts_of({0: 800, 255: 150, 1: 3, 64: 4, 128: 6, 200: 5})  # 0/255 masks with soft edges
    assert classes_from_counts(smoothed) == FolderClasses(("background", "foreground"), foreground_255=True)


@pytest.mark.parametrize("scale", [1, 255])
def test_binary_items_hold_0_and_1(tmp_path, scale):
    masks = make_folder_tree(tmp_path, count=5, scale=scale)
    train = FolderDataset(tmp_path, "train")
    val = FolderDataset(tmp_path, "val")
    assert len(val) == 1 and sorted(train.ids + val.ids) == [f"p{i}" for i in range(5)]
    for dataset in (train, val):
        for i in range(len(dataset)):
            image, mask = dataset[i]
            assert image.shape == (3, 40, 60) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1
            expected = np.asarray(Image.open(masks[int(dataset.ids[i][1:])])) // scale
            assert mask.dtype == torch.int64 and torch.equal(mask, torch.from_numpy(expected).long())


def test_several_classes_keep_255_ignored_and_the_val_folder(tmp_path):
    make_folder_tree(tmp_path, num_classes=3, classes=["bg", "box", "disc"], val=2, ignore_rows=3)
    train = use_cache(FolderDataset(tmp_path, "train", size=(32, 48), augment="original"), "memory")
    val = FolderDataset(tmp_path, "val", size=(32, 48))
    assert (len(train), len(val), train.classes.names) == (6, 2, ("bg", "box", "disc"))
    assert val.image_path(0).parent == tmp_path / "val" / "images"
    _, mask = val[0]
    assert mask.shape == (32, 48) and set(mask.unique().tolist()) == {0, 1, 2, IGNORE_INDEX}
    assert (mask[:2] == IGNORE_INDEX).all()
    assert train.read_mask(0).shape == (40, 60) and train.read_mask(0).dtype == np.uint8


@pytest.mark.parametrize("num_classes", [2, 3])
def test_augmentation_fills_with_background_or_the_ignore_value(tmp_path, num_classes):
    make_folder_tree(tmp_path, num_classes=num_classes)
    dataset = FolderDataset(tmp_path, "train", augment="original")  # flips and rotations up to 35 degrees
    torch.manual_seed(0)
    values = set(torch.stack([dataset[i % 5][1] for i in range(10)]).unique().tolist())
    # Pixels rotated in from outside: background for a binary task, ignored with several classes.
    assert values == ({0, 1} if num_classes == 2 else {0, 1, 2, IGNORE_INDEX})


def test_split_is_seeded_and_stable(tmp_path):
    make_folder_tree(tmp_path, count=10)
    first = FolderDataset(tmp_path, "val", val_fraction=0.3).ids
    assert len(first) == 3 and FolderDataset(tmp_path, "val", val_fraction=0.3).ids == first
    assert set(first).isdisjoint(FolderDataset(tmp_path, "train", val_fraction=0.3).ids)
    assert set(FolderDataset(tmp_path, "val", val_fraction=0.5).ids) > set(first)  # one shuffle, a longer share


def test_the_cache_keeps_masks_as_stored(tmp_path):
    make_folder_tree(tmp_path, count=3, scale=255)
    dataset = use_cache(FolderDataset(tmp_path, "train", size=(16, 32)), "memory")
    _, mask = dataset[0]
    image, stored = dataset.cache.get(0)  # what _load returns: uint8, before the class table
    assert image.dtype == torch.uint8 and set(stored.unique().tolist()) == {0, 255}
    assert set(mask.unique().tolist()) == {0, 1}


def test_bad_trees_fail_with_one_line_naming_the_file(tmp_path):
    with pytest.raises(InputError, match="images: folder not found"):
        FolderDataset(tmp_path / "none")
    make_folder_tree(tmp_path, count=3, classes=["only"])
    with pytest.raises(InputError, match=r"classes.txt: names 1 class; expected 2 or more"):
        FolderDataset(tmp_path)
    (tmp_path / "classes.txt").write_text("bg\nthing\n")
    (tmp_path / "masks" / "p0.png").unlink()
    with pytest.raises(InputError, match=r"p0.jpg: image without mask"):
        FolderDataset(tmp_path)


def test_config_takes_its_classes_from_the_data(tmp_path):
    make_folder_tree(tmp_path, count=4, num_classes=3)
    config = recipe("folder-quick", data_dir=str(tmp_path), image_size=(32, 48))
    with pytest.raises(InputError, match="its class names come from the data"):
        num_outputs(config)
    train, _ = build_datasets(config)
    filled = configure(config, train)
    assert filled.class_names == ("class 0", "class 1", "class 2") and filled.loss == "ce" and num_outputs(filled) == 3
    assert class_names(filled) == list(filled.class_names) and best_metric(filled) == "val_miou"
    assert TrainConfig.from_dict(filled.to_dict()) == filled
    with pytest.raises(InputError, match="holds 3 classes"):
        configure(dataclasses.replace(config, class_names=("a", "b")), train)
    with pytest.raises(ConfigError, match="^class_names: expected 2 or more names"):
        TrainConfig(dataset="folder", class_names=("a",))


@pytest.fixture(scope="module", params=[2, 3], ids=["binary", "three-classes"])
def folder_run(request, tmp_path_factory):
    """A folder tree and a run trained on it from the command line (tiny network, 2 epochs)."""
    root = tmp_path_factory.mktemp(f"folder{request.param}")
    names = None if request.param == 2 else ["background", "box", "disc"]
    make_folder_tree(
        root / "data", count=8, num_classes=request.param, classes=names, scale=255 if names is None else 1
    )
    before = listing(root / "data")
    args = ["train", "folder", "--data", str(root / "data"), "--recipe", "folder-quick", "--size", "32x48"]
    assert (
        main([*args, "--features", "4,8", "--epochs", "2", "--out", str(root / "run"), "--quiet", "--threads", "1"])
        == 0
    )
    return root, request.param, before


def test_train_evaluate_predict_on_a_folder(folder_run, capsys):
    root, num_classes, before = folder_run
    state = load_checkpoint(root / "run" / "best.pt")
    config = TrainConfig.from_dict(state["config"])
    assert config.dataset == "folder" and len(config.class_names) == num_classes == len(state["class_names"])
    assert state["arch"]["num_classes"] == (1 if num_classes == 2 else num_classes)
    assert config.loss == ("bce_dice" if num_classes == 2 else "ce")

    capsys.readouterr()
    checkpoint = str(root / "run" / "best.pt")
    assert main(["evaluate", "--checkpoint", checkpoint, "--data", str(root / "data"), "--json", "--quiet"]) == 0
    metrics = strict_json(capsys.readouterr().out)
    assert metrics["images"] == 2  # a seeded fifth of 8 held out
    if num_classes == 2:
        assert 0 <= metrics["dice"] <= 1 and 0 <= metrics["dice_full_res"] <= 1
    else:
        assert list(metrics["iou"]) == ["background", "box", "disc"] and 0 <= metrics["miou"] <= 1
    assert main(["evaluate", "--checkpoint", checkpoint, "--data", str(root / "data"), "--quiet"]) == 0
    shown = capsys.readouterr().out
    assert ("dice_full_res" in shown) if num_classes == 2 else ("mean (mIoU)" in shown and "disc" in shown)

    out = root / "predictions"
    assert main(["predict", "--checkpoint", checkpoint, str(root / "data" / "images"), "--out", str(out)]) == 0
    masks = sorted(out.glob("*_mask.png"))
    assert len(masks) == 8 and len(list(out.glob("*_overlay.jpg"))) == 8
    values = np.asarray(Image.open(masks[0]))
    assert values.shape == (40, 60) and set(np.unique(values).tolist()) <= ({0, 255} if num_classes == 2 else {0, 1, 2})
    split = root / "val-predictions"
    assert main(["predict", "--checkpoint", checkpoint, "--data", str(root / "data"), "--out", str(split)]) == 0
    assert len(list(split.glob("*_mask.png"))) == 2
    assert main(["train", "folder", "--resume", "--out", str(root / "run"), "--quiet", "--threads", "1"]) == 0
    assert "best val_" in capsys.readouterr().out  # already finished: nothing more to train
    assert listing(root / "data") == before  # training, scoring and predicting only read the data
