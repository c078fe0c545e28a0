"""The training doctor (``unet_lib.inspect.doctor``): each finding on a history made to show it, silence on a healthy
one, the lines ``train`` prints through ``Doctor``, and an all-background model that real training and validation
produce, which it must flag."""

import dataclasses
import math

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from unet_lib.config import recipe
from unet_lib.inspect.doctor import Doctor, diagnose
from unet_lib.losses import make_loss
from unet_lib.model import UNet
from unet_lib.training import fit

FALLING = [1.2, 1.1, 1.0, 0.95, 0.9, 0.85, 0.8, 0.78]  # a first epoch's first step losses, learning


def binary_row(epoch, train_loss, val_loss, **scores):
    return {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "first_losses": FALLING} | {
        "val_dice": 0.9, "val_precision": 0.9, "val_recall": 0.9, "val_pixel_accuracy": 0.95, "val_iou": 0.82,
    } | scores  # fmt: skip


HEALTHY = [binary_row(e, 1.0 / e, 1.1 / e) for e in range(1, 6)]


def test_a_healthy_run_gets_no_finding():
    assert diagnose(HEALTHY, ["background", "car"]) == []


def test_the_first_steps_rising_jumping_flat_or_not_finite():
    def first(losses):
        return diagnose([binary_row(1, 1.0, 1.0, first_losses=losses)], ["background", "car"], final=False)

    assert first([1.0, 1.0, 1.05, 1.1, 1.2, 1.25]) == [
        "loss: rose over the first 6 steps (1.0000 -> 1.2250): the learning rate is likely too high;"
        " try a lower --lr (lr-find suggests one)"
    ]
    assert first([1.0, 0.9, 2.5, 0.9, 0.8, 0.8])[0].startswith(
        "loss: jumped to 2.5000 in the first 6 steps (from 1.0000)"
    )
    assert first([0.693, 0.6931, 0.6929, 0.693, 0.693])[0].startswith(
        "loss: flat over the first 5 steps (about 0.6930)"
    )
    assert first([1.0, math.nan, 0.9, 0.8])[0].startswith("loss: not finite in the first steps")
    assert first(FALLING) == [] and first([1.0, 0.9]) == []  # too few steps to tell: nothing said


def test_predictions_all_one_class():
    black = binary_row(1, 0.7, 0.7, val_precision=math.nan, val_recall=0.0, val_dice=0.0)
    assert diagnose([black], ["background", "car"]) == [
        "predictions at epoch 1: no validation pixel is called car (an all-background mask) (common after one epoch;"
        " if it lasts); try --class-weights median-frequency or more epochs"
    ]
    white = binary_row(1, 0.7, 0.7, val_precision=0.3, val_recall=1.0, val_pixel_accuracy=0.3)
    assert diagnose([white], ["background", "car"])[0].startswith(
        "predictions at epoch 1: every validation pixel is called car (common after one epoch; if it lasts)"
    )
    road = {"epoch": 1, "train_loss": 1.0, "val_loss": 1.0, "val_miou": 0.2, "val_pixel_accuracy": 0.62}
    road["val_iou"] = [0.62, 0.0, math.nan]  # every pixel road: its IoU is the share of road pixels
    road["epoch"] = 4  # later: no "common after one epoch"
    assert diagnose([road], ["road", "sidewalk", "pole"], classes=False) == [
        "predictions at epoch 4: (almost) every validation pixel is called road; try --class-weights median-frequency"
        " or more epochs"
    ]
    assert diagnose([road | {"val_iou": [0.6, 0.1, math.nan]}], ["road", "sidewalk", "pole"]) == []
    # Measured on a street scene after one epoch: a few pixels called other classes, all wrong.
    bicyclist = road | {"epoch": 1, "val_iou": [0.0] * 10 + [0.013500962], "val_pixel_accuracy": 0.013492458}
    names = [f"class {i}" for i in range(10)] + ["bicyclist"]
    assert diagnose([bicyclist], names)[0].startswith(
        "predictions at epoch 1: (almost) every validation pixel is called bicyclist (common after one epoch"
    )
    almost_black = binary_row(2, 0.7, 0.7, val_precision=0.5, val_recall=0.004)
    assert diagnose([almost_black], ["background", "car"])[0].startswith(
        "predictions at epoch 2: almost no validation pixel is called car (an all-background mask)"
    )


