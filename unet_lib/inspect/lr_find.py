"""Which learning rate? ``lr_find`` trains a copy of the model for about 100 steps while the learning rate grows
exponentially, records the loss, and suggests a rate: the command line's ``lr-find``, through
``unet_lib.train(config, probe=lr_find)``. The model, its optimizer state and the random state are left as they were."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from unet_lib.config import TrainConfig
from unet_lib.runtime import Precision, show_progress
from unet_lib.training import TrainingDiverged, make_optimizer, train_step

STEPS = 100
START_LR, END_LR = 1e-6, 10.0  # fastai's range ends at 10 too: past the rate where any loss diverges
SMOOTHING = 0.9  # exponential moving average of the loss, bias-corrected: one batch's loss is noisy
SETTLE = 10  # steps at the start left out of the steepest slope
DIVERGED = 4.0  # stop once the smoothed loss is this many times its lowest: the rate is far too high
RULE = "a tenth of the learning rate where the smoothed loss was lowest"


def smooth(losses: list[float], beta: float = SMOOTHING) -> list[float]:
    """The bias-corrected exponential moving average of ``losses``: ``avg_i / (1 - beta^(i+1))``."""
    average, out = 0.0, []
    for i, loss in enumerate(losses):
        average = beta * average + (1 - beta) * loss
        out.append(average / (1 - beta ** (i + 1)))
    return out


def suggest(lrs: list[float], smoothed: list[float]) -> dict[str, float]:
    """The suggested rate (``RULE``: where the loss still falls fast, well below where it turns) and, for
    reference, the rate of the steepest fall of the smoothed loss against log(lr) before its lowest point (the
    first ``SETTLE`` steps left out: the average still settles there)."""
    lowest = min(range(len(smoothed)), key=smoothed.__getitem__)
    start = min(SETTLE, max(lowest - 1, 0))
    slopes = {
        i: (smoothed[i + 1] - smoothed[i]) / (math.log(lrs[i + 1]) - math.log(lrs[i]))
        for i in range(start, max(lowest, start + 1))
        if i + 1 < len(lrs)
    }
    steepest = min(slopes, key=slopes.__getitem__) if slopes else lowest
    return {"suggested_lr": lrs[lowest] / 10, "lowest_loss_lr": lrs[lowest], "steepest_lr": lrs[steepest]}


def lr_find(
    model: nn.Module, train_set: Dataset, loss_fn: nn.Module, config: TrainConfig, precision: Precision | None = None
) -> dict[str, Any]:
    """Train a copy of ``model`` on ``train_set``'s batches with the learning rate rising from ``START_LR`` to
    ``END_LR`` over ``STEPS`` steps (each ``(END_LR / START_LR) ** (1 / (STEPS - 1))`` times the last), with the
    optimizer ``config`` names; stop early when the loss diverges.

    Returns:
        ``lrs`` and ``losses`` of every step taken, their ``smoothed`` losses, ``suggested_lr`` with the ``rule``,
        ``lowest_loss_lr``, ``steepest_lr``, the recipe's ``config_lr`` and why it ``stopped``.
    """
    state = torch.get_rng_state()
    try:
        return sweep(copy.deepcopy(model), train_set, loss_fn, config, precision or Precision())
    finally:
        torch.set_rng_state(state)  # a run started after the sweep draws what it would have drawn without it


def sweep(model: nn.Module, train_set: Dataset, loss_fn: nn.Module, config: TrainConfig, precision: Precision) -> dict:
    """:func:`lr_find` on a model it may change."""
    shuffled = DataLoader(
        train_set, config.batch_size, shuffle=True, drop_last=len(train_set) >= config.batch_size,
        num_workers=config.num_workers,
    )  # fmt: skip
    optimizer = make_optimizer(model, dataclasses.replace(config, lr=START_LR))
    device = next(model.parameters()).device
    factor = (END_LR / START_LR) ** (1 / (STEPS - 1))
    lrs, losses, stopped = [], [], f"{STEPS} steps"
    model.train()
    batches = (batch for _ in itertools.count() for batch in shuffled)  # epoch after epoch, reshuffled, nothing kept
    for step in tqdm(range(STEPS), desc="lr-find", leave=False, disable=not show_progress(), dynamic_ncols=True):
        lr = START_LR * factor**step
        for group in optimizer.param_groups:
            group["lr"] = lr
        images, masks = (t.to(device) for t in next(batches))
        try:
            loss = train_step(model, images, masks, loss_fn, optimizer, precision).item()
        except TrainingDiverged:
            stopped = f"the loss was not finite at lr {lr:.2e}"
            break
        lrs.append(lr)
        losses.append(loss)
        smoothed = smooth(losses)
        if step > 5 and smoothed[-1] > DIVERGED * min(smoothed):
            stopped = f"the smoothed loss passed {DIVERGED:g} times its lowest at lr {lr:.2e}"
            break
    if len(lrs) < 2:
        raise TrainingDiverged(f"lr-find: the loss diverged at once ({stopped}); check the data with check-data")
    smoothed = smooth(losses)
    return {
        "lrs": lrs,
        "losses": losses,
        "smoothed": smoothed,
        **suggest(lrs, smoothed),
        "rule": RULE,
        "config_lr": config.lr,
        "stopped": stopped,
    }
