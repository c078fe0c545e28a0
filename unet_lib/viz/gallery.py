"""Galleries a reader can check picture by picture: the photo, the overlay, the probability with a colour bar.

Each row names its picture (id and, when given, its Dice), so a reader can tell which car it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from matplotlib.figure import Figure

from unet_lib.errors import InputError
from unet_lib.viz.colors import outline, overlay
from unet_lib.viz.common import Images, as_batch, as_mask2d, grid_figure, image_axis, picture_tile, to_display


@dataclass(frozen=True)
class RowLabels:
    """What a gallery writes beside each row: the picture's name and, when given, its score."""

    names: Sequence[str] | None = None  # one per row, e.g. the picture ids; None for "picture i"
    scores: Sequence[float] | None = None  # one per row (e.g. its Dice), shown under its name; None for none
    metric: str = "Dice"  # what the scores are, written before each one


def _row_labels(count: int, names: Sequence[str] | None, scores: Sequence[float] | None, metric: str) -> list[str]:
    names = list(names) if names is not None else [f"picture {i}" for i in range(count)]
    if len(names) != count or (scores is not None and len(scores) != count):
        raise InputError(f"names and scores: expected {count} of each, one per picture")
    if scores is None:
        return names
    return [f"{name}\n{metric} {score:.3f}" for name, score in zip(names, scores, strict=True)]


def show_gallery(
    images: Images,
    probs: Images,
    masks: Images | None = None,
    labels: RowLabels | None = None,
    threshold: float = 0.5,
    title: str = "Predictions",
) -> Figure:
    """One row per picture: the photo, the prediction painted over it, and the probability map.

    The predicted car (probability above ``threshold``) is painted red; the reference mask, when
    given, is outlined in yellow on the same panel, so a miss shows as yellow line without red and
    a false alarm as red without a line. The probability panel has a colour bar from 0 to 1.

    Args:
        images: ``[B, 3, H, W]`` in [0, 1].
        probs: Car probabilities ``[B, 1, H, W]`` or ``[B, H, W]`` (``sigmoid`` of the logits).
        masks: Reference masks ``[B, H, W]`` (0/1), or None (e.g. the test photos).
        labels: Each row's name and score (:class:`RowLabels`), e.g.
            ``RowLabels(names=ids, scores=dice.tolist())``; None for "picture i" and no scores.
        threshold: Probability above which a pixel is called car.
        title: Figure title.
    """
    images, probs = as_batch(images, "images"), as_batch(probs, "probs")
    labels = RowLabels() if labels is None else labels
    row_labels = _row_labels(len(images), labels.names, labels.scores, labels.metric)
    fig, axes = grid_figure(len(images), 3, tile=picture_tile(images, width=2.6))
    shown = None
    for row, (image, prob) in enumerate(zip(images, probs, strict=True)):
        prob = as_mask2d(prob, "probs").float()
        painted = overlay(image, (prob > threshold).float())
        if masks is not None:
            painted = outline(painted, as_mask2d(masks[row], "masks"), color="yellow")
        axes[row, 0].imshow(to_display(image))
        axes[row, 1].imshow(to_display(painted))
        shown = axes[row, 2].imshow(prob.numpy(), cmap="viridis", vmin=0, vmax=1)
        second = f"prediction > {threshold:g} (red)" + (", reference (yellow)" if masks is not None else "")
        for col, name in enumerate(("photo", second, "probability of car")):
            image_axis(axes[row, col], title=name if row == 0 else None, ylabel=row_labels[row] if col == 0 else None)
    fig.colorbar(shown, ax=axes[:, 2], label="P(car)", shrink=0.8)
    fig.suptitle(title)
    return fig


def show_before_after(
    before: Images,
    after: Images,
    before_masks: Images,
    after_masks: Images,
    names: Sequence[str] | None = None,
    title: str = "Augmentation: the same picture before and after",
) -> Figure:
    """One row per picture: it as stored (resized), then as one augmented draw, each with its mask outlined.

    Args:
        before: ``[B, 3, H, W]`` pictures without augmentation.
        after: The same pictures after one random augmentation.
        before_masks: Their masks ``[B, H, W]``.
        after_masks: The augmented masks: the same transform moved them with the picture.
        names: Row labels, e.g. the picture ids.
        title: Figure title.
    """
    before, after = as_batch(before, "before"), as_batch(after, "after")
    labels = _row_labels(len(before), names, None, "")
    fig, axes = grid_figure(len(before), 2, tile=picture_tile(before, width=2.8))
    for row in range(len(before)):
        for col, (image, mask, name) in enumerate(
            ((before[row], before_masks[row], "as stored, mask outlined"), (after[row], after_masks[row], "augmented"))
        ):
            axes[row, col].imshow(to_display(outline(image, as_mask2d(mask, "masks"), color="yellow")))
            image_axis(axes[row, col], title=name if row == 0 else None, ylabel=labels[row] if col == 0 else None)
    fig.suptitle(title)
    return fig
