"""``make bench``: every figure measured side by side with the original project, then one table of ratios.

python -m benchmarks.run            # the full run (about 30 minutes on a 2-core CPU)
python -m benchmarks.run --quick    # a smoke run of a minute or so: smaller sizes, fewer repeats
python -m benchmarks.run --only data,train-step
python -m benchmarks.run --only scale       # off by default: the full-size Carvana simulation, about 10 minutes

The exit status is 0 when every judged target is met and 1 when any is missed; the missed ones
are named below the table. A quick run is too small to meet every target (two epochs never reach
the Dice target), so it exits with 1 as well.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import tempfile
import time
from pathlib import Path

FIGURES = ("data", "train-step", "time-to-dice", "inference", "cuda", "scale", "precision", "analyze")
DEFAULT_FIGURES = tuple(f for f in FIGURES if f != "scale")  # scale needs the full-size simulation (1.8 GB): by name
NEEDS_SAMPLE = {"data", "time-to-dice", "inference", "precision", "analyze"}  # the figures reading --data


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much work each figure does; ``--quick`` shrinks all of it."""

    sample_cars: int = 8  # cars written when the data folder is absent (16 views each)
    data_limit: int | None = None  # training images the data figure loads (None: all)
    data_epochs: int = 4  # per fresh loader: the first is cold, the later half warm
    data_repeats: int = 2
    step_batch: int = 16  # the original configuration
    step_repeats: int = 2  # timed steps per contender, after a warm-up step each
    step_features: tuple[int, ...] | None = None  # None: the original 31 M parameter widths
    dice_size: tuple[int, int] = (96, 144)  # the demo's pictures and U-Net
    dice_features: tuple[int, ...] = (16, 32, 64, 128)
    dice_max_epochs: int = 50  # a cap for either recipe; the original stops earlier, see time_to_dice.py
    inference_images: int = 12  # per memory layout
    cuda_repeats: int = 5
    analyze_repeats: int = 3  # timed passes of analyze and evaluate each, after a warm-up
    analyze_size: tuple[int, int] = (96, 144)
    precision: str = "full"  # a plan in benchmarks.precision.PLANS: steps, inference, an epoch, trainings
    scale_workers: int = 4  # DataLoader workers of the scale figure
    scale_limit: int | None = None  # scale: use only the first N photos (None: all)


QUICK = Sizes(
    sample_cars=2,
    data_limit=16,
    data_epochs=2,
    data_repeats=1,
    step_batch=2,
    step_repeats=1,
    step_features=(16, 32, 64, 128),
    dice_size=(64, 96),
    dice_features=(4, 8, 16, 32),
    dice_max_epochs=2,
    inference_images=4,
    cuda_repeats=2,
    analyze_repeats=1,
    analyze_size=(32, 48),
    precision="quick",
    scale_workers=2,
    scale_limit=32,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of about a minute: small sizes, one repeat")
    parser.add_argument("--data", type=Path, default=Path("data/carvana"), help="Carvana folder (default data/carvana)")
    parser.add_argument(
        "--only", help=f"comma-separated figures to run, from {','.join(FIGURES)} (default: all but scale)"
    )
    parser.add_argument(
        "--scale-data",
        type=Path,
        help="scale: the full-size Carvana simulation (default $UNET_SCALE_DATA, else data/carvana-full)",
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: one per core)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader processes for our data pipeline")
    parser.add_argument("--compile", action="store_true", help="cuda figure: also torch.compile our model")
    args = parser.parse_args(argv)
    figures = DEFAULT_FIGURES if args.only is None else tuple(args.only.split(","))
    unknown = set(figures) - set(FIGURES)
    if unknown:
        parser.error(f"--only: unknown figure {sorted(unknown)[0]!r}; expected some of {','.join(FIGURES)}")
    args.figures = figures
    return args


def sample_data(folder: Path, cars: int) -> Path:
    """``folder`` when it exists; otherwise sample Carvana data (1918x1280 JPEG + GIF masks) written there."""
    if folder.exists():
        return folder
    from unet_lib.cli.sample import write_carvana_sample

    print(f"{folder} is absent: writing {cars} sample cars there (1918x1280 JPEGs and GIF masks)", flush=True)
    started = time.perf_counter()
    write_carvana_sample(folder, num_cars=cars)
    print(f"  done in {time.perf_counter() - started:.0f} s")
    return folder


def cpu_name() -> str:
    """The CPU model, as ``lscpu`` shows it (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    # OpenMP threads spin while they wait for each other; on a CPU shared with other work that
    # spinning steals the cores they wait for (8x slower here). Passive waiting must be chosen
    # before torch loads OpenMP, hence the imports below.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    from benchmarks.measure import fresh_cache_dir, print_table

    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"{cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
        f" (OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}), torch {torch.__version__},"
        f" CUDA: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}"
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch, fresh_cache_dir():  # picture caches: cold, and thrown away
        # A quick run without data writes a small sample it throws away; a full run keeps its sample.
        folder = args.data if args.data.exists() or not args.quick else Path(scratch) / "carvana"
        data_dir = sample_data(folder, sizes.sample_cars) if NEEDS_SAMPLE & set(args.figures) else folder
        rows = []
        for figure in args.figures:
            print(f"\n== {figure}", flush=True)
            rows += run_figure(figure, args, sizes, data_dir)
    print(f"\nall figures in {time.perf_counter() - started:.0f} s")
    print_table(rows)
    judged = [row for row in rows if row.passed is not None]
    missed = [row for row in judged if not row.passed]
    print(f"{len(judged) - len(missed)} of {len(judged)} targets met")
    for row in missed:
        shown = row.ratio if row.ratio != "-" else row.ours
        print(f"missed: {row.figure}: {shown}, target {row.target}")
    return 1 if missed else 0


def run_figure(figure: str, args: argparse.Namespace, sizes: Sizes, data_dir: Path) -> list:
    """The rows of one figure (a list of ``benchmarks.measure.Row``)."""
    import torch

    from benchmarks import analyze, cuda, data_pipeline, inference, precision, scale, time_to_dice, train_step
    from unet_lib.model import UNet

    if figure == "data":
        return data_pipeline.run(
            data_dir, sizes.data_epochs, sizes.data_repeats, args.workers, compare=16, limit=sizes.data_limit
        )
    if figure == "train-step":
        return train_step.run(sizes.step_batch, sizes.step_repeats, sizes.step_features)
    if figure == "analyze":
        return analyze.run(data_dir, sizes.analyze_repeats, sizes.analyze_size, 2 if args.quick else 8)
    if figure == "precision":
        return precision.run(data_dir, precision.PLANS[sizes.precision])
    if figure == "time-to-dice":
        return time_to_dice.run(data_dir, sizes.dice_size, sizes.dice_features, sizes.dice_max_epochs)
    if figure == "inference":
        torch.manual_seed(0)
        if args.quick:
            model, size, label = UNet(features=(8, 16, 32, 64)), (160, 240), "small U-Net 160x240"
        else:
            model, size, label = UNet(), (320, 480), "UNet() 31 M 320x480"
        return inference.run(data_dir, model, size, label, sizes.inference_images, args.workers)
    if figure == "scale":
        return scale.run(args.scale_data or scale.scale_data_dir(), sizes.scale_workers, sizes.scale_limit)
    return cuda.run(sizes.cuda_repeats, args.compile)


if __name__ == "__main__":
    raise SystemExit(main())
