"""The error atlas (``unet_lib.inspect.analysis``) against counts made by hand and brute force: the boundary band
of a stripe and of random label maps, connected regions against a flood fill, recall by object size on objects of
known sizes, each class's IoU and the class it is taken for, and every picture's score, worst first."""

from collections import deque

import numpy as np
import pytest
import torch
from conftest import band_by_hand, bce_dice_by_hand

from unet_lib.evaluation import Batch
from unet_lib.inspect.analysis import Atlas, boundary_band, components, edges, paired_comparison
from unet_lib.losses import make_loss
from unet_lib.metrics import IGNORE_INDEX, dice_per_image


def binary_batch(preds: torch.Tensor, masks: torch.Tensor) -> Batch:
    """A batch whose logits say exactly ``preds`` (0/1 [B, H, W]) at the 0.5 threshold."""
    logits = (preds.float() * 2 - 1)[:, None] * 5  # (B, 1, H, W): +5 where 1, -5 where 0
    return Batch(None, torch.zeros(len(masks), 3, *masks.shape[-2:]), logits, masks)


def class_batch(preds: torch.Tensor, masks: torch.Tensor, num_classes: int) -> Batch:
    """A batch whose logits' argmax is ``preds`` (class indices [B, H, W])."""
    logits = torch.nn.functional.one_hot(preds, num_classes).permute(0, 3, 1, 2).float()  # (B, C, H, W)
    return Batch(None, torch.zeros(len(masks), 3, *masks.shape[-2:]), logits, masks)


def test_a_stripe_whose_boundary_moved_errs_in_the_band_and_a_blot_in_the_interior():
    """Left half 0, right half 1 (10x20): the edge pixels are columns 9 and 10, the 3 px band columns 6..13,
    80 of 200 pixels. The prediction's boundary sits 2 columns to the left (20 wrong pixels, all in the band)
    and it calls a 2x2 corner car (4 wrong pixels in the interior)."""
    mask = torch.zeros(1, 10, 20, dtype=torch.long)
    mask[:, :, 10:] = 1
    pred = torch.zeros_like(mask)
    pred[:, :, 8:] = 1
    pred[:, :2, :2] = 1
    assert edges(mask)[0].nonzero()[:, 1].unique().tolist() == [9, 10]
    assert boundary_band(mask, 3)[0].nonzero()[:, 1].unique().tolist() == list(range(6, 14))
    atlas = Atlas(1, band=3)
    atlas.update(binary_batch(pred, mask))
    band = atlas.compute()["boundary"]
    assert band == {
        "band_px": 3,
        "wrong": 24,
        "wrong_in_band": 20,
        "wrong_share_in_band": 20 / 24,
        "pixels_share_in_band": 80 / 200,
    }


@pytest.mark.parametrize("band", [0, 1, 3])
def test_the_band_is_every_pixel_within_the_square_around_an_edge_pixel(band):
    generator = torch.Generator().manual_seed(band)
    masks = torch.randint(0, 3, (2, 9, 13), generator=generator)
    masks[0, 2:5, 3:9] = IGNORE_INDEX  # void is a label like any other: its borders are boundaries
    expected = torch.stack([torch.from_numpy(band_by_hand(m.numpy(), band)) for m in masks])
    assert torch.equal(boundary_band(masks, band), expected)


def flood_fill(mask: np.ndarray) -> list[set]:
    """The 4-connected regions of a bool mask, each a set of (row, column), by breadth-first search."""
    seen, regions = np.zeros_like(mask), []
    for start in zip(*np.nonzero(mask), strict=True):
        if seen[start]:
            continue
        region, queue = set(), deque([start])
        seen[start] = True
        while queue:
            r, c = queue.popleft()
            region.add((int(r), int(c)))
            for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                if 0 <= nr < mask.shape[0] and 0 <= nc < mask.shape[1] and mask[nr, nc] and not seen[nr, nc]:
                    seen[nr, nc] = True
                    queue.append((nr, nc))
        regions.append(region)
    return regions


