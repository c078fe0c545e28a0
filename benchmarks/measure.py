"""Timing on a noisy machine: interleave the contenders, repeat, take medians; one row per figure.

Every figure measures "ours" and "original" side by side in the same process, alternating
A, B, B, A, ... so that a burst of load elsewhere hits both, and reports medians.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from unet_lib.cli.cache import CACHE_ENV


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


def best_rate(flops: float, fn: Callable[[], object], repeats: int) -> float:
    """FLOP/s of the fastest of ``repeats`` calls, after a warm-up call (thread pool, kernel choice, buffers).

    The best, not the median: it stands for what the cores can do, and load from elsewhere only slows.
    """
    fn()
    return flops / min(timed(fn) for _ in range(repeats))


def measured_peak(repeats: int = 3, dtype: torch.dtype = torch.float32) -> tuple[float, str]:
    """The fastest dense kernel here in ``dtype``, ``(FLOP/s, name)``: ``torch.mm`` at three sizes and a 3x3
    convolution (in channels_last for bf16, where its fastest kernels are)."""
    rates = {}
    for n in (1024, 2048, 4096):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        rates[f"torch.mm {n}"] = best_rate(2 * n**3, lambda a=a, b=b: torch.mm(a, b), repeats)  # a multiply and an add
    layout = torch.channels_last if dtype == torch.bfloat16 else torch.contiguous_format
    x = torch.randn(4, 256, 56, 56, dtype=dtype).contiguous(memory_format=layout)  # (N, C, H, W)
    w = torch.randn(256, 256, 3, 3, dtype=dtype).contiguous(memory_format=layout)  # (C_out, C_in, 3, 3)
    conv = 2 * x.shape[0] * 256 * 56 * 56 * 256 * 9
    rates["conv 3x3 256ch"] = best_rate(conv, lambda: torch.nn.functional.conv2d(x, w, padding=1), repeats)
    name = max(rates, key=rates.get)
    return rates[name], f"{name}{' bf16' if dtype == torch.bfloat16 else ''}"


# bf16 products per fp32 FMA lane and cycle: AVX512-BF16's dot product does 2 (VDPBF16PS: 32 bf16 pairs into 16
# fp32 sums); an AMX tile product 16 (TDPBF16PS: 16x16x32 in 16 cycles, 1,024 FLOP a cycle against AVX-512's 64).
BF16_PER_FP32 = (("amx_bf16", 16), ("avx512_bf16", 2))


def spec_peak(cores: int, dtype: torch.dtype = torch.float32) -> tuple[float, str] | None:
    """What the CPU says it can do, ``(FLOP/s, how)``: fp32 lanes x 2 FMA units x 2 FLOP x clock x cores, for
    bf16 times what its bf16 instructions add (``BF16_PER_FP32``).

    From ``/proc/cpuinfo`` (flags avx512f, or avx2 and fma; avx512_bf16, amx_bf16) and the clock ``lscpu`` gives
    as its maximum (else cpuinfo's current MHz). Two FMA units per core is an upper bound (some chips have one,
    some run 512-bit instructions as two halves); a clock above the reported one (turbo) exceeds it. None when the
    CPU does not report these (not Linux x86), or for bf16 when it has no bf16 instructions.
    """
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    flags, mhz = set(), None
    for line in info.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags = set(value.split())
        elif key.strip() == "cpu MHz" and mhz is None:
            mhz = float(value)
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, env={"LC_ALL": "C"}, timeout=10).stdout
        mhz = next((float(line.split(":")[1]) for line in lscpu.splitlines() if line.startswith("CPU max MHz")), mhz)
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    lanes, isa = (16, "AVX-512") if "avx512f" in flags else (8, "AVX2+FMA") if {"avx2", "fma"} <= flags else (0, "")
    factor = 1
    if dtype == torch.bfloat16:
        found = next(((flag, n) for flag, n in BF16_PER_FP32 if flag in flags), None)
        if found is None:
            return None
        isa, factor = f"{isa} with {found[0]}", found[1]
    if not lanes or not mhz:
        return None
    extra = f" x {factor} (bf16)" if factor > 1 else ""
    how = f"{isa}: {lanes} fp32 lanes{extra} x 2 FMA units x 2 FLOP x {mhz / 1000:.2f} GHz x {cores} cores"
    return lanes * factor * 2 * 2 * mhz * 1e6 * cores, how


@contextmanager
def fresh_cache_dir() -> Iterator[Path]:
    """A new, empty picture-cache folder (``UNET_LIB_CACHE``) for the duration: caches start cold, and
    nothing is left in the user's ``~/.cache``."""
    old = os.environ.get(CACHE_ENV)
    folder = Path(tempfile.mkdtemp(prefix="unet-lib-cache-"))
    os.environ[CACHE_ENV] = str(folder)
    try:
        yield folder
    finally:
        if old is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = old
        shutil.rmtree(folder, ignore_errors=True)


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
