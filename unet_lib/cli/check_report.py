"""How check-data shows a ``DataReport``: what the data holds on one screen, then one line per problem."""

from __future__ import annotations

from collections import Counter

import numpy as np

from unet_lib.data.check import DataReport, fit_size, loss_weights

FAST_SIDE = 512  # a suggested smaller --size keeps the longer side near this: much faster to train
DTYPES = {"1": "bool", "L": "uint8", "P": "uint8, palette", "I;16": "uint16", "I;16L": "uint16", "I;16B": "uint16"}
DTYPES |= {"I": "int32", "RLE": "uint8", "RGB": "colours, read through classes.txt"}


def image_sizes(report: DataReport) -> Counter:
    """``{(H, W): pictures}``: how many readable pictures have each size."""
    return Counter(result.image_size for result in report.results if result.image_size is not None)


def mask_modes(report: DataReport) -> Counter:
    """``{"L (uint8)": masks, ...}``: how many readable masks are stored in each mode."""
    modes = (result.mask_mode for result in report.results if result.mask_mode is not None)
    return Counter(f"{mode} ({DTYPES.get(mode, '?')})" for mode in modes)


def notes(report: DataReport) -> list[str]:
    """What a folder tree's masks suggest about value 255, when it may not be what was meant."""
    classes, counts = report.classes, report.value_counts
    if classes is None:
        return []
    if classes.foreground_255:
        return ["255 is the foreground: the masks hold 0 and 255 and there is no classes.txt"]
    if (report.root / "classes.txt").is_file() and classes.binary and counts[255] and not counts[1]:
        return ["255 is ignored (classes.txt is present) and no pixel is 1: is 255 your foreground?"]
    return []


def size_advice(report: DataReport) -> str:
    """Whether the sizes suit the network's halvings, and which ``--size`` would."""
    step, depth = 2**report.depth, report.depth
    if report.size is not None:
        h, w = report.size
        verdict = "suits" if h % step == 0 and w % step == 0 else "does not suit"
        return f"--size {h}x{w} {verdict} the {depth} halvings (divisible by {step}); every picture is resized to it"
    sizes = image_sizes(report)
    if not sizes:
        return "no readable pictures"
    (h, w), _ = sizes.most_common(1)[0]
    scale = FAST_SIDE / max(h, w)
    faster = f", or --size {fit_size(h * scale, w * scale, step)} to train faster" if scale < 0.75 else ""
    if all(h % step == 0 and w % step == 0 for h, w in sizes):
        return f"sizes divisible by {step} ({depth} halvings): --size {h}x{w} keeps the pictures as they are{faster}"
    return f"{h}x{w} is not divisible by {step} ({depth} halvings); pictures are resized to --size: try --size {fit_size(h, w, step)}{faster}"


def shown_values(values: np.ndarray) -> str:
    """``"0, 1, 255"``, or the first and last few of many values."""
    values = values.tolist()
    if len(values) <= 10:
        return ", ".join(map(str, values))
    return f"{', '.join(map(str, values[:6]))}, ..., {', '.join(map(str, values[-2:]))} ({len(values)} distinct)"


def report_lines(report: DataReport) -> list[str]:
    """The report as ``check-data`` prints it: what the data holds, then the problems (or that there are none)."""
    lines = [f"{report.root} ({report.dataset} layout)"]

    def row(name: str, text: str) -> None:
        lines.append(f"  {name:<15} {text}")

    row("pairs", f"{report.pairs} ({report.splits})")
    sizes = image_sizes(report).most_common()
    more = f", {len(sizes) - 4} more sizes" if len(sizes) > 4 else ""
    row("image sizes", ", ".join(f"{n} at {h}x{w}" for (h, w), n in sizes[:4]) + more + " (HxW)" if sizes else "-")
    modes = Counter(result.image_mode for result in report.results if result.image_mode is not None).most_common()
    converted = " (read as RGB)" if any(mode != "RGB" for mode, _ in modes) else ""
    row("pictures", ", ".join(f"{n} {mode}" for mode, n in modes) + converted if modes else "-")
    row("masks", ", ".join(f"{n} {mode}" for mode, n in mask_modes(report).most_common()) or "-")
    row("mask values", shown_values(np.flatnonzero(report.value_counts)) or "-")
    total = max(int(report.value_counts.sum()), 1)
    fg = report.classes is not None and report.classes.foreground_255
    void = report.layout.ignore_index
    values = "(255 is the foreground here)" if fg else "(value 255)"
    values = f"(value {void}: --ignore-index, and 255)" if void is not None and not fg else values
    row("ignored pixels", f"{report.ignored_pixels / total:.1%} {values}")
    names, pixels = report.class_names, report.class_pixels
    labelled = max(int(pixels.sum()), 1)
    source = "from classes.txt" if (report.root / "classes.txt").is_file() and report.classes is not None else ""
    how = "binary: one output channel, BCE + Dice" if len(names) == 2 else "cross-entropy, 255 ignored"
    row("classes", f"{len(names)} {source}".rstrip() + f" ({how})")
    weights = loss_weights(report)
    if len(names) == 2:
        row("class pixels", ", ".join(f"{name} {n / labelled:.1%}" for name, n in zip(names, pixels, strict=True)))
        shown = f"{weights[0]:.2f} (negatives / positives" if weights else "- (no foreground pixel read"
        row("pos_weight", f"{shown}; train uses it with --class-weights median-frequency)")
    else:
        row("class pixels", "share   weight (median frequency: train --class-weights median-frequency)")
        for name, n, weight in zip(names, pixels, weights or [float("nan")] * len(names), strict=True):
            lines.append(f"    {name:<22} {n / labelled:6.1%}  {weight:6.2f}")
    row("network size", size_advice(report))
    for note in notes(report):
        row("note", note)
    if report.problems:
        lines.append(f"problems ({len(report.problems)}):")
        lines += [f"  {problem}" for problem in report.problems]
        lines.append("not ready to train: fix the problems above (check-data changed nothing in the folder)")
    else:
        lines.append("no problems: ready to train")
    return lines
