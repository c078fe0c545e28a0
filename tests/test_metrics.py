"""ConfusionMatrix, BinaryCounts and dice_per_image checked against torchmetrics and hand-computed examples."""

import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryF1Score,
    BinaryJaccardIndex,
    BinaryPrecision,
    BinaryRecall,
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassJaccardIndex,
    MulticlassPrecision,
    MulticlassRecall,
)
from torchmetrics.functional.classification import binary_f1_score

from unet_lib.cli.carvana import ThresholdCounts
from unet_lib.errors import InputError
from unet_lib.metrics import IGNORE_INDEX, BinaryCounts, ConfusionMatrix, binary_counts, binary_scores, dice_per_image


def random_batch(generator: torch.Generator, num_classes: int, shape=(2, 24, 20), ignored: float = 0.15):
    """Random (pred, target) label maps; about ``ignored`` of the target pixels are IGNORE_INDEX."""
    pred = torch.randint(0, num_classes, shape, generator=generator)
    target = torch.randint(0, num_classes, shape, generator=generator)
    target[torch.rand(shape, generator=generator) < ignored] = IGNORE_INDEX
    return pred, target


def test_multiclass_matches_torchmetrics_over_several_updates():
    num_classes = 5
    generator = torch.Generator().manual_seed(0)
    cm = ConfusionMatrix(num_classes)
    kwargs = {"num_classes": num_classes, "ignore_index": IGNORE_INDEX}
    reference = {
        "mat": MulticlassConfusionMatrix(**kwargs),
        "iou": MulticlassJaccardIndex(average=None, **kwargs),
        "miou": MulticlassJaccardIndex(average="macro", **kwargs),
        "pixel_accuracy": MulticlassAccuracy(average="micro", **kwargs),
        "precision": MulticlassPrecision(average=None, **kwargs),
        "recall": MulticlassRecall(average=None, **kwargs),
        "dice": MulticlassF1Score(average=None, **kwargs),
    }
    labelled = 0
    for _ in range(4):
        pred, target = random_batch(generator, num_classes)
        cm.update(pred, target)
        labelled += (target != IGNORE_INDEX).sum().item()
        for metric in reference.values():
            metric.update(pred, target)
    scores = cm.compute()

    assert torch.equal(scores["mat"], reference["mat"].compute())
    assert scores["mat"].dtype == torch.int64 and scores["mat"].sum() == labelled
    for key in ("iou", "precision", "recall", "dice"):
        assert scores[key].shape == (num_classes,)
        torch.testing.assert_close(scores[key], reference[key].compute().float(), msg=key)
    # Every class is present here, so the mean over present classes equals torchmetrics' macro mean.
    assert scores["miou"] == pytest.approx(reference["miou"].compute().item(), abs=1e-6)
    assert scores["pixel_accuracy"] == pytest.approx(reference["pixel_accuracy"].compute().item(), abs=1e-6)


def test_miou_leaves_out_classes_absent_from_prediction_and_ground_truth():
    # target: 0 0 0 1 1 255   pred: 0 0 1 1 0 2   (the last pixel is ignored, so its pred 2 does not count)
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 0, 1, 1, 0, 2]), torch.tensor([0, 0, 0, 1, 1, IGNORE_INDEX]))
    expected_mat = torch.tensor(
        [  # rows: true class, columns: predicted class
            [2, 1, 0],
            [1, 1, 0],
            [0, 0, 0],
        ]
    )
    scores = cm.compute()
    assert torch.equal(scores["mat"], expected_mat)
    # IoU0 = 2 / (3 + 3 - 2), IoU1 = 1 / (2 + 2 - 1), class 2 never appears: NaN, not 0.
    assert scores["iou"][:2].tolist() == pytest.approx([1 / 2, 1 / 3])
    assert math.isnan(scores["iou"][2])
    assert scores["miou"] == pytest.approx((1 / 2 + 1 / 3) / 2)  # not (1/2 + 1/3 + 0) / 3
    assert scores["pixel_accuracy"] == pytest.approx(3 / 5)
    assert scores["precision"][:2].tolist() == pytest.approx([2 / 3, 1 / 2])
    assert scores["recall"][:2].tolist() == pytest.approx([2 / 3, 1 / 2])
    assert scores["dice"][:2].tolist() == pytest.approx([4 / 6, 2 / 4])
    assert all(math.isnan(scores[key][2]) for key in ("precision", "recall", "dice"))


