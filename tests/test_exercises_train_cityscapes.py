"""The checks of train_cityscapes' exercises: a right answer (computed here, independently) passes, a wrong one is
refused with a hint, and ``...`` is "not tried yet"."""

import numpy as np
import pytest
import torch
from exercises.train_cityscapes import (
    check_exercise_1,
    check_exercise_2,
    check_exercise_3,
    check_exercise_4,
    check_exercise_5,
    check_exercise_6,
)

from unet_lib.data.cityscapes import CLASS_NAMES


def refused(capsys, check, answer, *context, hint: str = "") -> None:
    assert check(answer, *context) is False
    out = capsys.readouterr().out
    assert "not yet. Hint:" in out and hint in out


def test_not_tried_yet(capsys):
    mat = torch.eye(3, dtype=torch.long)
    masks = torch.zeros(1, 2, 2, dtype=torch.long)
    tiny = torch.zeros(1, 3, 1, 2), torch.zeros(1, 1, 2, dtype=torch.long)
    for check, context in [
        (check_exercise_1, ([7],)),
        (check_exercise_2, tiny),
        (check_exercise_3, ([1, 2, 3],)),
        (check_exercise_4, (masks, 0, 19)),
        (check_exercise_5, ([0.5] * 19, CLASS_NAMES)),
        (check_exercise_6, (mat,)),
    ]:
        assert check(..., *context) is False
        assert "not tried yet" in capsys.readouterr().out


def test_exercise_1_label_ids_to_train_ids(capsys):
    pixels = [7, 11, 26, 1, 24, 33, 9]
    assert check_exercise_1([0, 2, 13, 255, 11, 18, 255], pixels)  # read off the official table by hand
    assert "right" in capsys.readouterr().out
    refused(capsys, check_exercise_1, [0, 2, 13, 1, 11, 18, 255], pixels, hint="not one of the 19")  # ego vehicle
    refused(capsys, check_exercise_1, [7, 11, 26, 255, 24, 33, 255], pixels, hint="labelId 7 is wrong")
    refused(capsys, check_exercise_1, [0, 2], pixels, hint="expected 7 numbers")


def test_exercise_2_the_loss_over_the_labelled_pixels_only(capsys):
    logits = torch.tensor([[2.0, 0.5, -1.0, 0.0], [0.0, 1.5, 0.5, 3.0], [-1.0, 0.0, 2.0, 0.0]])[None, :, None]
    target = torch.tensor([0, 255, 2, 255])[None, None]
    p = logits[0, :, 0].softmax(0)  # (3, 4)
    losses = -torch.log(torch.stack([p[0, 0], p[2, 2]]))  # pixels 0 and 2, by hand
    assert check_exercise_2(losses.mean().item(), logits, target)
    refused(capsys, check_exercise_2, losses.sum().item() / 4, logits, target, hint="divided by every pixel")
    refused(capsys, check_exercise_2, 0.5, logits, target, hint="labelled pixels only")
    right = losses.mean().item()
    assert check_exercise_2(float(f"{right:.2g}"), logits, target)  # rounded to 2 figures: still right
    refused(capsys, check_exercise_2, float(f"{right:.2g}") + 0.01, logits, target, hint="labelled pixels only")


def test_exercise_3_median_frequency_weights(capsys):
    # Shares 0.6, 0.3, 0.08, 0.02 (and 0): the median of the four present is (0.3 + 0.08) / 2 = 0.19.
    right = [0.19 / 0.6, 0.19 / 0.3, 0.19 / 0.08, 0.19 / 0.02, 0.0]
    pixels = [600, 300, 80, 20, 0]
    assert check_exercise_3(right, pixels)
    median_of_all = 0.08  # the median of all five shares, the absent one included
    wrong = [median_of_all / f for f in (0.6, 0.3, 0.08, 0.02)] + [0.0]
    refused(capsys, check_exercise_3, wrong, pixels, hint="median over the classes that have pixels")
    refused(capsys, check_exercise_3, [*right[:4], 1.0], pixels, hint="weight 0")
    refused(capsys, check_exercise_3, [1.0] * 5, pixels)
    assert check_exercise_3([0.317, 0.633, 2.38, 9.5, 0], pixels)  # as the success message prints them
    assert check_exercise_3([0.32, 0.63, 2.4, 9.5, 0], pixels)  # two significant figures
    refused(capsys, check_exercise_3, [0.3, 0.6, 2, 10, 0], pixels, hint="rounded too coarsely")  # 1 figure
    refused(capsys, check_exercise_3, [0.3, 0.6, 2.3, 9.3, 0], pixels, hint="median")  # wrong sums, not rounding


