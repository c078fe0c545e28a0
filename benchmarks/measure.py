"""Timing on a noisy machine: interleave the contenders, repeat, take medians; one row per figure.

Every figure measures "ours" and "original" side by side in the same process, alternating
A, B, B, A, ... so that a burst of load elsewhere hits both, and reports medians.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class Row:
    """One line of the final table: formatted values, and whether the target was met (None: no target)."""

    figure: str
    ours: str
    original: str = "-"
    ratio: str = "-"
    target: str = "-"
    passed: bool | None = None


def speedup_row(figure: str, ours: float, original: float, unit: str, target: float, higher_is_better: bool) -> Row:
    """A row comparing two measurements, with ratio > 1 meaning ours is better.

    Args:
        figure: Name shown in the table.
        ours, original: The two measurements, in ``unit``.
        unit: e.g. ``"img/s"`` or ``"s"``.
        target: The smallest acceptable ratio.
        higher_is_better: True for throughputs, False for times.
    """
    ratio = ours / original if higher_is_better else original / ours
    return Row(
        figure, f"{ours:.3g} {unit}", f"{original:.3g} {unit}", f"{ratio:.2f}x", f">= {target:g}x", ratio >= target
    )


def timed(fn: Callable[[], object]) -> float:
    """Wall-clock seconds of one call."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def interleaved(contenders: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Time each contender ``repeats`` times, alternating the order every round (A B, B A, A B, ...).

    Returns:
        Seconds per call, by contender name.
    """
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else reversed(names):
            times[name].append(timed(contenders[name]))
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    """``"median (min-max, n=N)"`` for a printed line."""
    return f"{median(values):.3g} s (min {min(values):.3g}, max {max(values):.3g}, n={len(values)})"


def matmul_flops(size: int = 2048, repeats: int = 5) -> float:
    """The machine's fp32 matrix-multiply rate in FLOP/s: the best of ``repeats`` large ``torch.mm`` calls.

    The best, not the median: it stands for what the cores can do, and load from elsewhere only slows.
    """
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)  # warm-up: thread pool and BLAS buffers
    seconds = [timed(lambda: torch.mm(a, b)) for _ in range(repeats)]
    return 2 * size**3 / min(seconds)  # one multiply and one add per inner-product term


def print_table(rows: list[Row]) -> None:
    """The final table: figure, ours, original, ratio, target, pass/fail."""
    header = ("figure", "ours", "original", "ratio", "target", "result")
    cells = [header] + [
        (r.figure, r.ours, r.original, r.ratio, r.target, {True: "pass", False: "FAIL", None: "-"}[r.passed])
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    print(line)
    for i, row in enumerate(cells):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print(line)
    print(line)
