"""Figure ``scale`` (off by default: ``--only scale``): the recommended Carvana recipe's data pipeline (its
augmentation, 320x480, batch 8) with 4 workers over the full-size simulation, per-worker memory cache against
the shared disk cache: images/s and the peak memory (PSS) of the whole process tree, cold and warm.

Write the data first (5,088 photos at 1918x1280, about 1.8 GB)::

    python -m unet_lib sample-data carvana data/carvana-full --full-size
"""

from __future__ import annotations

import dataclasses
import gc
import os
import threading
import time
from pathlib import Path

from benchmarks.measure import Row, fresh_cache_dir, speedup_row
from unet_lib.cli.cache import use_cache
from unet_lib.config import TrainConfig, recipe
from unet_lib.data import build_datasets, build_loaders

SCALE_ENV = "UNET_SCALE_DATA"  # where the full-size simulation is (default data/carvana-full)
DEFAULT_DATA = Path("data/carvana-full")
GIB = 2**30
SLACK = 1 * GIB  # warm workers may hold the cache file plus this much
MIN_AVAILABLE = 2 * GIB  # the run stops when the machine has less memory than this left
TARGET_WARM = 1.0  # warm images/s of the disk cache, as a multiple of the memory cache's


def scale_data_dir() -> Path:
    return Path(os.environ.get(SCALE_ENV) or DEFAULT_DATA)


def pss(pid: int) -> int:
    """Proportional set size of a process in bytes: its private pages, plus each shared page divided by its sharers."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return next((int(line.split()[1]) * 1024 for line in f if line.startswith("Pss:")), 0)
    except OSError:
        return 0  # it has ended


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (DataLoader workers, and theirs), from each process's parent in /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])  # the name, in (), may hold spaces
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def available_memory() -> int:
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))


class MemoryWatch:
    """Samples the PSS of this process and of all its descendants in a background thread; keeps the peaks."""

    def __init__(self, interval: float = 0.25):
        self.interval, self.lock, self.done = interval, threading.Lock(), threading.Event()
        self.peaks, self.low_memory = (0, 0), False
        self.thread = threading.Thread(target=self.watch, daemon=True)

    def __enter__(self) -> MemoryWatch:
        self.thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.done.set()
        self.thread.join()

    def watch(self) -> None:
        while not self.done.wait(self.interval):
            workers = sum(pss(pid) for pid in descendants(os.getpid()))
            tree = pss(os.getpid()) + workers
            with self.lock:
                self.peaks = (max(self.peaks[0], tree), max(self.peaks[1], workers))
            self.low_memory = self.low_memory or available_memory() < MIN_AVAILABLE

    def take(self) -> tuple[int, int]:
        """The peaks since the last call, ``(process tree, workers only)`` in bytes; starts anew."""
        time.sleep(2 * self.interval)  # one more sample of the phase that just ended
        with self.lock:
            peaks, self.peaks = self.peaks, (0, 0)
        return peaks


def epoch(loader, watch: MemoryWatch) -> int:
    """Pull every batch once; returns the number of images."""
    count = 0
    for images, _ in loader:
        count += len(images)
        if watch.low_memory:
            raise MemoryError(f"scale: under {MIN_AVAILABLE / GIB:.0f} GiB of memory left; measure a prefix (--quick)")
    return count


def measure(config: TrainConfig, watch: MemoryWatch) -> dict:
    """Cold (workers started, first epoch, the cache filled) and warm (second epoch) images/s and peak PSS of a cache."""
    with fresh_cache_dir() as folder:
        train = use_cache(build_datasets(config)[0], config.cache)
        watch.take()
        started = time.perf_counter()
        loader = build_loaders(config, train, train)[0]  # makes the empty cache file; the validation loader is unused
        images = epoch(loader, watch)
        cold, cold_peaks = time.perf_counter() - started, watch.take()
        started = time.perf_counter()
        epoch(loader, watch)
        warm, warm_peaks = time.perf_counter() - started, watch.take()
        # The space on disk: a prefix leaves the rest of its file sparse.
        file_size = sum(path.stat().st_blocks * 512 for path in folder.glob("*.pictures"))
        del loader  # stops the persistent workers
        gc.collect()
    for _ in range(100):
        if not descendants(os.getpid()):
            break
        time.sleep(0.1)
    return dict(images=images, cold=images / cold, warm=images / warm, peaks=(cold_peaks, warm_peaks), file=file_size)


def read_once(folder: Path) -> None:
    """Read every file once, so that both caches start with the photos in the OS page cache."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as f:
                while f.read(1 << 24):
                    pass