def test_miou_keeps_a_class_present_on_one_side_only():
    # Class 0 is only in the ground truth, class 2 only in the prediction: both count, with IoU 0.
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([2, 1]), torch.tensor([0, 1]))
    assert torch.equal(cm.mat, torch.tensor([[0, 0, 1], [0, 1, 0], [0, 0, 0]]))
    scores = cm.compute()
    assert scores["iou"].tolist() == [0.0, 1.0, 0.0]
    assert scores["miou"] == pytest.approx(1 / 3)
    assert scores["recall"][0] == 0 and math.isnan(scores["recall"][2])
    assert scores["precision"][2] == 0 and math.isnan(scores["precision"][0])


def test_binary_matches_torchmetrics():
    generator = torch.Generator().manual_seed(1)
    pred, target = random_batch(generator, 2, shape=(3, 16, 16))
    scores = binary_scores(binary_counts(pred, target))  # pooled over the 3 images, ignored pixels skipped
    cm = ConfusionMatrix(2)
    cm.update(pred.bool(), target)  # bool predictions are label maps too
    for key, metric in {
        "pixel_accuracy": BinaryAccuracy,
        "iou": BinaryJaccardIndex,
        "precision": BinaryPrecision,
        "recall": BinaryRecall,
    }.items():
        expected = metric(ignore_index=IGNORE_INDEX)(pred, target).item()
        assert scores[key] == pytest.approx(expected, abs=1e-6), key
    # Dice is the F1 score of the foreground: pooled in the matrix, per image (then averaged) in the counts.
    assert cm.compute()["dice"][1].item() == pytest.approx(BinaryF1Score(ignore_index=IGNORE_INDEX)(pred, target))
    per_image = [BinaryF1Score(ignore_index=IGNORE_INDEX)(p, t).item() for p, t in zip(pred, target, strict=True)]
    assert scores["dice"] == pytest.approx(sum(per_image) / len(per_image), abs=1e-6)


def test_binary_counts_at_several_thresholds_match_torchmetrics():
    generator = torch.Generator().manual_seed(4)
    logits = torch.randn(5, 1, 8, 6, generator=generator)
    target = (torch.rand(5, 8, 6, generator=generator) < 0.4).long()
    target[0, :2] = IGNORE_INDEX
    counts = ThresholdCounts([0.2, 0.5, 0.8])  # BinaryCounts, read as a sweep (worst)
    counts.update(logits[:2], target[:2])  # two batches: the images are concatenated in order
    counts.update(logits[2:], target[2:])
    for t, threshold in enumerate((0.2, 0.5, 0.8)):
        for n in range(5):
            keep = target[n] != IGNORE_INDEX
            pred, truth = logits[n, 0][keep].sigmoid() > threshold, target[n][keep] == 1
            expected = [(pred & truth).sum(), (pred & ~truth).sum(), (~pred & truth).sum(), (~pred & ~truth).sum()]
            assert counts.counts[t, n].tolist() == [int(v) for v in expected], (threshold, n)
    assert counts.scores(0.5) == binary_scores(binary_counts(logits[:, 0] > 0, target))
    assert counts.worst(2, 0.5) == torch.argsort(counts.dice()[1], stable=True)[:2].tolist()


def test_ignored_predictions_and_an_empty_matrix():
    generator = torch.Generator().manual_seed(2)
    pred, target = random_batch(generator, 4)
    cm = ConfusionMatrix(4)
    cm.update(torch.where(target == IGNORE_INDEX, 99, pred), target)  # under ignored pixels: anything goes
    assert torch.equal(cm.mat, _counts(pred, target, 4))
    assert math.isnan(ConfusionMatrix(4).compute()["miou"])


