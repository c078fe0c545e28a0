"""The error and disagreement maps of ``unet_lib.viz.analysis``: colours by kind, and legends of what occurs."""

import matplotlib
import torch

matplotlib.use("Agg")

from unet_lib.viz.analysis import (  # noqa: E402
    BAND_COLORS,
    DISAGREEMENT_COLORS,
    KIND_COLORS,
    band_map,
    show_disagreement,
    show_worst,
)


def car_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """A rectangle mask, and a prediction one column too wide on the left (false positives on the outline) and
    one column short on the right (false negatives on the outline)."""
    mask = torch.zeros(16, 24, dtype=torch.long)
    mask[4:12, 6:18] = 1
    pred = torch.zeros_like(mask)
    pred[4:12, 5:17] = 1
    return pred, mask


def legend_texts(fig) -> list[str]:
    return [t.get_text() for t in fig.legends[0].get_texts()]


def test_by_kind_colours_false_positives_and_negatives_apart():
    pred, mask = car_pair()
    painted = band_map(pred, mask, 2, by_kind=True).permute(1, 2, 0)  # (H, W, 3)
    assert tuple(painted[6, 5].tolist()) == KIND_COLORS["false positive, on the outline"]
    assert tuple(painted[6, 17].tolist()) == KIND_COLORS["false negative, on the outline"]
    plain = band_map(pred, mask, 2).permute(1, 2, 0)
    assert tuple(plain[6, 5].tolist()) == tuple(plain[6, 17].tolist()) == BAND_COLORS["wrong, on a boundary"]


def test_legends_list_only_what_occurs():
    pred, mask = car_pair()
    image = torch.rand(3, *mask.shape)
    fig = show_worst([image], [pred], [mask], ["a"], band=2, by_kind=True)
    assert legend_texts(fig) == ["false positive, on the outline", "false negative, on the outline", "right"]
    fig = show_worst([image], [pred], [mask], ["a"], band=2)
    assert legend_texts(fig) == ["wrong, on a boundary", "right"]  # no interior errors, nothing ignored
    other = mask.clone()
    fig = show_disagreement([image], [(pred, other)], [mask], ["a"])
    assert legend_texts(fig) == ["B right, A wrong", "the same"]  # B is the mask: right wherever they differ
    assert "both wrong, differently" in DISAGREEMENT_COLORS  # kept for multi-class maps, listed only when it occurs