def test_exercise_4_one_class_everywhere(capsys):
    masks = torch.tensor([[[0, 0, 1, 255], [0, 2, 2, 255]]])  # 6 labelled: three 0s, one 1, two 2s
    # Class 0 everywhere: accuracy 3/6, IoU of class 0 = 3/6, classes 1 and 2 IoU 0: mIoU (1/2) / 3.
    assert check_exercise_4((0.5, 0.5 / 3), masks, 0, 19)
    refused(capsys, check_exercise_4, (0.5, 0.5 / 19), masks, 0, 19, hint="classes present")
    refused(capsys, check_exercise_4, (3 / 8, 0.5 / 3), masks, 0, 19, hint="pixel accuracy")
    refused(capsys, check_exercise_4, (0.5, 0.5), masks, 0, 19, hint="IoU 0")
    # Every class present: 19 classes, class 0 on 20 of 38 pixels; dividing by 20 (255 counted as a class) is wrong.
    every = torch.cat([torch.zeros(19, dtype=torch.long), torch.arange(19), torch.full((5,), 255)])[None, None]
    share = 20 / 38
    assert check_exercise_4((share, share / 19), every, 0, 19)
    assert check_exercise_4((float(f"{share:.3g}"), float(f"{share / 19:.3g}")), every, 0, 19)  # 3 significant figures
    refused(capsys, check_exercise_4, (share, share / 20), every, 0, 19, hint="255 is not a class")
    refused(capsys, check_exercise_4, (share, 0.028), every, 0, 19, hint="3 significant figures")
    # A class absent from the labels but predicted everywhere is present too: accuracy 0, mIoU 0.
    assert check_exercise_4((0.0, 0.0), masks, 5, 19)


def test_exercise_5_classes_at_iou_zero(capsys):
    iou = [0.9, 0.0, float("nan"), 0.3, 0.0] + [0.5] * 14
    assert check_exercise_5(["sidewalk", "fence"], iou, CLASS_NAMES)  # IoU exactly 0; NaN (wall) is not 0
    refused(capsys, check_exercise_5, ["sidewalk"], iou, CLASS_NAMES, hint="1 missing")
    refused(capsys, check_exercise_5, ["sidewalk", "fence", "wall"], iou, CLASS_NAMES, hint="got some pixels right")
    refused(capsys, check_exercise_5, ["sidewalk", "fences"], iou, CLASS_NAMES, hint="not class names")
    refused(capsys, check_exercise_5, "sidewalk", iou, CLASS_NAMES, hint="one string")


def test_exercise_6_miou_of_a_small_matrix(capsys):
    mat = torch.tensor([[50, 5, 0, 0], [10, 20, 0, 5], [0, 0, 0, 0], [5, 0, 0, 10]])
    # IoU by hand: 50 / (55 + 65 - 50), 20 / (35 + 25 - 20), class 2 absent, 10 / (15 + 15 - 10).
    ious = [50 / 70, 20 / 40, 10 / 20]
    assert check_exercise_6(np.mean(ious), mat)
    assert check_exercise_6(0.57, mat)  # two decimals
    refused(capsys, check_exercise_6, sum(ious) / 4, mat, hint="nanmean")
    refused(capsys, check_exercise_6, 80 / 105, mat, hint="pixel accuracy")
    refused(capsys, check_exercise_6, 0.9, mat, hint="row c's sum")


@pytest.mark.parametrize("answer", ["abc", [1, 2, 3]])
def test_a_wrong_kind_of_answer_is_a_hint(capsys, answer):
    assert check_exercise_6(answer, torch.eye(2)) is False
    assert "Hint" in capsys.readouterr().out
