"""Data as real public datasets ship it: other folder names (train/ trainannot/, image/ label/), masks named
x_mask.png or x_L.png, void values other than 255, palette and colour-coded masks, and class weights for
rare classes that equal what check-data prints."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import strict_json
from folder_trees import make_folder_tree
from PIL import Image

from benchmarks import real_like
from benchmarks.real_like import CAMVID_CLASSES, CAMVID_COLOURS, VOID, write_street_tree
from unet_lib.checkpoint import load_checkpoint
from unet_lib.cli import main
from unet_lib.config import TrainConfig
from unet_lib.data import build_datasets, detect_dataset
from unet_lib.data.check import check_tree, loss_weights
from unet_lib.data.folder import FolderDataset, read_classes_file
from unet_lib.data.pairs import Layout
from unet_lib.errors import InputError
from unet_lib.losses import make_loss
from unet_lib.metrics import IGNORE_INDEX

STREET_FLAGS = ["--images", "train", "--masks", "trainannot", "--val-images", "val", "--val-masks", "valannot"]
STREET = Layout("train", "trainannot", "val", "valannot", ignore_index=VOID)
SMALL = {"train": 6, "val": 3}  # pictures per split of the small street trees


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def street(tmp_path_factory):
    """A small CamVid-like tree (index masks, void 11, classes.txt with the 11 names)."""
    return write_street_tree(tmp_path_factory.mktemp("street"), SMALL, size=(64, 96), workers=1).root


def stored_masks(root, folder="trainannot") -> dict[str, np.ndarray]:
    return {path.stem: np.array(Image.open(path)) for path in sorted((root / folder).iterdir())}


def test_a_tree_as_it_comes_is_no_carvana_and_the_error_shows_the_flags(street, tmp_path, capsys):
    with pytest.raises(InputError) as error:
        detect_dataset(street)
    message = str(error.value)
    assert "Carvana tree (train/, train_masks/)" in message and "Download" not in message
    assert message.endswith(f"pass {' '.join(STREET_FLAGS)}")
    assert main(["check-data", str(street)]) == 2
    assert capsys.readouterr().err.strip().endswith(" ".join(STREET_FLAGS))
    real_like.write_microscopy_tree(tmp_path / "em", count=3, size=(32, 32))
    with pytest.raises(InputError, match="pass --images image --masks label$"):
        detect_dataset(tmp_path / "em")
    (tmp_path / "odd" / "stuff").mkdir(parents=True)
    with pytest.raises(InputError, match=r"pass --images DIR --masks DIR \[--val-images DIR --val-masks DIR\]$"):
        detect_dataset(tmp_path / "odd")


def test_check_data_reads_the_street_tree_with_its_flags(street, capsys):
    report = check_tree(street, layout=STREET, progress=False)
    assert report.ok, report.problems
    assert report.dataset == "folder" and report.pairs == sum(SMALL.values())
    assert report.class_names == list(CAMVID_CLASSES)  # classes.txt's 11 names; void is no class
    values = np.concatenate(
        [m.ravel() for m in stored_masks(street).values()]
        + [m.ravel() for m in stored_masks(street, "valannot").values()]
    )
    assert report.ignored_pixels == (values == VOID).sum() > 0
    assert report.class_pixels.tolist() == np.bincount(values[values != VOID], minlength=11).tolist()
    assert main(["check-data", str(street), *STREET_FLAGS, "--ignore-index", "11"]) == 0
    out = capsys.readouterr().out
    assert "6 in train/, 3 in val/" in out and "(value 11: --ignore-index, and 255)" in out
    # Without --ignore-index, 11 is a label beyond classes.txt's 11 classes: named, not trained on silently.
    report = check_tree(street, layout=Layout("train", "trainannot", "val", "valannot"), progress=False)
    assert any("labels beyond classes.txt" in problem and "11" in problem for problem in report.problems)


def test_the_dataset_maps_the_void_value_to_255(street):
    config = TrainConfig(
        dataset="folder", data_dir=str(street), image_size=(64, 96), augment="none", images_dir="train",
        masks_dir="trainannot", val_images_dir="val", val_masks_dir="valannot", ignore_index=VOID,
    )  # fmt: skip
    train, _ = build_datasets(config)
    stored = stored_masks(street)
    for index in range(len(train)):
        _, mask = train[index]
        expected = stored[train.ids[index]].astype(np.int64)
        expected[expected == VOID] = IGNORE_INDEX
        np.testing.assert_array_equal(mask.numpy(), expected)


@pytest.mark.parametrize("kind", ["palette", "rgb"])
def test_palette_and_colour_masks_read_as_the_same_indices(tmp_path, kind):
    index = write_street_tree(tmp_path / "index", {"train": 3}, size=(48, 64), workers=1)
    other = write_street_tree(tmp_path / kind, {"train": 3}, size=(48, 64), mask_kind=kind, workers=1)
    assert {Image.open(p).mode for p in (other.root / "trainannot").iterdir()} == {"P" if kind == "palette" else "RGB"}
    layout = Layout("train", "trainannot", ignore_index=VOID)
    read = {root: FolderDataset(root, "train", layout=layout, val_fraction=0.01) for root in (index.root, other.root)}
    for i in range(len(read[index.root].pairs)):
        np.testing.assert_array_equal(read[index.root].read_mask(i), read[other.root].read_mask(i))
    if kind == "rgb":  # 12 colour lines, void the last: --ignore-index 11 leaves the 11 classes
        classes = read_classes_file(other.root / "classes.txt", VOID)
        assert classes.names == CAMVID_CLASSES and classes.colors == CAMVID_COLOURS
    report = check_tree(other.root, layout=layout, progress=False)
    assert report.ok, report.problems
    assert {result.mask_mode for result in report.results} == {"P" if kind == "palette" else "RGB"}


def test_a_colour_not_in_the_table_is_named_with_its_file(tmp_path):
    tree = write_street_tree(tmp_path / "rgb", {"train": 3}, size=(48, 64), mask_kind="rgb", workers=1)
    path = sorted((tree.root / "trainannot").iterdir())[1]
    pixels = np.array(Image.open(path))
    pixels[:2, :3] = (1, 2, 3)
    Image.fromarray(pixels).save(path)
    report = check_tree(tree.root, layout=Layout("train", "trainannot", ignore_index=VOID), progress=False)
    assert report.problems == [
        f"{path}: 6 pixels have colours not in the 12 of classes.txt: (1 2 3); expected only the listed colours"
        " (saved without smoothing, as PNG)"
    ]
    (tree.root / "classes.txt").unlink()  # no table: a colour mask is refused, and the table named
    report = check_tree(tree.root, layout=Layout("train", "trainannot"), progress=False)
    assert "mask has 3 channels (RGB)" in report.problems[0] and "classes.txt (lines: name r g b)" in report.problems[0]


def test_classes_file_mixing_names_and_colours_is_refused(tmp_path):
    (tmp_path / "classes.txt").write_text("road 128 64 128\nsky\n")
    with pytest.raises(InputError, match=r"classes.txt: line 2: expected every line as 'name' or every line as"):
        read_classes_file(tmp_path / "classes.txt")
    (tmp_path / "classes.txt").write_text("traffic sign 220 220 0\nroad 128 64 300\n")
    with pytest.raises(InputError, match=r"line 2: colour 128 64 300; expected r g b values 0..255"):
        read_classes_file(tmp_path / "classes.txt")


@pytest.mark.parametrize("ending", ["", "_mask", "_L"])
def test_masks_pair_by_name_in_other_folders(tmp_path, ending):
    make_folder_tree(tmp_path, count=4, size=(32, 48), suffix=".png")
    (tmp_path / "images").rename(tmp_path / "image")
    (tmp_path / "label").mkdir()
    for path in sorted((tmp_path / "masks").iterdir()):
        path.rename(tmp_path / "label" / f"{path.stem}{ending}.png")
    layout = Layout("image", "label")
    dataset = FolderDataset(tmp_path, "train", layout=layout, val_fraction=0.25)
    assert [pair.mask.name for pair in dataset.pairs] == [f"{pair.id}{ending}.png" for pair in dataset.pairs]
    assert check_tree(tmp_path, layout=layout, progress=False).ok


def test_masks_beside_their_pictures_in_one_folder(tmp_path):
    make_folder_tree(tmp_path, count=4, size=(32, 48), suffix=".png")
    for path in (tmp_path / "masks").iterdir():
        path.rename(tmp_path / "images" / f"{path.stem}_mask.png")
    report = check_tree(tmp_path, layout=Layout("images", "images"), progress=False)
    assert report.ok and report.pairs == 4, report.problems
    assert sorted(r.mask_mode for r in report.results) == ["L"] * 4


def test_named_validation_folders_must_exist(tmp_path):
    make_folder_tree(tmp_path, count=4, size=(32, 48))
    report = check_tree(tmp_path, layout=Layout(val_images="test", val_masks="testannot"), progress=False)
    assert report.problems == [
        f"{tmp_path / 'test'}: folder not found (--val-images and --val-masks: relative to {tmp_path})"
    ]


def test_one_pair_is_a_problem_not_a_traceback(tmp_path, capsys):
    make_folder_tree(tmp_path, count=1, size=(32, 48))
    report = check_tree(tmp_path, progress=False)
    assert report.problems == [
        f"{tmp_path / 'images' / 'p0.jpg'}: the only picture with a mask; expected 2 or more (a share is held out"
        " for validation)"
    ]
    with pytest.raises(InputError, match="one picture only; expected 2 or more"):
        FolderDataset(tmp_path)
    code = main(["train", "folder", "--data", str(tmp_path), "--size", "32x48", "--features", "4,8", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "the only picture" in err


def test_check_data_prints_no_weight_without_foreground(tmp_path, capsys):
    make_folder_tree(tmp_path, count=3, size=(32, 48), classes=["background", "thing"])
    for path in (tmp_path / "masks").iterdir():
        Image.fromarray(np.zeros((32, 48), np.uint8)).save(path)
    assert main(["check-data", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert " nan" not in out and "  pos_weight      - (no foreground pixel read;" in out


def test_median_frequency_weights_by_hand(street):
    report = check_tree(street, layout=STREET, progress=False)
    pixels = report.class_pixels.astype(float)
    freq = pixels / pixels.sum()
    expected = [float(np.median(freq[freq > 0]) / f) if f else 0.0 for f in freq]
    assert loss_weights(report) == pytest.approx(expected, rel=1e-12)
    rare = [CAMVID_CLASSES.index(name) for name in ("pole", "sign", "pedestrian")]
    assert min(loss_weights(report)[i] for i in rare) > 1 > loss_weights(report)[CAMVID_CLASSES.index("road")]


def test_weighted_losses_equal_torch_with_the_weights():
    torch.manual_seed(0)
    logits, masks = torch.randn(2, 3, 5, 6), torch.randint(0, 3, (2, 5, 6))
    masks[0, 0, :3] = IGNORE_INDEX
    weights = [0.5, 2.0, 7.0]
    expected = F.cross_entropy(logits, masks, weight=torch.tensor(weights), ignore_index=IGNORE_INDEX)
    torch.testing.assert_close(make_loss("ce", 3, weights)(logits, masks), expected)
    binary, target = torch.randn(2, 1, 5, 6), torch.randint(0, 2, (2, 5, 6))
    expected = F.binary_cross_entropy_with_logits(binary, target[:, None].float(), pos_weight=torch.tensor([4.0]))
    torch.testing.assert_close(make_loss("bce", 1, [4.0])(binary, target), expected)
    unweighted = make_loss("bce_dice", 1)(binary, target) - F.binary_cross_entropy_with_logits(
        binary, target[:, None].float()
    )
    torch.testing.assert_close(make_loss("bce_dice", 1, [4.0])(binary, target), unweighted + expected)
    with pytest.raises(InputError, match="weights: the 'ce' loss takes 3 .* got 2"):
        make_loss("ce", 3, [1.0, 2.0])


def test_train_uses_check_datas_weights_and_evaluate_reads_the_stored_layout(street, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "folder", "--data", str(street), *STREET_FLAGS, "--ignore-index", "11", "--size", "64x96"]
    args += ["--features", "4,8", "--epochs", "1", "--batch-size", "2", "--cache", "none", "--out", str(out)]
    assert main([*args, "--class-weights", "median-frequency"]) == 0
    printed = capsys.readouterr().out
    config = TrainConfig.from_dict(load_checkpoint(out / "last.pt")["config"])
    expected = loss_weights(check_tree(street, layout=STREET, progress=False))
    assert list(config.loss_weights) == pytest.approx(expected, rel=1e-12)
    assert (config.images_dir, config.masks_dir, config.ignore_index) == ("train", "trainannot", VOID)
    assert (
        "cross-entropy, 11 and 255 ignored" in printed
        and "loss weights (median-frequency, from check-data): sky" in printed
    )
    # The layout is in the checkpoint: evaluate needs no flags for this tree, and others score a new split.
    assert main(["evaluate", "--checkpoint", str(out / "best.pt"), "--data", str(street), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["images"] == SMALL["val"] and set(scores["iou"]) == set(CAMVID_CLASSES)
    write_street_tree(street.parent / "more", {"test": 2}, size=(64, 96), workers=1)
    new = ["--val-images", "test", "--val-masks", "testannot"]
    assert (
        main(["evaluate", "--checkpoint", str(out / "best.pt"), "--data", str(street.parent / "more"), *new, "--json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["images"] == 2


def test_layout_flags_are_for_folder_data(tmp_path, capsys):
    code = main(["train", "carvana", "--data", str(tmp_path), "--images", "train"])
    assert code == 2 and "--images: says where folder data is" in capsys.readouterr().err


def test_grey_cell_pictures_with_0_255_labels(tmp_path, capsys):
    tree = tmp_path / "em"
    real_like.write_microscopy_tree(tree, count=4, size=(32, 32))
    assert main(["check-data", str(tree), "--images", "image", "--masks", "label"]) == 0
    out = capsys.readouterr().out
    assert "  pictures        4 L (read as RGB)" in out and "255 is the foreground" in out
    dataset = FolderDataset(tree, "train", layout=Layout("image", "label"))
    image, mask = dataset[0]
    stored = np.array(Image.open(tree / "label" / f"{dataset.ids[0]}.png"))
    assert image.shape == (3, 32, 32) and torch.equal(image[0], image[2])  # grey, as three equal channels
    np.testing.assert_array_equal(mask.numpy(), stored // 255)  # 255, the cells, is class 1


def test_analyze_reads_a_tree_as_it_comes_and_names_its_classes(street, tmp_path, capsys):
    """A CamVid-like tree (void 11) trained for one epoch: analyze scores its 3 validation pictures by the same
    confusion matrix as evaluate, names each class with the class it is taken for, and counts its regions."""
    run = tmp_path / "run"
    args = ["train", "folder", "--data", str(street), *STREET_FLAGS, "--ignore-index", str(VOID), "--recipe"]
    args += ["folder-quick", "--epochs", "1", "--features", "4,8", "--out", str(run), "--quiet", "--device", "cpu"]
    assert main(args) == 0
    scored = ["--checkpoint", str(run / "best.pt"), "--data", str(street), "--quiet", "--device", "cpu", "--json"]
    scored += ["--images", "val", "--masks", "valannot"]
    capsys.readouterr()
    assert main(["evaluate", *scored]) == 0
    evaluated = strict_json(capsys.readouterr().out)
    assert main(["analyze", *scored]) == 0
    analysed = strict_json(capsys.readouterr().out)
    assert analysed["images"] == len(analysed["pictures"]) == 3 and analysed["score_name"] == "miou"
    names = [row["name"] for row in analysed["classes"]]
    assert names == list(CAMVID_CLASSES) == list(evaluated["iou"])
    for row in analysed["classes"]:  # the same IoU as evaluate's, NaN (null) where the class is nowhere
        expected = evaluated["iou"][row["name"]]
        assert (row["iou"] is None) == (expected is None)
        assert row["iou"] is None or row["iou"] == pytest.approx(expected, abs=1e-6)
        assert row["taken_for"] is None or row["taken_for"] in names
    regions = sum(row["objects"] for row in analysed["by_size"])
    assert regions >= 3 * 2  # every picture has at least sky and road, and void is no region
    assert sum(row["pixels"] for row in analysed["by_size"]) == sum(p["labelled"] for p in analysed["pictures"])