def run(data_dir: Path, workers: int, limit: int | None = None) -> list[Row]:
    """Images/s and peak PSS of the memory cache and the disk cache, one after the other in this process.

    Args:
        data_dir: The full-size Carvana simulation (or the real data).
        workers: DataLoader worker processes.
        limit: Use only the first N training photos (a prefix, when the memory cache would not fit).
    """
    if not (data_dir / "train").is_dir():
        command = f"python -m unet_lib sample-data carvana {data_dir} --full-size"
        print(f"  scale: no data in {data_dir}; write it with: {command} (or set {SCALE_ENV})")
        return [Row("scale: full-size Carvana", f"skipped: no {data_dir}")]
    config = recipe("recommended", data_dir=str(data_dir), num_workers=workers, limit=limit)
    read_once(data_dir)
    results = {}
    with MemoryWatch() as watch:
        for mode in ("memory", "disk"):
            print(f"  scale: {mode} cache ...", flush=True)
            results[mode] = measure(dataclasses.replace(config, cache=mode), watch)
    memory, disk = results["memory"], results["disk"]
    for mode, r in results.items():
        (cold_tree, cold_workers), (warm_tree, warm_workers) = (tuple(b / GIB for b in p) for p in r["peaks"])
        print(
            f"  scale: {mode} cache, {r['images']} photos, {workers} workers: cold {r['cold']:.1f} img/s,"
            f" warm {r['warm']:.1f} img/s; peak PSS cold {cold_tree:.2f} GiB (workers {cold_workers:.2f}),"
            f" warm {warm_tree:.2f} GiB (workers {warm_workers:.2f}); cache file {r['file'] / GIB:.2f} GiB"
        )
    limit_bytes = disk["file"] + SLACK
    label = f"scale {config.image_size[0]}x{config.image_size[1]} x{workers}, {disk['images']} photos"
    (disk_cold, _), (disk_warm, disk_warm_workers) = disk["peaks"]
    (memory_cold, _), (memory_warm, memory_warm_workers) = memory["peaks"]

    def gib(value: int) -> str:
        return f"{value / GIB:.3g} GiB"

    return [
        Row(f"{label}: cold, disk vs memory cache", f"{disk['cold']:.3g} img/s", f"{memory['cold']:.3g} img/s",
            f"{disk['cold'] / memory['cold']:.2f}x"),
        speedup_row(f"{label}: warm, disk vs memory cache", disk["warm"], memory["warm"], "img/s", TARGET_WARM, True),
        Row("scale: peak PSS of the process tree, cold", gib(disk_cold), gib(memory_cold), f"{memory_cold / disk_cold:.2f}x"),
        Row("scale: peak PSS of the process tree, warm", gib(disk_warm), gib(memory_warm), f"{memory_warm / disk_warm:.2f}x"),
        Row("scale: workers' peak PSS, warm", gib(disk_warm_workers), gib(memory_warm_workers),
            f"{memory_warm_workers / max(disk_warm_workers, 1):.2f}x", f"<= {gib(limit_bytes)}",
            disk_warm_workers <= limit_bytes),
        Row("scale: disk cache file", gib(disk["file"])),
    ]  # fmt: skip