def _counts(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Confusion counts by a plain double loop, as an independent reference."""
    mat = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for p, t in zip(pred.flatten().tolist(), target.flatten().tolist(), strict=True):
        if t != IGNORE_INDEX:
            mat[t, p] += 1
    return mat


@pytest.mark.parametrize(
    ("pred", "target", "message"),
    [
        (torch.tensor([0, 3]), torch.tensor([0, 1]), r"pred: expected labels in 0\.\.2.*got 3"),
        (torch.tensor([0, -1]), torch.tensor([0, 1]), r"pred: expected labels in 0\.\.2.*got -1"),
        (torch.tensor([0, 1]), torch.tensor([0, 7]), r"target: expected labels in 0\.\.2.*got 7"),
        (torch.tensor([0, 1, 2]), torch.tensor([0, 1]), "same shape"),
        (torch.tensor([0.0, 1.0]), torch.tensor([0, 1]), "integer label maps"),
    ],
)
def test_update_rejects_bad_labels(pred, target, message):
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match=message):
        cm.update(pred, target)
    assert cm.mat.sum() == 0  # nothing half-counted


def _reduce_worker(rank: int, world_size: int, init_file: str, out_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        cm = ConfusionMatrix(2)
        cm.update(torch.tensor([rank, 1]), torch.tensor([0, 1]))  # rank 0: both right; rank 1: one wrong
        cm.reduce_from_all_processes()
        counts = BinaryCounts([0.5])
        num_images = 2 - rank  # rank 0 holds two images, rank 1 one: the gather pads and trims
        counts.update(torch.full((num_images, 1, 1, 2), 1.0), torch.tensor([[[1, rank]]]).expand(num_images, 1, 2))
        counts.reduce_from_all_processes()
        if rank == 0:
            torch.save({"mat": cm.mat, "counts": counts.counts}, out_file)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # starts two processes
def test_reduce_from_all_processes_sums_counts(tmp_path):
    cm = ConfusionMatrix(2)
    cm.update(torch.tensor([1]), torch.tensor([1]))
    cm.reduce_from_all_processes()  # not distributed: a no-op
    assert torch.equal(cm.mat, torch.tensor([[0, 0], [0, 1]]))

    out_file = tmp_path / "mat.pt"
    mp.spawn(_reduce_worker, args=(2, str(tmp_path / "init"), str(out_file)), nprocs=2)
    reduced = torch.load(out_file, weights_only=True)
    assert torch.equal(reduced["mat"], torch.tensor([[1, 1], [0, 2]]))
    # Every image of both ranks, in rank order: rank 0's two (one TP, one FP each), rank 1's one (two TP).
    assert reduced["counts"].tolist() == [[[1, 1, 0, 0], [1, 1, 0, 0], [2, 0, 0, 0]]]


def test_dice_per_image_hand_computed():
    pred = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]).reshape(4, 1, 2, 2)
    target = torch.tensor([[1, 0, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0], [0, 1, 1, 0]]).reshape(4, 2, 2)
    scores = dice_per_image(pred, target)
    # 2*1/(2+2), 2*3/(3+4), empty on empty, empty prediction on a non-empty mask
    assert scores.tolist() == pytest.approx([1 / 2, 6 / 7, 1.0, 0.0])
    assert scores.dtype == torch.float32
    assert torch.equal(dice_per_image(pred.bool(), target.bool()), scores)


def test_dice_per_image_matches_per_sample_f1():
    generator = torch.Generator().manual_seed(3)
    pred = torch.rand(6, 1, 12, 10, generator=generator) < 0.5
    target = (torch.rand(6, 12, 10, generator=generator) < 0.3).long()
    expected = torch.stack(
        [binary_f1_score(p.long().flatten(), t.flatten()) for p, t in zip(pred, target, strict=True)]
    )
    torch.testing.assert_close(dice_per_image(pred, target), expected.float())


@pytest.mark.parametrize(
    ("pred", "target", "message"),
    [
        (torch.zeros(2, 4, 4), torch.full((2, 4, 4), 2), "target: expected a binary mask"),
        (torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4), r"pred: expected a mask batch .*\(2, 3, 4, 4\)"),
        (torch.zeros(4, 4), torch.zeros(4, 4), "pred: expected a mask batch"),
        (torch.zeros(2, 4, 4), torch.zeros(2, 4, 5), "same size"),
    ],
)
def test_dice_per_image_rejects_bad_masks(pred, target, message):
    with pytest.raises(InputError, match=message):
        dice_per_image(pred, target)
