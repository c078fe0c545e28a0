"""Cityscapes scores against the official definitions, re-written here in plain numpy over labelIds."""

import fnmatch
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make_cityscapes_tree
from PIL import Image
from torchvision.datasets import Cityscapes

from unet_lib import InputError, UNet
from unet_lib.cli.cityscapes import (
    CATEGORY_NAMES,
    VOID,
    OfficialScores,
    cityscapes_scores,
    write_cityscapes_predictions,
)
from unet_lib.cli.full_res import with_full_masks
from unet_lib.cli.pictures import Inference
from unet_lib.data import CityscapesDataset
from unet_lib.data.io import read_image
from unet_lib.data.transforms import resize_pair
from unet_lib.evaluation import evaluate

SIZE = (32, 64)  # (H, W) the tiny networks see; the files are 128x64
HOW = Inference(SIZE, batch_size=2, progress=False)


def evaluate_cityscapes(model, dataset):
    """The official scores of ``model`` on ``dataset``'s split, as ``python -m unet_lib evaluate`` counts them."""
    sized = CityscapesDataset(dataset.root, dataset.split, size=SIZE)
    return evaluate(model, with_full_masks(sized, batch_size=2), [OfficialScores()], progress=False)


# Ground truth stripes: evaluated classes of every category but "human", plus ids the evaluation ignores
# (unlabeled 0, static 4, parking 9, guard rail 14, caravan 29).
LABEL_IDS = [0, 4, 7, 8, 9, 11, 13, 14, 17, 20, 21, 23, 26, 29, 31]
LABELS = {c.id: c for c in Cityscapes.classes if c.id >= 0}  # labelId -> its official record
EVALUATED = [i for i, c in LABELS.items() if not c.ignore_in_eval]


@pytest.fixture(scope="module")
def cityscapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("cityscapes_eval") / "cityscapes"
    make_cityscapes_tree(root, label_ids=LABEL_IDS, size=(128, 64), per_split=3)
    return root


def random_model(num_classes: int, dataset: CityscapesDataset | None = None, seed: int = 0) -> UNet:
    """A random U-Net; with a dataset, each class's logit is standardised on its pictures so that many classes win."""
    torch.manual_seed(seed)
    model = UNet(3, num_classes, (4, 8)).eval()
    if dataset is not None:
        images = torch.stack([resize_pair(read_image(p), None, SIZE)[0].float() / 255 for p in dataset.images])
        with torch.no_grad():
            logits = model(images)  # (B, C, H, W)
            mean, std = logits.mean((0, 2, 3)), logits.std((0, 2, 3))
            model.final_conv.weight /= std[:, None, None, None]
            model.final_conv.bias.sub_(mean).div_(std)
    return model


