"""Writing many sample pictures on all cores. Every picture draws from its own random stream, so the
files are byte-identical whatever the number of processes."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from typing import TypeVar

from tqdm.auto import tqdm

from unet_lib.errors import InputError
from unet_lib.runtime import show_progress

Task, Result = TypeVar("Task"), TypeVar("Result")


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS reports it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_workers(workers: int | None) -> None:
    """Raise an ``InputError`` unless ``workers`` is a positive number of processes or None."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InputError(f"workers: expected a positive number of processes or None, got {workers!r}")


def run_all(
    work: Callable[[Task], Result], tasks: Sequence[Task], workers: int | None, progress: bool, unit: str
) -> list[Result]:
    """``[work(task) for task in tasks]``, computed in ``workers`` processes.

    Args:
        work: A module-level function (it is sent to the other processes by name).
        tasks: Its arguments, one per call.
        workers: Processes; None for one per core, 1 for this process only.
        progress: Show a progress bar counting finished tasks.
        unit: What one task writes, for the bar (e.g. ``"car"``).
    """
    check_workers(workers)
    workers = min(len(tasks), available_cores() if workers is None else workers)
    results = []
    pool = ProcessPoolExecutor(workers) if workers > 1 else nullcontext()
    with tqdm(total=len(tasks), unit=unit, disable=not show_progress(progress)) as bar, pool:
        for result in pool.map(work, tasks) if workers > 1 else map(work, tasks):
            results.append(result)
            bar.update()
    return results