@pytest.mark.parametrize("seed", range(4))
def test_connected_regions_match_a_flood_fill(seed):
    generator = torch.Generator().manual_seed(seed)
    mask = torch.rand(23, 31, generator=generator) < 0.55  # many regions of odd shapes
    mask[5, :] = True  # and a comb: a row across the picture with long teeth below it
    mask[6:20, 1:30:2] = True
    labels = components(torch.stack([mask, ~mask]).long())  # two pictures: each region of either value
    for picture, values in enumerate((mask, ~mask)):
        found = [
            {(int(r), int(c)) for r, c in (labels[picture] == v).nonzero()} for v in labels[picture][values].unique()
        ]
        assert sorted(map(sorted, found)) == sorted(map(sorted, flood_fill(values.numpy())))
    assert not set(labels[0].unique().tolist()) & set(labels[1].unique().tolist())  # labels unique in the batch


def test_recall_by_object_size_on_objects_of_known_sizes():
    """In a 100x100 picture, COCO's limits scale to small < 33 px and large >= 300 px: a 3x3 object (small)
    is missed, the top half of a 10x10 (medium) is found, and a 20x20 (large) is found whole."""
    mask = torch.zeros(1, 100, 100, dtype=torch.long)
    mask[0, 5:8, 5:8] = 1
    mask[0, 30:40, 30:40] = 1
    mask[0, 60:80, 60:80] = 1
    pred = torch.zeros_like(mask)
    pred[0, 30:35, 30:40] = 1
    pred[0, 60:80, 60:80] = 1
    atlas = Atlas(1)
    atlas.update(binary_batch(pred, mask))
    rows = {row["bin"]: row for row in atlas.compute()["by_size"]}
    assert rows["small"] == dict(bin="small", min_px=0, max_px=33, objects=1, pixels=9, recall=0.0, found_over_half=0)
    assert rows["medium"] == dict(
        bin="medium", min_px=33, max_px=300, objects=1, pixels=100, recall=0.5, found_over_half=0
    )
    assert rows["large"] == dict(
        bin="large", min_px=300, max_px=None, objects=1, pixels=400, recall=1.0, found_over_half=1
    )


def test_each_class_iou_and_the_class_it_is_taken_for():
    """3 classes in 4x6: class 2's 6 pixels are predicted as 1 four times and as 0 once; void is left out."""
    mask = torch.tensor([[0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1], [2, 2, 2, 2, 2, 2], [255, 255, 0, 0, 1, 1]])[None]
    pred = torch.tensor([[0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 0, 2], [1, 1, 0, 0, 1, 1]])[None]
    atlas = Atlas(3)
    atlas.update(class_batch(pred, mask, 3))
    classes = {row["class"]: row for row in atlas.compute()["classes"]}
    # class 0: 8 pixels, 7 right, 1 taken for 1; predicted 0 on 8 labelled pixels (7 + 1 of class 2)
    assert classes[0] == {"class": 0, "iou": 7 / (8 + 8 - 7), "pixels": 8, "taken_for": 1, "taken_share": 1 / 8}
    # class 1: 8 pixels all right; predicted 1 on 8 + 1 (class 0) + 4 (class 2) labelled pixels
    assert classes[1] == {"class": 1, "iou": 8 / 13, "pixels": 8, "taken_for": None, "taken_share": None}
    assert classes[2] == {"class": 2, "iou": 1 / 6, "pixels": 6, "taken_for": 1, "taken_share": 4 / 6}