def test_classes_never_predicted_are_named_at_the_end():
    row = {"epoch": 3, "train_loss": 0.5, "val_loss": 0.6, "val_pixel_accuracy": 0.8}
    row["val_iou"] = [0.8, 0.0, math.nan, 0.4, 0.0]  # pole absent from validation: not named
    names = ["road", "sidewalk", "pole", "car", "person"]
    assert diagnose([row], names) == [
        "classes never predicted right in validation (IoU 0): sidewalk, person; try --class-weights median-frequency"
    ]
    assert diagnose([row], names, weighted=True)[0].endswith("; more epochs, or more pictures of them")
    assert diagnose([row], names, final=False) == [] and diagnose([row], names, classes=False) == []


def test_overfitting_is_dated_from_the_epoch_after_validation_was_lowest():
    val = [1.0, 0.8, 0.7, 0.75, 0.8, 0.85]
    history = [binary_row(e, 1.0 - 0.1 * e, v) for e, v in enumerate(val, 1)]
    assert diagnose(history, ["background", "car"]) == [
        "overfitting from epoch 4: validation loss rose from 0.7000 (epoch 3) to 0.8500 while training loss fell"
        " from 0.7000 to 0.4000; best.pt is from the best epoch: stop earlier (--epochs), add augmentation or pictures"
    ]
    wobble = [binary_row(e, 1.0 - 0.1 * e, v) for e, v in enumerate([1.0, 0.8, 0.7, 0.72, 0.71], 1)]
    assert diagnose(wobble, ["background", "car"]) == []  # less than 10 % above the lowest: noise


def test_a_flat_run_and_a_blown_validation_loss():
    flat = [binary_row(e, 0.6931, 0.6931) for e in range(1, 5)]
    assert diagnose(flat, ["background", "car"]) == [
        "loss: flat over 4 epochs (about 0.6931); try a higher --lr (lr-find)"
    ]
    blown = binary_row(1, 1.59, 1.8e9)
    assert diagnose([blown], ["background", "car"], final=False)[0].startswith(
        "validation loss 1.8e+09 is more than 10 times the training loss 1.5900 (epoch 1)"
    )


def test_the_doctor_speaks_after_the_first_epoch_and_at_the_end_once_each():
    said = []
    doctor = Doctor(3, ["background", "car"], write=said.append)
    black = [binary_row(e, 0.8 - 0.1 * e, 0.8, val_precision=math.nan) for e in (1, 2, 3)]
    for epoch in range(1, 4):
        doctor(black[:epoch])
    assert diagnose(black[:1], ["background", "car"], final=False) == []  # after epoch 1: not yet
    assert said == [  # at the end, where it lasted
        "doctor: predictions at epoch 3: no validation pixel is called car (an all-background mask);"
        " try --class-weights median-frequency or more epochs",
    ]
    quiet = []
    healthy = Doctor(5, ["background", "car"], write=quiet.append)
    for epoch in range(1, 6):
        healthy(HEALTHY[:epoch])
    assert quiet == []


def test_real_training_of_a_model_that_calls_every_pixel_background_is_flagged(tmp_path, one_thread):
    """A U-Net whose last bias is -30 and whose learning rate is tiny: after a real epoch and a real validation,
    no pixel is called car, and the doctor says so."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(8, 3, 16, 16, generator=generator)
    pictures = TensorDataset(images, (images[:, 0] > 0.5).long())
    torch.manual_seed(0)
    model = UNet(3, 1, (4, 8))
    with torch.no_grad():
        model.final_conv.bias.fill_(-30.0)
    config = dataclasses.replace(recipe("quick"), lr=1e-9, num_epochs=1, image_size=(16, 16), batch_size=4)
    said = []
    loaders = (DataLoader(pictures, 4), DataLoader(pictures, 4))
    history = fit(model, loaders, make_loss("bce_dice", 1), config, tmp_path, on_epoch_end=Doctor(1, write=said.append))
    assert history[0]["val_dice"] == pytest.approx(0.0) and math.isnan(history[0]["val_precision"])
    assert len(history[0]["first_losses"]) == 2  # 8 pictures in batches of 4
    assert said == [  # its only epoch is its last: the final findings, and this one
        "doctor: predictions at epoch 1: no validation pixel is called object (an all-background mask) (common after"
        " one epoch; if it lasts); try --class-weights median-frequency or more epochs"
    ]
