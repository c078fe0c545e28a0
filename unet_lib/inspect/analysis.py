"""Where a model fails: every picture's loss and score, worst first, and the error atlas: wrong pixels on the
boundaries between classes against the interiors, recall by object size, and for several classes each class's
IoU and the class it is most often taken for. :class:`Atlas` is a metric for ``unet_lib.evaluate``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unet_lib.errors import InputError
from unet_lib.evaluation import Batch, predict_labels
from unet_lib.metrics import IGNORE_INDEX, ConfusionMatrix, binary_counts, dice_score

BAND = 3  # px: wrong pixels this close to a boundary between two reference labels count as "boundary"
# COCO's object sizes (small below 32x32 px, large above 96x96) as shares of its typical 640x480 picture, so that
# they scale with the size the network sees.
SIZE_LIMITS = (32 * 32 / (640 * 480), 96 * 96 / (640 * 480))
SIZE_BINS = ("small", "medium", "large")


def edges(masks: torch.Tensor) -> torch.Tensor:
    """bool [B, H, W]: pixels with a 4-neighbour of another reference label (void counts as a label)."""
    found = torch.zeros_like(masks, dtype=torch.bool)
    vertical = masks[:, 1:] != masks[:, :-1]  # (B, H-1, W): a pixel differs from the one below it
    horizontal = masks[:, :, 1:] != masks[:, :, :-1]  # (B, H, W-1)
    found[:, 1:] |= vertical
    found[:, :-1] |= vertical
    found[:, :, 1:] |= horizontal
    found[:, :, :-1] |= horizontal
    return found


def boundary_band(masks: torch.Tensor, band: int = BAND) -> torch.Tensor:
    """bool [B, H, W]: pixels within ``band`` px of an edge pixel, that is, in the (2b+1)x(2b+1) square around one."""
    on_edge = edges(masks)[:, None].float()  # (B, 1, H, W)
    return F.max_pool2d(on_edge, 2 * band + 1, stride=1, padding=band)[:, 0] > 0


def components(masks: torch.Tensor) -> torch.Tensor:
    """int64 [B, H, W] labels of the 4-connected regions of equal value in label maps [B, H, W], each region labelled
    with the smallest flat index of its pixels (over the whole batch).

    Union-find in bulk: every pixel starts as its own root; each round, for every pair of neighbours with the same
    value whose roots differ, the larger root is hooked under the smaller, then every pixel jumps to its root. A
    round at least halves the trees left, so a picture takes a few dozen rounds, however long its regions.
    """
    index = torch.arange(masks.numel(), device=masks.device).reshape(masks.shape)
    vertical = masks[:, 1:] == masks[:, :-1]  # (B, H-1, W): a pixel and the one below it are one region
    horizontal = masks[:, :, 1:] == masks[:, :, :-1]  # (B, H, W-1)
    first = torch.cat([index[:, :-1][vertical], index[:, :, :-1][horizontal]])  # (E,) one pixel of each pair
    second = torch.cat([index[:, 1:][vertical], index[:, :, 1:][horizontal]])  # (E,) its neighbour
    parent = index.flatten()
    while True:
        a, b = parent[first], parent[second]  # the pairs' roots
        apart = a != b
        if not apart.any():
            return parent.reshape(masks.shape)
        low, high = torch.minimum(a[apart], b[apart]), torch.maximum(a[apart], b[apart])
        parent = parent.scatter_reduce(0, high, low, reduce="amin")  # hook each larger root under a smaller one
        while not torch.equal(jumped := parent[parent], parent):  # every pixel up to its root
            parent = jumped


def picture_scores(preds: torch.Tensor, masks: torch.Tensor, num_outputs: int) -> torch.Tensor:
    """float64 [B]: each picture's score: Dice for a binary model (1 when there is nothing to find and nothing
    is found), else the mean IoU over the classes present in its reference or its prediction (labelled pixels)."""
    labelled = masks != IGNORE_INDEX
    if num_outputs == 1:
        return dice_score(*binary_counts(preds, masks)[:, :3].unbind(-1))  # (B,)
    classes, batch = num_outputs, len(masks)
    picture = torch.arange(batch, device=masks.device)[:, None, None].expand_as(masks)
    codes = (picture * classes + masks.clamp(max=classes - 1)) * classes + preds  # (B, H, W): picture, reference, pred
    mat = torch.bincount(codes[labelled], minlength=batch * classes * classes).reshape(batch, classes, classes)
    tp = mat.diagonal(dim1=1, dim2=2).double()  # (B, C)
    union = mat.sum(2) + mat.sum(1) - tp  # reference + predicted - both
    iou = torch.where(union > 0, tp / union.clamp(min=1), torch.nan)
    return torch.where((union > 0).any(1), iou.nanmean(1), 1.0)


@dataclass(eq=False)
class Atlas:
    """Every picture's loss and score, and where its wrong pixels lie, for ``unet_lib.evaluate`` (one process).

    Args:
        num_outputs: The model's output channels: 1 is binary (scored by Dice), more are classes (mIoU).
        loss_fn: The training loss, computed picture by picture; None: no losses.
        band: Boundary band half-width in px (see :func:`boundary_band`).
        threshold: Binary models: the probability above which a pixel is the class.
    """

    num_outputs: int
    loss_fn: nn.Module | None = None
    band: int = BAND
    threshold: float = 0.5
    pictures: list[dict] = field(default_factory=list)  # in loader order: index, loss, score, wrong pixels
    objects: list[tuple[int, float, int, int]] = field(default_factory=list)  # class, share, pixels, found
    size: tuple[int, int] | None = None  # (H, W) of the first picture: the size limits in pixels

    def __post_init__(self):
        self.confusion = ConfusionMatrix(max(self.num_outputs, 2))

    def update(self, batch: Batch) -> None:
        logits, masks = batch.logits, batch.masks.long()  # (B, C, H, W) fp32, (B, H, W)
        preds = predict_labels(logits, self.threshold)  # (B, H, W)
        if self.num_outputs > 1:  # each class's IoU and what it is taken for
            self.confusion.update(preds.cpu(), masks.cpu())
        labelled = masks != IGNORE_INDEX
        wrong = (preds != masks) & labelled
        in_band = boundary_band(masks, self.band)
        self.size = self.size or tuple(masks.shape[-2:])
        scores = picture_scores(preds, masks, self.num_outputs).tolist()
        counts = {  # (B,) each
            "wrong": wrong.sum((1, 2)),
            "wrong_in_band": (wrong & in_band).sum((1, 2)),
            "labelled": labelled.sum((1, 2)),
            "labelled_in_band": (labelled & in_band).sum((1, 2)),
        }
        counts = {key: value.tolist() for key, value in counts.items()}
        for i in range(len(masks)):
            loss = None if self.loss_fn is None else self.loss_fn(logits[i : i + 1], masks[i : i + 1]).item()
            picture = {"index": len(self.pictures), "loss": loss, "score": scores[i]}
            self.pictures.append(picture | {key: value[i] for key, value in counts.items()})
        self.count_objects(preds, masks)

    def count_objects(self, preds: torch.Tensor, masks: torch.Tensor) -> None:
        """Each connected region of each reference class (binary: of the class only, not the background): its
        class, its share of the picture, its pixels and how many of them were predicted as its class."""
        labels = components(masks).flatten()  # one label per region of every picture
        keep = masks.flatten() != IGNORE_INDEX
        if self.num_outputs == 1:
            keep &= masks.flatten() == 1
        regions, region = torch.unique(labels[keep], return_inverse=True)  # 0 .. regions - 1
        pixels = torch.bincount(region, minlength=len(regions))
        right = (preds.flatten() == masks.flatten())[keep]
        found = torch.bincount(region, weights=right.double(), minlength=len(regions))
        classes, area = masks.flatten()[regions], masks[0].numel()  # a region's label is one of its pixels
        self.objects += [
            (c, n / area, n, int(f)) for c, n, f in zip(classes.tolist(), pixels.tolist(), found.tolist(), strict=True)
        ]

    def reduce_from_all_processes(self) -> None:
        """Nothing: ``analyze`` runs in one process (its pictures are listed, not summed)."""

    def compute(self) -> dict[str, Any]:
        """``pictures`` worst first, ``boundary`` (the band's share of the wrong and of all pixels), ``by_size``
        (recall of the objects in each size bin, the bin limits in px) and, for several classes, ``classes``."""
        worst = sorted(self.pictures, key=lambda p: (p["score"], -(p["loss"] or 0.0)))
        total = {
            key: sum(p[key] for p in self.pictures)
            for key in ("wrong", "wrong_in_band", "labelled", "labelled_in_band")
        }
        result: dict[str, Any] = {
            "score_name": "dice" if self.num_outputs == 1 else "miou",
            "pictures": worst,
            "boundary": {
                "band_px": self.band,
                "wrong": total["wrong"],
                "wrong_in_band": total["wrong_in_band"],
                "wrong_share_in_band": total["wrong_in_band"] / total["wrong"] if total["wrong"] else None,
                "pixels_share_in_band": total["labelled_in_band"] / total["labelled"] if total["labelled"] else None,
            },
            "by_size": self.by_size(),
        }
        if self.num_outputs > 1:
            result["classes"] = self.classes()
        return result

    def by_size(self) -> list[dict]:
        """Per size bin: its limits (share of the picture, and px at the analysed size), the objects, their pixels,
        the share of those pixels found (recall) and the objects more than half found."""
        area = self.size[0] * self.size[1] if self.size else 0
        edges_ = (0.0, *SIZE_LIMITS, float("inf"))
        rows = []
        for name, low, high in zip(SIZE_BINS, edges_[:-1], edges_[1:], strict=True):
            inside = [o for o in self.objects if low <= o[1] < high]
            pixels, found = sum(o[2] for o in inside), sum(o[3] for o in inside)
            rows.append(
                {
                    "bin": name,
                    "min_px": round(low * area),
                    "max_px": None if high == float("inf") else round(high * area),
                    "objects": len(inside),
                    "pixels": pixels,
                    "recall": found / pixels if pixels else None,
                    "found_over_half": sum(o[3] > o[2] / 2 for o in inside),
                }
            )
        return rows

    def classes(self) -> list[dict]:
        """Each class's IoU, and the class its pixels are most often predicted as, when wrong, with that share."""
        mat = self.confusion.compute()["mat"].double()  # (C, C): [reference, predicted]
        iou = mat.diag() / (mat.sum(0) + mat.sum(1) - mat.diag())  # NaN for a class neither present nor predicted
        rows = []
        for c in range(self.num_outputs):
            off = mat[c].clone()
            off[c] = 0
            pixels = mat[c].sum().item()
            taken = int(off.argmax()) if off.sum() > 0 else None
            rows.append(
                {
                    "class": c,
                    "iou": iou[c].item(),
                    "pixels": int(pixels),
                    "taken_for": taken,
                    "taken_share": off[taken].item() / pixels if taken is not None else None,
                }
            )
        return rows


RESAMPLES = 10_000  # bootstrap resamples of the paired differences
SEED = 0


def paired_comparison(a: torch.Tensor, b: torch.Tensor, resamples: int = RESAMPLES, seed: int = SEED) -> dict[str, Any]:
    """Two models' scores on the same pictures (float [N] each, picture ``i`` in both): the mean of ``b - a``, its 95 %
    bootstrap interval, and how many pictures each wins.

    The interval: ``resamples`` times, draw N pictures with replacement (a seeded generator) and take their mean
    difference; the 2.5th and 97.5th percentiles of those means. When it contains 0, these pictures do not show
    either model better: the difference may be the luck of which pictures were drawn.
    """
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise InputError(
            f"a and b: expected scores of the same pictures, got shapes {tuple(a.shape)} and {tuple(b.shape)}"
        )
    diff = (b.double() - a.double()).cpu()  # (N,)
    generator = torch.Generator().manual_seed(seed)
    draws = torch.randint(len(diff), (resamples, len(diff)), generator=generator)  # (R, N) picture indices
    means = diff[draws].mean(1)  # (R,)
    low, high = torch.quantile(means, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return {
        "mean_difference": diff.mean().item(),
        "interval": [low, high],
        "resamples": resamples,
        "seed": seed,
        "b_wins": int((diff > 0).sum()),
        "a_wins": int((diff < 0).sum()),
        "ties": int((diff == 0).sum()),
        "interval_contains_zero": low <= 0 <= high,
    }
