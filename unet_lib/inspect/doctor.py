"""The training doctor: what a run's history says went wrong, one line per finding with what to try, and nothing
when nothing did. ``train`` runs it after the first epoch and at the end (``Doctor`` as ``on_epoch_end``);
``python -m unet_lib doctor RUN_DIR`` reads a run's ``history.json`` afterwards."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

JUMP = 2.0  # a step's loss this many times the first step's, in the first steps: the rate is too high
RISING = 0.1  # the first steps' loss ended this much (relative) above where it started: the rate is too high
FLAT = 0.01  # a loss that moved less than this (relative) over the first steps or over the run is flat
BLOWN = 10.0  # validation loss this many times the training loss
OVERFIT_RISE = 0.1  # validation loss this much above its lowest, at least OVERFIT_EPOCHS epochs after it
OVERFIT_EPOCHS = 2
EARLY = " (common after one epoch; if it lasts)"
ONE_CLASS = 0.01  # (almost) all one class: within 1 % of it


def finite(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def first_steps(history: Sequence[dict]) -> list[str]:
    """The first epoch's first steps: a loss that is not finite, rises or stays flat."""
    losses = history[0].get("first_losses") or []
    if len(losses) < 4:
        return []
    if not all(finite(v) for v in losses):
        return ["loss: not finite in the first steps; lower --lr, or check the masks with check-data"]
    start, end = sum(losses[:2]) / 2, sum(losses[-2:]) / 2  # two steps each: one batch's loss is noisy
    if max(losses) > JUMP * losses[0]:
        return [
            f"loss: jumped to {max(losses):.4f} in the first {len(losses)} steps (from {losses[0]:.4f}): the learning"
            " rate is likely too high; try a lower --lr (lr-find suggests one)"
        ]
    if end > start * (1 + RISING):
        return [
            f"loss: rose over the first {len(losses)} steps ({start:.4f} -> {end:.4f}): the learning rate is likely"
            " too high; try a lower --lr (lr-find suggests one)"
        ]
    if abs(end - start) < FLAT * abs(start) and max(losses) - min(losses) < FLAT * abs(start):
        return [
            f"loss: flat over the first {len(losses)} steps (about {start:.4f}): nothing is learned; try a higher"
            " --lr, or check that the masks hold the classes (check-data)"
        ]
    return []


def one_class(row: dict, names: Sequence[str]) -> list[str]:
    """Validation predictions that are (almost) all one class. Two classes: (almost) no pixel called the object, the
    all-black mask (recall below ``ONE_CLASS``), or (almost) every pixel (recall 1, precision near pixel accuracy).
    More: one class alone predicted right anywhere, whose IoU is near the pixel accuracy: its pixels and the pixels
    called it then cover (almost) the whole picture."""
    epoch, early = row["epoch"], EARLY if row["epoch"] == 1 else ""
    accuracy = row.get("val_pixel_accuracy")
    if "val_dice" in row:
        precision, recall = row.get("val_precision"), row.get("val_recall")
        if not finite(precision) or (finite(recall) and recall < ONE_CLASS):  # (almost) nothing called the object
            return [
                f"predictions at epoch {epoch}: {'no' if not finite(precision) else 'almost no'} validation pixel is"
                f" called {names[-1]} (an all-{names[0]} mask){early}; try --class-weights median-frequency or more epochs"
            ]
        if recall == 1 and finite(accuracy) and abs(precision - accuracy) <= ONE_CLASS * accuracy:
            return [
                f"predictions at epoch {epoch}: every validation pixel is called {names[-1]}{early};"
                " try a lower --lr, or check the masks (check-data)"
            ]
        return []
    ious = row.get("val_iou") or []
    found = [i for i, v in enumerate(ious) if finite(v) and v > 0]
    if len(found) == 1 and finite(accuracy) and accuracy > 0 and abs(ious[found[0]] / accuracy - 1) <= ONE_CLASS:
        return [
            f"predictions at epoch {epoch}: (almost) every validation pixel is called {names[found[0]]}{early};"
            " try --class-weights median-frequency or more epochs"
        ]
    return []


def validation_blown(row: dict) -> list[str]:
    """A validation loss many times the training loss: BatchNorm's running statistics thrown off, as a rate far too
    high does in the first epochs (the training loss, with the batch's own statistics, looks normal)."""
    val, train = row.get("val_loss"), row.get("train_loss")
    if finite(train) and train > 0 and (not finite(val) or val > BLOWN * train):
        return [
            f"validation loss {val:.4g} is more than {BLOWN:g} times the training loss {train:.4f} (epoch {row['epoch']}):"
            " BatchNorm's running statistics were thrown off, usually by a learning rate far too high; lower --lr"
        ]
    return []