def official_scores(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """The official evalPixelLevelSemanticLabeling, written from its definitions over a labelId matrix."""
    n = max(LABELS) + 1
    conf = np.zeros((n, n), dtype=np.int64)  # rows: true labelId, columns: predicted labelId
    for pred, gt in pairs:
        conf += np.bincount(gt.astype(np.int64).ravel() * n + pred.ravel(), minlength=n * n).reshape(n, n)

    def iou(true_ids: list[int]) -> float:
        tp = conf[np.ix_(true_ids, true_ids)].sum()
        fn = conf[true_ids, :].sum() - tp  # everything else predicted on these pixels, ignored ids too
        others = [i for i in EVALUATED if i not in true_ids]  # ground truth of ignored ids never counts
        fp = conf[np.ix_(others, true_ids)].sum()
        return tp / (tp + fp + fn) if tp + fp + fn else math.nan

    classes = {LABELS[i].name: iou([i]) for i in EVALUATED}
    categories = {}
    for category in dict.fromkeys(c.category for c in sorted(LABELS.values(), key=lambda c: c.category_id)):
        members = [i for i in EVALUATED if LABELS[i].category == category]
        if members:
            categories[category] = iou(members)
    return {
        "iou": classes,
        "miou": np.nanmean(list(classes.values())),
        "category_iou": categories,
        "category_miou": np.nanmean(list(categories.values())),
        "pixel_accuracy": sum(conf[i, i] for i in EVALUATED) / conf[EVALUATED, :].sum(),
    }


def official_match(results, gt_file):
    """The single file the official script finds for a ground truth: ``<city>_<seq>_<frame>*.png``, recursively."""
    city, seq, frame = gt_file.name.split("_")[:3]
    found = [p for p in results.rglob("*") if fnmatch.fnmatch(p.name, f"{city}_{seq}_{frame}*.png")]
    assert len(found) == 1, found
    return found[0]


def test_scores_of_a_hand_made_confusion_matrix():
    mat = torch.zeros(VOID + 1, VOID + 1, dtype=torch.int64)
    road, sidewalk, building, pole, car = 0, 1, 2, 5, 13  # trainIds
    mat[road, road], mat[road, sidewalk], mat[road, VOID] = 8, 2, 4
    mat[sidewalk, sidewalk], mat[sidewalk, road] = 3, 1
    mat[building, building], mat[building, road], mat[building, pole] = 5, 2, 1
    mat[car, car], mat[car, building] = 6, 1
    scores = cityscapes_scores(mat)
    # road: TP 8, FN 2 + 4 (void counts), FP 1 + 2; pole: predicted once, never true -> 0, and in the mean.
    expected = {"road": 8 / 17, "sidewalk": 3 / 6, "building": 5 / 9, "pole": 0.0, "car": 6 / 7}
    assert {k: v for k, v in scores["iou"].items() if not math.isnan(v)} == pytest.approx(expected)
    assert scores["miou"] == pytest.approx(sum(expected.values()) / 5)
    # flat = road + sidewalk: TP 8 + 2 + 1 + 3, FN 4 (void), FP 2 (building as road).
    # construction: TP 5, FN 2 + 1, FP 1; object: FP 1 only; vehicle: TP 6, FN 1.
    categories = {"flat": 14 / 20, "construction": 5 / 9, "object": 0.0, "vehicle": 6 / 7}
    assert {k: v for k, v in scores["category_iou"].items() if not math.isnan(v)} == pytest.approx(categories)
    assert scores["category_miou"] == pytest.approx(sum(categories.values()) / 4)
    assert scores["pixel_accuracy"] == pytest.approx(22 / 33)
    assert CATEGORY_NAMES == ["flat", "construction", "object", "nature", "sky", "human", "vehicle"]


@pytest.mark.parametrize("num_classes", [19, 34])
def test_scores_equal_the_official_definitions_on_the_written_files(cityscapes, tmp_path, num_classes):
    dataset = CityscapesDataset(cityscapes, "val")
    model = random_model(num_classes, dataset)
    with torch.no_grad():
        model.final_conv.bias[11 if num_classes == 19 else 24] = -1e4  # never "person", which has no ground truth
    results = tmp_path / "results"
    write_cityscapes_predictions(model, dataset, results, HOW)
    pairs = []
    for gt_file in sorted((cityscapes / "gtFine" / "val").glob("*/*_gtFine_labelIds.png")):
        pairs.append((np.array(Image.open(official_match(results, gt_file))), np.array(Image.open(gt_file))))
    expected = official_scores(pairs)
    scores = evaluate_cityscapes(model, dataset)

    for key in ("iou", "category_iou"):
        assert list(scores[key]) == list(expected[key])
        np.testing.assert_allclose(list(scores[key].values()), list(expected[key].values()), rtol=1e-12)
    for key in ("miou", "category_miou", "pixel_accuracy"):
        assert scores[key] == pytest.approx(expected[key], rel=1e-12)
    # The case is not trivial: several classes predicted, some classes absent (NaN), some scored 0.
    predicted = np.unique(np.concatenate([pred.ravel() for pred, _ in pairs]))
    assert len(predicted) >= 4
    assert math.isnan(scores["iou"]["person"]) and 0.0 in scores["iou"].values()
    if num_classes == 34:
        assert any(LABELS[i].ignore_in_eval for i in predicted)  # predictions the evaluation counts as void


def test_written_files_are_full_resolution_labelids_in_the_official_colours(cityscapes, tmp_path):
    dataset = CityscapesDataset(cityscapes, "val")
    model = random_model(19, dataset, seed=1)
    write_cityscapes_predictions(model, dataset, tmp_path, HOW)
    to_label_id = np.array([next(c.id for c in LABELS.values() if c.train_id == t) for t in range(19)])
    colors = {i: c.color for i, c in LABELS.items()}
    for image_id, image_path in zip(dataset.ids, dataset.images, strict=True):
        small, _ = resize_pair(read_image(image_path), None, SIZE)
        with torch.no_grad():
            logits = F.interpolate(model(small[None].float() / 255), size=(64, 128), mode="bilinear")[0]
        top2 = logits.topk(2, dim=0).values
        written = np.array(Image.open(tmp_path / f"{image_id}_leftImg8bit.png"))
        assert written.shape == (64, 128) and written.dtype == np.uint8
        differ = written != to_label_id[logits.argmax(0).numpy()]
        assert ((top2[0] - top2[1]).numpy()[differ] < 1e-4).all()  # other batches: only near-ties may flip
        color = np.array(Image.open(tmp_path / "color" / f"color_{image_id}.png"))
        expected = np.array([colors[i] for i in written.ravel()], dtype=np.uint8).reshape(64, 128, 3)
        np.testing.assert_array_equal(color, expected)


def test_existing_results_are_kept_and_odd_models_refused(cityscapes, tmp_path):
    dataset = CityscapesDataset(cityscapes, "val")
    write_cityscapes_predictions(random_model(19), dataset, tmp_path, HOW)
    with pytest.raises(InputError, match="already exists"):
        write_cityscapes_predictions(random_model(19), dataset, tmp_path, HOW)
    with pytest.raises(InputError, match="predicts 5 classes"):
        evaluate_cityscapes(random_model(5), dataset)
