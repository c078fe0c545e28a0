"""One photo and what a model makes of it: the photo, the prediction painted over it, and the
probability of "car" with a colour bar (or, for a model of several classes, the colourised label map).
"""

from __future__ import annotations

import torch
from matplotlib.figure import Figure

from unet_lib.data.cityscapes import NUM_CLASSES
from unet_lib.errors import InputError
from unet_lib.viz.colors import colorize, overlay
from unet_lib.viz.common import as_mask2d, image_axis, new_figure, to_display

PROB_LABEL = "P(car)"  # the colour bar's label


def check_prediction(photo: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
    """``prediction`` as a CPU tensor ``[H, W]``, after checking that it matches the photo ``[3, H, W]``.

    Args:
        photo: The picture, uint8 or float ``[3, H, W]``.
        prediction: Float probabilities of "car" in [0, 1], or an integer label map (class ids below 19),
            ``[H, W]`` or ``[1, H, W]``.
    """
    prediction = as_mask2d(prediction, "prediction")
    if photo.ndim != 3 or photo.shape[0] != 3 or tuple(photo.shape[1:]) != tuple(prediction.shape):
        raise InputError(
            f"photo and prediction: expected [3, H, W] and [H, W], got {tuple(photo.shape)} and {tuple(prediction.shape)}"
        )
    if prediction.numel() == 0:
        return prediction
    low, high = prediction.min().item(), prediction.max().item()
    if prediction.is_floating_point() and not 0 <= low <= high <= 1:
        raise InputError("prediction: expected probabilities in [0, 1] (apply sigmoid to the logits first)")
    if not prediction.is_floating_point() and not 0 <= low <= high < NUM_CLASSES:
        raise InputError(f"prediction: expected class ids 0..{NUM_CLASSES - 1} (Cityscapes trainIds) in the label map")
    return prediction


def car_mask(prob: torch.Tensor, threshold: float) -> torch.Tensor:
    """Where the probability of car exceeds ``threshold``: bool ``[H, W]``."""
    if not 0 < threshold < 1:
        raise InputError(f"threshold: expected a probability strictly between 0 and 1, got {threshold}")
    return prob > threshold


def panel_titles(photo: torch.Tensor, prediction: torch.Tensor, threshold: float = 0.5) -> list[str]:
    """The titles of the three panels of :func:`show_photo_prediction`, e.g. ``"photo (1280x1918)"``.

    Sizes are written height x width, as ``--size`` and the rest of the project take them.
    """
    prediction = check_prediction(photo, prediction)
    height, width = prediction.shape
    if not prediction.is_floating_point():
        classes = len(prediction.unique())
        return [f"photo ({height}x{width})", "classes painted over the photo", f"label map: {classes} classes present"]
    share = car_mask(prediction, threshold).float().mean().item()
    return [
        f"photo ({height}x{width})",
        f"predicted car, {PROB_LABEL} > {threshold:.2f}: {share:.1%} of pixels",
        f"{PROB_LABEL}, the probability of car",
    ]


def show_photo_prediction(
    photo: torch.Tensor, prediction: torch.Tensor, threshold: float = 0.5, title: str | None = None
) -> Figure:
    """Three panels side by side: the photo, the prediction over it, and the probability map.

    Args:
        photo: uint8 or float ``[3, H, W]`` in [0, 1].
        prediction: Float ``[H, W]``: the probability of car of each pixel (a one-class model), shown with
            a colour bar from 0 to 1 labelled "P(car)" and painted red over the photo where it exceeds
            ``threshold``. Or an integer label map ``[H, W]`` (a model of several classes), painted in the
            Cityscapes trainId colours over the photo and on its own.
        threshold: Probability above which a pixel counts as car (ignored for a label map).
        title: The figure's title, e.g. the picture's file name.

    Returns:
        A Figure with three picture axes (and, for probabilities, a colour bar).
    """
    photo = torch.as_tensor(photo).detach().cpu()
    prediction = check_prediction(photo, prediction)
    titles = panel_titles(photo, prediction, threshold)
    height, width = prediction.shape
    fig = new_figure((12, 4 * height / width + 0.8))  # three panels of 4 inches wide, plus room for titles
    axes = fig.subplots(1, 3)
    axes[0].imshow(to_display(photo))
    if prediction.is_floating_point():
        painted = overlay(photo, car_mask(prediction, threshold).long(), "binary")  # car in red
        axes[1].imshow(to_display(painted))
        shown = axes[2].imshow(prediction.float().numpy(), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        fig.colorbar(shown, ax=axes[2], label=PROB_LABEL, shrink=0.8)
    else:
        labels = prediction.long()
        axes[1].imshow(to_display(overlay(photo, labels, "trainid")))
        axes[2].imshow(to_display(colorize(labels, "trainid")), interpolation="nearest")
    for ax, name in zip(axes, titles, strict=True):
        image_axis(ax, title=name)
    if title:
        fig.suptitle(title)
    return fig