def never_predicted(row: dict, names: Sequence[str], weighted: bool) -> list[str]:
    """Classes present in the validation pictures but never predicted right (IoU 0)."""
    ious = row.get("val_iou")
    if not isinstance(ious, list):  # two classes: one IoU, the object's
        return []
    never = [names[i] for i, v in enumerate(ious) if finite(v) and v == 0]
    if not never:
        return []
    hint = "more epochs, or more pictures of them" if weighted else "try --class-weights median-frequency"
    return [f"classes never predicted right in validation (IoU 0): {', '.join(never)}; {hint}"]


def overfitting(history: Sequence[dict]) -> list[str]:
    """Validation loss rising while training loss falls: from the epoch after validation's lowest."""
    losses = [(row["epoch"], row.get("val_loss"), row.get("train_loss")) for row in history]
    losses = [(e, v, t) for e, v, t in losses if finite(v) and finite(t)]
    if len(losses) < OVERFIT_EPOCHS + 1:
        return []
    best = min(range(len(losses)), key=lambda i: losses[i][1])
    after = losses[best + 1 :]
    epoch, low, train_then = losses[best]
    if len(after) < OVERFIT_EPOCHS or not all(v > low for _, v, _ in after):
        return []
    _, last, train_now = losses[-1]
    if last < low * (1 + OVERFIT_RISE) or train_now >= train_then:
        return []
    return [
        f"overfitting from epoch {epoch + 1}: validation loss rose from {low:.4f} (epoch {epoch}) to {last:.4f} while"
        f" training loss fell from {train_then:.4f} to {train_now:.4f}; best.pt is from the best epoch: stop"
        " earlier (--epochs), add augmentation or pictures"
    ]


def flat_run(history: Sequence[dict]) -> list[str]:
    """A training loss that hardly moved over the whole run."""
    losses = [row.get("train_loss") for row in history]
    if len(losses) < 3 or not all(finite(v) for v in losses):
        return []
    if max(losses) - min(losses) < FLAT * abs(losses[0]):
        return [f"loss: flat over {len(losses)} epochs (about {losses[0]:.4f}); try a higher --lr (lr-find)"]
    return []


def generic_names(row: dict) -> list[str]:
    """Names for a run whose classes are not known here: ``background`` and ``object``, or ``class 0``, ..."""
    ious = row.get("val_iou") or []
    return ["background", "object"] if "val_dice" in row else [f"class {i}" for i in range(len(ious))]


def diagnose(
    history: Sequence[dict], names: Sequence[str] = (), weighted: bool = False, final: bool = True, classes: bool = True
) -> list[str]:
    """Every finding about a run, one line each with what to try; empty when nothing is wrong.

    Args:
        history: ``fit``'s rows (or ``history.json``), the epochs so far.
        names: The class names, background first (two for a binary model); empty: generic ones.
        weighted: The loss is already weighed by the classes' shares (``--class-weights``).
        final: The run is over: also what the last epoch or every epoch shows (predictions all one class,
            overfitting, a flat run, classes never predicted).
        classes: Report the classes never predicted (``train`` prints them itself at the end of a run).
    """
    if not history:
        return []
    names = names or generic_names(history[-1])
    found = first_steps(history) + validation_blown(history[-1])
    if final:  # all one class after the first epoch is common, and most runs move on: said only of the last
        found += one_class(history[-1], names) + overfitting(history) + flat_run(history)
        found += never_predicted(history[-1], names, weighted) if classes else []
    return found


class Doctor:
    """``on_epoch_end`` for ``unet_lib.train``: the findings after the first epoch, and all of them after the last,
    each printed once (with ``print``, or ``write``)."""

    def __init__(self, epochs: int, names: Sequence[str] = (), weighted: bool = False, write: Callable = print):
        self.epochs, self.names, self.weighted, self.write = epochs, names, weighted, write
        self.told: set[str] = set()

    def __call__(self, history: Sequence[dict]) -> None:
        last = history[-1]["epoch"] == self.epochs
        if len(history) != 1 and not last:
            return
        for line in diagnose(history, self.names, self.weighted, final=last, classes=False):
            if line not in self.told:
                self.told.add(line)
                self.write(f"doctor: {line}")
