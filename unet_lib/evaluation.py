"""Scoring and predicting: ``evaluate`` is the one loop that scores a model (training's validation, the
``evaluate`` command, the threshold sweep: other metrics plugged in), ``predict`` the one way to label pictures,
``tiled_logits`` the way to predict pictures larger than the network was trained on."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from unet_lib.errors import InputError
from unet_lib.metrics import BinaryCounts, ConfusionMatrix, binarize
from unet_lib.runtime import all_reduce, show_progress


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode (BatchNorm uses its running statistics) for the block, then as it was."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def upsample(logits: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize of logits [B, C, h, w] to ``size = (H, W)`` (a no-op when it matches): logits, not
    labels, are resized, so edges stay smooth at a file's own size."""
    if tuple(size) == tuple(logits.shape[-2:]):
        return logits
    return F.interpolate(logits, size=tuple(int(s) for s in size), mode="bilinear", align_corners=False)


def forward(model: nn.Module, images: torch.Tensor, amp_dtype: torch.dtype | None = None) -> torch.Tensor:
    """The model's logits [B, C, h, w], under autocast in ``amp_dtype`` when given, returned in fp32."""
    with torch.autocast(images.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        return model(images).float()


def tta_average(
    model: nn.Module, images: torch.Tensor, logits: torch.Tensor, amp_dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Test-time augmentation: the mean of ``logits`` (the images' own) and the mirrored images' logits, mirrored
    back. A car mirrored left to right is still a car, so errors that are not symmetric partly cancel."""
    return (logits + forward(model, images.flip(-1), amp_dtype).flip(-1)) / 2


def predict_labels(logits: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Logits (B, C, H, W) -> label map (B, H, W): sigmoid > threshold for C == 1, else argmax."""
    if logits.shape[1] == 1:
        return binarize(logits, [threshold])[0].long()
    return logits.argmax(dim=1)


def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    out_size: Sequence[int] | None = None,
    tta: bool = False,
    amp_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """float32 logits [B, C, H, W] for a batch, in eval mode, optionally averaged with the mirrored batch's.

    Args:
        images: float [B, 3, h, w] in [0, 1], at the size the network was trained on, on its device.
        out_size: ``(H, W)`` to upsample the logits to (bilinear), or None to keep ``(h, w)``.
        tta: Average with the prediction on the mirrored images (:func:`tta_average`).
        amp_dtype: Autocast in this dtype (None: fp32).
    """
    with eval_mode(model), torch.inference_mode():
        logits = forward(model, images, amp_dtype)  # (B, C, h, w)
        if tta:
            logits = tta_average(model, images, logits, amp_dtype)
    return logits if out_size is None else upsample(logits, out_size)  # (B, C, H, W)


def predict(
    model: nn.Module,
    images: torch.Tensor,
    threshold: float = 0.5,
    tta: bool = False,
    out_size: Sequence[int] | None = None,
    amp_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Label maps int64 [B, H, W] for a batch of images [B, 3, h, w]: the model in eval mode (under autocast in
    ``amp_dtype`` when given), then sigmoid > ``threshold`` (one output channel) or argmax; ``out_size``
    upsamples the logits first."""
    return predict_labels(predict_logits(model, images, out_size, tta, amp_dtype), threshold)


def tile_starts(length: int, tile: int, overlap: float) -> list[int]:
    """Where tiles of ``tile`` pixels start along ``length`` pixels, each sharing ``overlap`` of itself with the
    next; the last one ends flush with the border."""
    last = max(length - tile, 0)
    return [*range(0, last, max(1, round(tile * (1 - overlap)))), last]


def blend_weights(height: int, width: int) -> torch.Tensor:
    """float [h, w]: each pixel's weight in a tile's blend, a separable ramp from its border (small, never 0: every
    pixel counts) to 1 in its centre, where the network sees the most context."""
    ramps = [torch.minimum(torch.arange(n) + 1, n - torch.arange(n)) / ((n + 1) // 2) for n in (height, width)]
    return ramps[0][:, None] * ramps[1][None, :]


def tiled_logits(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    tile: Sequence[int],
    overlap: float = 0.5,
    tiles_per_call: int = 4,
) -> torch.Tensor:
    """float32 logits [B, C, H, W] of pictures of any size: overlapping tiles predicted and blended without seams.

    Args:
        model: Any callable from float [N, 3, h, w] to logits [N, C, h, w]: a U-Net, an ONNX session in a lambda.
        images: float [B, 3, H, W]; a picture smaller than a tile is padded (reflected), the logits cropped back.
        tile: ``(h, w)`` of a tile (a U-Net's: divisible by ``2 ** len(features)``).
        overlap: The share of a tile its neighbour covers too (0.5: most pixels are in 2 x 2 tiles).
        tiles_per_call: Tiles of each picture passed to ``model`` at once.

    Returns:
        The blend of the tiles' logits, each weighted by :func:`blend_weights`; one tile's logits as they are.
    """
    if not 0 <= overlap < 1:  # a negative share would leave gaps between the tiles
        raise ValueError(f"overlap: expected a share of a tile in [0, 1), got {overlap}")
    (height, width), (th, tw) = images.shape[-2:], tile
    pad_h, pad_w = max(th - height, 0), max(tw - width, 0)
    if pad_h or pad_w:  # reflecting needs a picture longer than the padding; else its border pixels repeat
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        images = F.pad(images, [0, pad_w, 0, pad_h], mode=mode)  # (B, 3, max(H, th), max(W, tw))
    tops, lefts = tile_starts(images.shape[-2], th, overlap), tile_starts(images.shape[-1], tw, overlap)
    corners = [(top, left) for top in tops for left in lefts]
    if len(corners) == 1:  # one tile is the whole (padded) picture: its logits as they are
        return model(images).float()[..., :height, :width]
    weights = blend_weights(th, tw).to(images.device)  # (th, tw)
    weight_sum, total = torch.zeros(images.shape[-2:], device=images.device), None
    for k in range(0, len(corners), tiles_per_call):
        chunk = corners[k : k + tiles_per_call]
        batch = torch.cat([images[..., y : y + th, x : x + tw] for y, x in chunk])  # (len(chunk) * B, 3, th, tw)
        for (y, x), logits in zip(chunk, model(batch).float().split(len(images)), strict=True):  # (B, C, th, tw)
            if total is None:
                total = logits.new_zeros(*logits.shape[:2], *images.shape[-2:])  # (B, C, H', W')
            total[..., y : y + th, x : x + tw] += logits * weights
            weight_sum[y : y + th, x : x + tw] += weights
    return (total / weight_sum)[..., :height, :width]  # (B, C, H, W)


class Tiled(nn.Module):
    """``model`` predicting in overlapping tiles (:func:`tiled_logits`): it takes pictures of any size where
    ``model`` takes them, so ``evaluate(Tiled(model, (256, 256)), loader, ...)`` and flip TTA work unchanged."""

    def __init__(self, model: nn.Module, tile: Sequence[int], overlap: float = 0.5):
        super().__init__()
        self.model, self.tile, self.overlap = model, tuple(tile), overlap
        self.arch = getattr(model, "arch", None)  # a U-Net's arguments, which the commands read
        self.train(model.training)  # eval_mode(self) then puts ``model`` back as it was

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return tiled_logits(self.model, images, self.tile, self.overlap)  # (B, C, H, W)


@dataclass
class Batch:
    """One batch as the metrics see it, all on the model's device."""

    model: nn.Module
    images: torch.Tensor  # (B, 3, h, w)
    logits: torch.Tensor  # (B, C, h, w), fp32
    masks: torch.Tensor  # (B, h, w), at the network's size
    full_masks: list[torch.Tensor] | None = None  # B masks (H, W) at each file's own size: sizes may differ
    amp_dtype: torch.dtype | None = None

    @cached_property
    def tta_logits(self) -> torch.Tensor:
        """The flip-averaged logits, computed once for all the metrics that ask."""
        return tta_average(self.model, self.images, self.logits, self.amp_dtype)


class Metric(Protocol):
    """What ``evaluate`` needs of a metric: it sees each batch (``update``) and says its scores at the end."""

    def update(self, batch: Batch) -> None: ...
    def reduce_from_all_processes(self) -> None: ...
    def compute(self) -> dict[str, Any]: ...


@dataclass(eq=False)
class Scores:
    """The segmentation scores of the predictions at the network's size, with or without flip TTA: counted image
    by image (:class:`~unet_lib.metrics.BinaryCounts`) for one output channel, else in a confusion matrix."""

    num_outputs: int  # the model's output channels: 1 is binary, more are classes
    thresholds: Sequence[float] = (0.5,)  # binary: the probabilities counted; compute reports the first
    tta: bool = False  # score the flip-averaged logits
    suffix: str = ""  # appended to every key compute returns ("_tta")
    keys: Sequence[str] | None = None  # report only these keys (before the suffix); None: all

    def __post_init__(self):
        self.binary, self.threshold = self.num_outputs == 1, float(self.thresholds[0])
        self.counts: BinaryCounts | ConfusionMatrix | None = None  # made on the first batch's device

    def new_counts(self, device: torch.device) -> BinaryCounts | ConfusionMatrix:
        """The empty accumulator these scores are computed from."""
        if self.binary:
            return BinaryCounts(self.thresholds, device)
        return ConfusionMatrix(self.num_outputs, device=device)

    def pairs(self, batch: Batch) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(logits [B, C, h, w], masks [B, h, w])`` to count: here the batch at the network's size."""
        yield batch.tta_logits if self.tta else batch.logits, batch.masks

    def update(self, batch: Batch) -> None:
        self.counts = self.counts or self.new_counts(batch.logits.device)
        for logits, masks in self.pairs(batch):
            self.counts.update(logits if self.binary else logits.argmax(1), masks)

    def reduce_from_all_processes(self) -> None:
        self.counts = self.counts or self.new_counts(torch.device("cpu"))
        self.counts.reduce_from_all_processes()

    def compute(self) -> dict[str, Any]:
        if self.binary:
            scores = self.counts.scores(self.threshold)
        else:
            found = self.counts.compute()
            scores = {"pixel_accuracy": found["pixel_accuracy"], "miou": found["miou"], "iou": found["iou"].tolist()}
        return {f"{k}{self.suffix}": v for k, v in scores.items() if self.keys is None or k in self.keys}


def evaluate(
    model: nn.Module,
    loader: Iterable,
    metrics: Sequence[Metric],
    loss_fn: nn.Module | None = None,
    amp_dtype: torch.dtype | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Score ``model`` on every batch of ``loader``: the one evaluation loop (over all processes when distributed).

    Args:
        loader: Batches ``(images [B, 3, h, w], masks [B, h, w])``, or with a third item, the masks at
            each file's size (a list, see ``unet_lib.cli.full_res``). Not shuffled when a metric keeps
            per-image results, so that image ``n`` is item ``n`` of the dataset.
        metrics: What to count, e.g. ``[Scores(1)]`` for a binary model at the network's size.
        loss_fn: Also report the mean ``loss`` (at the network's size, without TTA).
        amp_dtype: Autocast the model in this dtype (``runtime.Precision.dtype``; None: fp32); the loss and the
            metrics see fp32 logits.
        progress: Show a progress bar (None: only where someone watches, see ``runtime.show_progress``).

    Returns:
        Every metric's scores in one dict (and ``loss`` with ``loss_fn``).
    """
    device = next(model.parameters()).device
    loss_sum = torch.zeros(2, dtype=torch.float64, device=device)  # loss * images, images
    bar = tqdm(loader, desc="evaluate", leave=False, disable=not show_progress(progress), dynamic_ncols=True)
    with eval_mode(model), torch.inference_mode():
        for images, masks, *full in bar:
            images, masks = images.to(device, non_blocking=True), masks.to(device, non_blocking=True)
            full_masks = [m.to(device) for m in full[0]] if full else None
            logits = forward(model, images, amp_dtype)  # (B, C, h, w)
            if loss_fn is not None:
                loss_sum[0] += loss_fn(logits, masks).double() * len(images)
            loss_sum[1] += len(images)
            batch = Batch(model, images, logits, masks, full_masks, amp_dtype)
            for metric in metrics:
                metric.update(batch)
    loss_sum = all_reduce(loss_sum)
    if loss_sum[1] == 0:
        raise InputError("loader: no images to evaluate")
    result: dict[str, Any] = {} if loss_fn is None else {"loss": (loss_sum[0] / loss_sum[1]).item()}
    for metric in metrics:
        metric.reduce_from_all_processes()
        result |= metric.compute()
    return result