def test_every_picture_is_scored_and_listed_worst_first():
    generator = torch.Generator().manual_seed(0)
    masks = (torch.rand(5, 12, 16, generator=generator) > 0.5).long()
    preds = masks.clone()
    preds[1, :4] = 1 - preds[1, :4]  # a third wrong
    preds[3, :8] = 1 - preds[3, :8]  # two thirds wrong
    preds[4] = 0  # nothing found
    atlas = Atlas(1, make_loss("bce_dice", 1))
    atlas.update(binary_batch(preds[:3], masks[:3]))
    atlas.update(binary_batch(preds[3:], masks[3:]))  # indices run on across batches
    pictures = atlas.compute()["pictures"]
    dice = dice_per_image(preds, masks)
    assert [p["index"] for p in pictures] == dice.argsort().tolist()
    for p in pictures:
        i = p["index"]
        assert p["score"] == pytest.approx(dice[i].item())
        logits = binary_batch(preds[i : i + 1], masks[i : i + 1]).logits
        assert p["loss"] == pytest.approx(bce_dice_by_hand(logits, masks[i : i + 1]), rel=1e-5)
        assert p["wrong"] == (preds[i] != masks[i]).sum().item()


def test_several_classes_score_each_picture_by_the_classes_present():
    """mIoU of one picture over the classes in its reference or its prediction: class 2 appears in neither."""
    mask = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1]])[None]
    pred = torch.tensor([[0, 0, 0, 1], [0, 0, 3, 1]])[None]  # class 3 predicted where there is none
    atlas = Atlas(4)
    atlas.update(class_batch(pred, mask, 4))
    (picture,) = atlas.compute()["pictures"]
    # class 0: 4 / 5; class 1: 2 / 4; class 3: 0 / 1 (predicted, absent)
    assert picture["score"] == pytest.approx((4 / 5 + 2 / 4 + 0) / 3)


def test_the_paired_difference_and_its_bootstrap_interval_match_a_computation_by_hand():
    generator = np.random.default_rng(1)
    a = generator.uniform(0.85, 0.95, 40)
    b = a + generator.normal(0.004, 0.01, 40)  # B a little better on average, with much noise
    found = paired_comparison(torch.from_numpy(a), torch.from_numpy(b))
    diff = b - a
    means = diff[generator.integers(0, 40, (20_000, 40))].mean(1)  # another generator, the same procedure
    low, high = np.percentile(means, [2.5, 97.5])
    width = high - low
    assert found["mean_difference"] == pytest.approx(diff.mean(), abs=1e-12)
    assert found["interval"] == pytest.approx([low, high], abs=0.05 * width)  # two bootstraps agree to the noise
    assert (found["b_wins"], found["a_wins"], found["ties"]) == ((diff > 0).sum(), (diff < 0).sum(), 0)
    assert found["interval_contains_zero"] == (found["interval"][0] <= 0 <= found["interval"][1])
    assert (found["resamples"], found["seed"]) == (10_000, 0)
    assert paired_comparison(torch.from_numpy(a), torch.from_numpy(b)) == found  # seeded: the same every time
    clear = paired_comparison(torch.from_numpy(a), torch.from_numpy(a + 0.02))
    assert clear["interval"] == pytest.approx([0.02, 0.02]) and not clear["interval_contains_zero"]
    assert clear["b_wins"] == 40


def test_a_square_has_the_band_share_counted_by_hand():
    """A 4x4 square (rows and columns 4..7) in a 12x12 picture. Its edge pixels are its 12 outer pixels and the 16
    outside pixels beside its sides; the 1 px band around them is rows and columns 2..9 (64 px) less the 4
    corners, which touch no edge pixel: 60 of 144. The prediction also calls column 8 beside the square (4 px,
    in the band) and one far corner pixel (0, 11) car (in the interior)."""
    mask = torch.zeros(1, 12, 12, dtype=torch.long)
    mask[0, 4:8, 4:8] = 1
    assert edges(mask)[0].sum() == 12 + 16
    band = boundary_band(mask, 1)[0]
    assert band.sum() == 60 and not band[2, 2] and band[2, 3] and band[5, 5]
    pred = mask.clone()
    pred[0, 4:8, 8] = 1
    pred[0, 0, 11] = 1
    atlas = Atlas(1, band=1)
    atlas.update(binary_batch(pred, mask))
    found = atlas.compute()["boundary"]
    assert (found["wrong"], found["wrong_in_band"]) == (5, 4)
    assert found["wrong_share_in_band"] == 4 / 5 and found["pixels_share_in_band"] == 60 / 144
