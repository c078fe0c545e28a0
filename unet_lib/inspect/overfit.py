"""Can the model learn these masks at all? ``overfit_check`` trains on one small batch for about a minute and
says *learned*, *learning, but slowly* or *not learning*, with what to do next: the command line's
``train --overfit-batch``, through ``unet_lib.train(config, probe=overfit_check)``."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, default_collate
from tqdm.auto import tqdm

from unet_lib.config import TrainConfig
from unet_lib.evaluation import forward
from unet_lib.metrics import IGNORE_INDEX, BinaryCounts, ConfusionMatrix
from unet_lib.runtime import Precision, show_progress
from unet_lib.training import TrainingDiverged, make_optimizer, train_step

# --overfit-batch. The verdict is judged on the batch's own score, not on a loss level: a loss falls at a pace
# that depends on the loss, the classes and the model, while Dice and mIoU read the same on any data.
OVERFIT_PICTURES = 4  # at most this many: a 31 M parameter U-Net still takes a step every few seconds on 2 cores
OVERFIT_STEPS = 300  # step limit (train --steps): what a 2 M parameter model takes in about a minute on 2 cores
OVERFIT_SECONDS = 60.0  # time limit: the answer comes in about a minute, whatever the model and picture size
OVERFIT_MIN_STEPS = 3  # taken whatever the time: one step's score says nothing of a rise, and the first is slow
# Learned: a fit this close shows the shapes of each picture, not the average mask. mIoU asks less than Dice: it
# is a mean over every class in the batch, thin poles and signs included, and IoU is lower than Dice anyway.
OVERFIT_TARGETS = {"dice": 0.9, "miou": 0.8}
OVERFIT_RISE = 0.1  # clearly risen: the best score closed this share of the gap from its start up to 1
# Following the pictures: the batch scores OVERFIT_MARGIN more with its own masks than with each other's (or
# OVERFIT_SHARE of the most it could, when the masks are much alike), and pictures not trained on keep
# OVERFIT_KEPT of that lead, and more than OVERFIT_NOISE. Measured: real masks keep 20-100 % of it (a 4-channel
# toy at a tenth of its lr included), masks shuffled against their pictures 0-2 %, within +-0.015.
OVERFIT_MARGIN = 0.05
OVERFIT_SHARE = 0.25
OVERFIT_KEPT = 0.1
OVERFIT_NOISE = 0.01
OVERFIT_LINE_SECONDS = 10.0  # without a progress bar, a line this often


class _KeepLogits(nn.Module):
    """A loss that keeps the logits of its last call: the batch's score then costs no second forward pass."""

    def __init__(self, loss_fn: nn.Module):
        super().__init__()
        self.loss_fn, self.logits = loss_fn, None

    def forward(self, logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        self.logits = logits.detach()
        return self.loss_fn(logits, masks)


def batch_score(logits: torch.Tensor, masks: torch.Tensor) -> float:
    """A batch's score: Dice (mean per picture) for one output channel, else mIoU over the classes in its masks.

    Args:
        logits: [B, C, H, W]; one channel: a pixel is foreground where its probability exceeds 0.5.
        masks: int64 [B, H, W] class indices (255: ignored).

    Returns:
        The score, in [0, 1].
    """
    if logits.shape[1] == 1:
        counts = BinaryCounts(device=logits.device)
        counts.update(logits, masks)
        return counts.scores()["dice"]
    matrix = ConfusionMatrix(logits.shape[1], device=logits.device)
    matrix.update(logits.argmax(1), masks)
    found = matrix.compute()
    return found["iou"][found["mat"].sum(1) > 0].mean().item()  # a class predicted but absent is not asked for


def blind_score(logits: torch.Tensor, masks: torch.Tensor) -> float:
    """What the predictions score against the other pictures' masks: their score had they ignored the pictures.
    A prediction that is the same for every picture (an average mask, however good) scores here exactly its
    :func:`batch_score`; only predictions that follow their own pictures score less here than there.

    Args:
        logits: [B, C, H, W] of B >= 2 pictures.
        masks: int64 [B, H, W] class indices (255: ignored).

    Returns:
        The mean :func:`batch_score` over the B - 1 ways of giving each picture another picture's mask.
    """
    return sum(batch_score(logits, masks.roll(k, 0)) for k in range(1, len(masks))) / (len(masks) - 1)


@dataclass
class OverfitResult:
    """What :func:`overfit_batch` saw. Its scores are training-mode scores: BatchNorm normalises with the
    statistics of the pictures scored, as in every training step."""

    metric: str  # "dice" or "miou"
    start: float  # the batch's score at the first step
    best: float  # its best score
    last: float  # its score at the last step
    last_blind: float  # and its blind_score then; NaN with one picture: nothing to compare
    own: float  # at the end, pictures not trained on (or the batch, when there are none): scored with their masks
    blind: float  # and with each other's
    apart: float  # 1 - blind_score of the batch's true masks: how much last can exceed last_blind at most
    held_out: int  # how many pictures not trained on gave own and blind (0: the batch did)
    loss: float  # at the last step; NaN: diverged
    steps: int = 0
    seconds: float = 0.0

    @property
    def risen(self) -> bool:
        """Whether the batch's score clearly rose: closed ``OVERFIT_RISE`` of the gap from its start up to 1."""
        return self.best >= self.start + OVERFIT_RISE * (1 - self.start)

    @property
    def follows(self) -> bool:
        """Whether the predictions follow the pictures, in a way that holds for pictures not trained on."""
        lead = self.last - self.last_blind  # NaN (one picture): nothing to compare, not held against it
        needed = min(OVERFIT_MARGIN, OVERFIT_SHARE * self.apart)  # masks much alike leave little to tell apart
        return not (lead < needed or self.own - self.blind < max(OVERFIT_NOISE, OVERFIT_KEPT * lead))

    @property
    def verdict(self) -> str:
        """``learned``, ``learning slowly``, ``not learning`` or ``diverged``: see :func:`overfit_batch`."""
        if not math.isfinite(self.loss):
            return "diverged"
        if not (self.risen and self.follows):
            return "not learning"
        return "learned" if self.best >= OVERFIT_TARGETS[self.metric] else "learning slowly"


def overfit_batch(
    model: nn.Module,
    batch: tuple[torch.Tensor, torch.Tensor],
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    held_out: tuple[torch.Tensor, torch.Tensor] | None = None,
    limits: tuple[int, float] = (OVERFIT_STEPS, OVERFIT_SECONDS),
    precision: Precision | None = None,
) -> OverfitResult:
    """Take :func:`train_step` s on one batch, scoring the logits of each step, until its score has clearly risen
    to ``OVERFIT_TARGETS`` or a limit is reached: the first check that a model, its loss and the masks fit together.
    Prints a line now and then (``step 40  12 s  loss 0.512  batch dice 0.812``), or a progress bar on a terminal.

    The verdict (:attr:`OverfitResult.verdict`) asks two things. Has the batch's score clearly risen
    (:attr:`OverfitResult.risen`)? Do the predictions follow the pictures (:attr:`OverfitResult.follows`): does
    the batch score more with its own masks than with each other's (:func:`blind_score`), and do pictures not
    trained on keep some of that lead? A network learns masks by heart, even masks shuffled against their
    pictures, in about as many steps as real ones; only real ones teach it something that holds for other
    pictures. Both: *learned* at the target, else *learning slowly*; either one missing: *not learning*.

    Args:
        batch: ``(images, masks)``: float [B, 3, H, W] and int64 [B, H, W] (255: ignored).
        held_out: Other pictures and masks, scored once at the end (None: the batch's last logits are).
        limits: The most steps, and seconds: past ``OVERFIT_MIN_STEPS``, no step begins that would end past
            them at the pace of the last one.
        precision: How the steps run (None: fp32), as in training.

    Returns:
        The scores, the last loss, the steps taken and the time they took.
    """
    device = next(model.parameters()).device
    images, masks = (t.to(device) for t in batch)
    kept, (max_steps, max_seconds), clock = _KeepLogits(loss_fn), limits, time.perf_counter
    model.train()  # training mode throughout: the scores come from the training step's own forward pass
    started, shown, took = clock(), -math.inf, 0.0
    unknown = dict.fromkeys(["start", "last", "last_blind", "own", "blind", "apart", "loss"], math.nan)
    result = OverfitResult("", best=-math.inf, held_out=0 if held_out is None else len(held_out[0]), **unknown)
    height, width = images.shape[-2:]
    timed = f" or {max_seconds:.0f} s" if math.isfinite(max_seconds) else ""
    print(f"overfit-batch: {len(images)} pictures at {height}x{width}, up to {max_steps} steps{timed}", flush=True)
    with tqdm(total=max_steps, desc="overfit-batch", leave=False, disable=not show_progress()) as bar:
        while result.steps < max_steps and (
            result.steps < OVERFIT_MIN_STEPS or result.seconds + took <= max_seconds  # at the last step's pace
        ):
            try:
                result.loss = train_step(
                    model, images, masks, kept, optimizer, precision
                ).item()  # before this step's update
            except TrainingDiverged:
                result.loss = math.nan
                return result
            score = batch_score(kept.logits, masks)  # of the weights before this step's update, as the loss
            if result.steps == 0:
                result.metric, result.start = "dice" if kept.logits.shape[1] == 1 else "miou", score
            result.best, result.last, result.steps = max(result.best, score), score, result.steps + 1
            now = clock() - started
            took, result.seconds = now - result.seconds, now
            bar.update()
            bar.set_postfix({"loss": f"{result.loss:.4f}", result.metric: f"{score:.3f}"})
            if bar.disable and result.seconds - shown >= OVERFIT_LINE_SECONDS:
                shown = result.seconds
                line = f"step {result.steps}  {result.seconds:.0f} s  loss {result.loss:.4f}  batch {result.metric}"
                print(f"{line} {score:.3f}", flush=True)
            if result.risen and result.best >= OVERFIT_TARGETS[result.metric]:
                break
    if len(masks) > 1:
        result.last_blind = blind_score(kept.logits, masks)
        labelled, channels = masks.where(masks != IGNORE_INDEX, 0), kept.logits.shape[1]
        truth = labelled[:, None] * 2.0 - 1 if channels == 1 else F.one_hot(labelled, channels).movedim(-1, 1).float()
        result.apart = 1 - blind_score(truth, masks)  # the true masks as logits [B, C, H, W]
    result.own, result.blind = result.last, result.last_blind
    if held_out is not None:
        with torch.no_grad():
            logits = forward(model, held_out[0].to(device), precision and precision.dtype)
        result.own, result.blind = (judge(logits, held_out[1].to(device)) for judge in (batch_score, blind_score))
    result.seconds = clock() - started
    return result


def overfit_message(result: OverfitResult) -> str:
    """The verdict of :func:`overfit_batch` in one line, with what to do next."""
    r = result
    ran = f"after {r.steps} steps, {r.seconds:.0f} s"
    if r.verdict == "diverged":
        return f"overfit-batch: diverged: the loss became {r.loss} {ran}: lower the learning rate (--lr)"
    where = f"{r.held_out} pictures it did not train on" if r.held_out else "the batch"
    scores = (
        f"batch {r.metric} {r.best:.3f} (from {r.start:.3f}, target {OVERFIT_TARGETS[r.metric]}) {ran}; "
        f"{where}: {r.own:.3f} with their own masks, {r.blind:.3f} with each other's"
    )
    if r.verdict == "learned":
        return f"overfit-batch: learned: {scores}: the model, the loss and the masks fit together; train for real"
    if r.verdict == "learning slowly":
        return f"overfit-batch: learning, but slowly: {scores}: try a higher --lr or more --steps"
    if not r.risen:
        return (
            f"overfit-batch: not learning: {scores}: the score hardly rose; try a higher --lr or more --steps, "
            "then check the masks against their pictures (check-data)"
        )
    return (
        f"overfit-batch: not learning: {scores}: what it learns holds for no other picture, so the masks do not "
        "follow from the pictures; check them against their pictures (check-data; a mask of another picture?)"
    )


def overfit_check(
    model: nn.Module,
    train_set: Dataset,
    loss_fn: nn.Module,
    config: TrainConfig,
    precision: Precision | None = None,
    steps: int | None = None,
) -> list[dict[str, Any]]:
    """:func:`overfit_batch` on up to ``OVERFIT_PICTURES`` training pictures spread over ``train_set`` (no
    augmentation, the config's lr held constant), with as many others held out; prints its verdict
    (:func:`overfit_message`). ``unet_lib.train(config, probe=overfit_check)`` calls it with the model, loss
    and precision training would use; ``functools.partial(overfit_check, steps=N)`` asks for N steps.

    Args:
        steps: At most this many steps, however long they take; None: ``OVERFIT_STEPS`` or
            ``OVERFIT_SECONDS``, whichever comes first.

    Returns:
        One row: the :class:`OverfitResult` as a dict, and its ``verdict``.
    """
    count = min(OVERFIT_PICTURES, config.batch_size, len(train_set))
    chosen = [int(i) for i in torch.linspace(0, len(train_set) - 1, count).round()]
    rest = [i for i in range(len(train_set)) if i not in chosen]  # the held-out check's, as many, spread too
    held = [rest[int(i)] for i in torch.linspace(0, len(rest) - 1, min(count, len(rest))).round()]
    batch = default_collate([train_set[i] for i in chosen])
    held_out = default_collate([train_set[i] for i in held]) if len(held) > 1 else None  # two to compare
    limits = (OVERFIT_STEPS, OVERFIT_SECONDS) if steps is None else (steps, math.inf)
    result = overfit_batch(model, batch, loss_fn, make_optimizer(model, config), held_out, limits, precision)
    print(overfit_message(result), flush=True)
    return [{**dataclasses.asdict(result), "verdict": result.verdict}]
