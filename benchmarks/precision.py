"""Figure: the precision ``--amp`` chooses on this CPU against exact fp32, side by side in one process.

- **Step and inference.** A training step (``train_step``: forward, loss, backward, fused AdamW) and an inference
  batch (``predict_logits``) of the same U-Net on the same batch, at two network sizes, in fp32, bf16 autocast,
  and bf16 autocast + channels_last; and the fastest dense bf16 kernel against the fastest fp32 one: what the
  products alone gain (a whole step gains more where bf16 also halves the memory its other layers move).
- **An epoch.** The demo recipe's training epoch on the sample data through its DataLoader (the pictures read
  from the warm picture cache, flipped, batched), and the same steps on batches already in memory: the
  difference is what reading the pictures costs, the share of the epoch the step waits for data.
- **Evaluation.** ``evaluate`` over the validation pictures, the demo's metrics and loss.
- **Time to a score.** The demo recipe trained from scratch (``unet_lib.train``, as ``make demo`` does) with
  each precision from the same seeds: the seconds until validation Dice first reaches 0.97, and the best Dice,
  whose difference between the precisions is judged against the seed-to-seed spread of fp32.

Where the CPU has no native bf16 (``runtime.cpu_bf16``; hide it with ``ONEDNN_MAX_CPU_ISA=AVX2``), ``--amp`` chooses
fp32: the figure then times that choice against ``--no-amp``, which must be no slower, and skips bf16 (emulated:
10-25x slower) and the trainings (the same computation twice).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.measure import Row, interleaved, measured_peak, median, spread
from unet_lib.cli.commands import cached_datasets
from unet_lib.cli.profiles import keep_freed_memory
from unet_lib.config import TrainConfig, recipe
from unet_lib.data import build_loaders
from unet_lib.evaluation import Scores, evaluate, predict_logits
from unet_lib.losses import make_loss
from unet_lib.model import UNet
from unet_lib.runtime import Precision, cpu_bf16, seed_everything
from unet_lib.training import build_model, make_optimizer, train, train_one_epoch, train_step

TARGET_STEP = 1.8  # what --amp chooses, against fp32, where the CPU has native bf16
TARGET_EPOCH = 1.7
TARGET_INFERENCE = 2.3
TARGET_SAME = 0.95  # without native bf16: the chosen precision (fp32) against --no-amp, within the noise
TARGET_DATA_SHARE = 0.15  # of the chosen precision's epoch spent waiting for pictures
TARGET_DICE = 0.97


@dataclasses.dataclass(frozen=True)
class Case:
    """A network and batch a step or an inference is timed on."""

    features: tuple[int, ...] | None  # None: the original UNet(), 31 M parameters
    size: tuple[int, int]
    batch: int

    def model(self) -> UNet:
        return UNet() if self.features is None else UNet(3, 1, self.features)

    def label(self) -> str:
        widths = (64, 512) if self.features is None else (self.features[0], self.features[-1])
        millions = sum(p.numel() for p in self.model().parameters()) / 1e6
        return f"{widths[0]}..{widths[1]} wide ({millions:.1f} M), {self.size[0]}x{self.size[1]}, batch {self.batch}"


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the figure measures: ``benchmarks.run.Sizes`` makes the full plan and ``--quick`` a small one."""

    steps: tuple[Case, ...] = (Case((16, 32, 64, 128), (176, 240), 8), Case(None, (176, 240), 2))
    inferences: tuple[Case, ...] = (Case((16, 32, 64, 128), (176, 240), 8), Case(None, (320, 480), 1))
    repeats: int = 3  # timed calls per precision, after a warm-up each
    recipe: str = "demo"  # the epoch, evaluation and time-to-score recipe
    overrides: tuple[tuple[str, object], ...] = ()  # e.g. (("num_epochs", 2),) for a quick run
    seeds: int = 3
    kernel_repeats: int = 3  # timed calls of each dense kernel (best of)


PLANS = {
    "full": Plan(),
    "quick": Plan(  # a smoke run: one small network, the quick recipe for 2 epochs, 2 seeds
        steps=(Case((4, 8, 16, 32), (64, 96), 2),),
        inferences=(Case((4, 8, 16, 32), (64, 96), 2),),
        repeats=1,
        recipe="quick",
        overrides=(("num_epochs", 2),),
        seeds=2,
        kernel_repeats=1,
    ),
}


def run(data_dir: Path, plan: Plan) -> list[Row]:
    """The figure's rows, measured in a process of its own that keeps freed memory for reuse as the command
    line does on a CPU (it cannot be undone)."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        rows = pool.apply(measure, (data_dir, plan, torch.get_num_threads()))
        pool.close()
        pool.join()  # the worker ends on its own: nothing left for the resource tracker to clean up
    return rows


def measure(data_dir: Path, plan: Plan, threads: int) -> list[Row]:
    """:func:`run`'s measurement, in the process it runs in."""
    torch.set_num_threads(threads)
    keep_freed_memory()
    native, why = cpu_bf16()
    chosen = Precision.choose(torch.device("cpu"))
    print(f"  precision: --amp chooses {chosen}", flush=True)
    fp32 = Precision.choose(torch.device("cpu"), amp=False)
    if native:
        precisions = {"fp32": fp32, "bf16": Precision(torch.bfloat16, None, False, "cpu", why), "bf16 + cl": chosen}
    else:
        precisions = {"fp32": fp32, "chosen": chosen}
    rows = []
    for case in plan.steps:
        rows += timed_rows("train step", case, step_calls(case, precisions), plan.repeats, native)
    for case in plan.inferences:
        rows += timed_rows("inference", case, inference_calls(case, precisions), plan.repeats, native)
    if native:
        rows.append(kernel_row(plan.kernel_repeats))
    config = recipe(plan.recipe, data_dir=str(data_dir), **dict(plan.overrides))
    two = {"fp32": fp32, list(precisions)[-1]: chosen}  # what --no-amp and --amp run
    rows += epoch_rows(plan.recipe, config, two, plan.repeats, native)
    if native:
        rows += time_to_score_rows(plan.recipe, config, plan.seeds)
    else:
        print("  precision: time to a score skipped: --amp chooses fp32 here, the same training as --no-amp")
    return rows


def step_calls(case: Case, precisions: dict[str, Precision]) -> dict:
    """A training step for each precision, on copies of one model and one batch."""
    torch.manual_seed(0)
    base = case.model()
    images = torch.rand(case.batch, 3, *case.size)  # (B, 3, H, W)
    masks = (images[:, 0] > 0.5).long()  # (B, H, W)
    loss_fn, config = make_loss("bce_dice", 1), recipe("demo")
    calls = {}
    for name, precision in precisions.items():
        model = precision.prepare(copy.deepcopy(base))
        optimizer = make_optimizer(model, config)
        calls[name] = lambda m=model, o=optimizer, p=precision: train_step(m, images, masks, loss_fn, o, p)
    return calls


def inference_calls(case: Case, precisions: dict[str, Precision]) -> dict:
    """An inference batch for each precision, on copies of one model and one batch."""
    torch.manual_seed(0)
    base, images = case.model(), torch.rand(case.batch, 3, *case.size)
    calls = {}
    for name, precision in precisions.items():
        model = precision.prepare(copy.deepcopy(base))
        calls[name] = lambda m=model, p=precision: predict_logits(m, images, amp_dtype=p.dtype)
    return calls


def timed_rows(kind: str, case: Case, calls: dict, repeats: int, native: bool) -> list[Row]:
    """Each precision's seconds per call against fp32's, the last one (what --amp chooses) judged."""
    interleaved(calls, 1)  # warm-up: kernels chosen for these shapes, memory found
    times = interleaved(calls, repeats)
    label = f"{kind} {case.label()}"
    for name, seconds in times.items():
        print(f"  precision, {label}, {name}: {spread(seconds)}", flush=True)
    target = TARGET_SAME if not native else TARGET_STEP if kind == "train step" else TARGET_INFERENCE
    return ratio_rows(label, times, target)


def ratio_rows(label: str, times: dict[str, list[float]], target: float) -> list[Row]:
    """``label: NAME vs fp32`` for every timing but fp32's, lower is better; the last one judged against ``target``.

    Medians, except where the one compared is ``"chosen"``: fp32 itself (no native bf16), the same computation
    twice, which noise can only slow; then the fastest of each, so that the verdict says whether the choice
    costs anything rather than which one the machine's other work happened to hit.
    """
    stat = min if "chosen" in times else median
    base, rows = stat(times["fp32"]), []
    for name in list(times)[1:]:
        ratio, judged = base / stat(times[name]), name == list(times)[-1]
        shown = "bf16 + channels_last" if name == "bf16 + cl" else name
        how = f", fastest of {len(times[name])}" if stat is min else ""
        rows.append(
            Row(
                f"{label}: {shown} vs fp32{how}",
                f"{stat(times[name]):.3g} s",
                f"{base:.3g} s",
                f"{ratio:.2f}x",
                f">= {target:g}x" if judged else "-",
                ratio >= target if judged else None,
            )
        )
    return rows


def kernel_row(repeats: int) -> Row:
    """The fastest dense bf16 kernel against the fastest fp32 one: what the matrix products and convolutions alone
    gain; a whole step also moves half the bytes through its elementwise layers in bf16."""
    (bf16, bf16_kernel), (fp32, fp32_kernel) = measured_peak(repeats, torch.bfloat16), measured_peak(repeats)
    print(
        f"  precision: fastest kernels: {bf16_kernel} {bf16 / 1e9:.1f} GFLOP/s, {fp32_kernel} {fp32 / 1e9:.1f} GFLOP/s"
    )
    return Row(
        "dense kernels: the fastest bf16 vs the fastest fp32",
        f"{bf16 / 1e9:.1f} GFLOP/s",
        f"{fp32 / 1e9:.1f} GFLOP/s",
        f"{bf16 / fp32:.2f}x",
    )


def epoch_rows(
    recipe_name: str, config: TrainConfig, precisions: dict[str, Precision], repeats: int, native: bool
) -> list[Row]:
    """A training epoch through the DataLoader and from batches in memory, and an evaluation, per precision.

    The pictures come through the picture cache, as the command line reads them; a first epoch per precision
    fills it and warms the kernels up, and is not counted.
    """
    seed_everything(config.seed)
    train_set, val_set = cached_datasets(config, None)
    train_loader, val_loader = build_loaders(config, train_set, val_set)
    loss_fn = make_loss(config.loss, 1)
    models = {}
    for name, precision in precisions.items():
        seed_everything(config.seed)
        model = precision.prepare(build_model(config))
        models[name] = model, make_optimizer(model, config), precision
    in_memory = list(train_loader)  # the same number of batches, already read

    def epoch(name: str, batches):
        model, optimizer, precision = models[name]
        return lambda: train_one_epoch(model, batches, loss_fn, optimizer, precision=precision)

    def scored(name: str):
        model, _, precision = models[name]
        return lambda: evaluate(model, val_loader, [Scores(1)], loss_fn, precision.dtype, progress=False)

    loaded = {name: epoch(name, train_loader) for name in precisions}
    memory = {f"{name}, in memory": epoch(name, in_memory) for name in precisions}
    evaluations = {name: scored(name) for name in precisions}
    everything = loaded | memory | {f"{name}, evaluate": call for name, call in evaluations.items()}
    interleaved(everything, 1)  # warm-up: the cache filled, kernels chosen
    times = interleaved(everything, repeats)
    label = f"{config.image_size[0]}x{config.image_size[1]}, {len(train_set)} pictures"
    for name, seconds in times.items():
        print(f"  precision, {recipe_name} epoch {label}, {name}: {spread(seconds)}", flush=True)
    last = list(precisions)[-1]
    measured = 1 - median(times[f"{last}, in memory"]) / median(times[last])
    waited = max(0.0, measured)  # below 0: the epoch from memory was the slower one, by chance
    shown = "bf16 + channels_last" if last == "bf16 + cl" else last
    print(
        f"  precision: reading the pictures takes {measured:.0%} of a {shown} epoch"
        f" ({config.num_workers} DataLoader workers, {config.cache} cache){', that is, none' if measured < 0 else ''}",
        flush=True,
    )
    target = TARGET_EPOCH if native else TARGET_SAME
    epoch_label = f"{recipe_name} epoch {label}"
    rows = ratio_rows(epoch_label, {name: times[name] for name in precisions}, target)
    rows.append(
        Row(
            f"{epoch_label}: reading the pictures, {shown}",
            f"{100 * waited:.0f}%",
            target=f"<= {100 * TARGET_DATA_SHARE:.0f}%",
            passed=waited <= TARGET_DATA_SHARE,
        )
    )
    rate = {name: len(val_set) / median(times[f"{name}, evaluate"]) for name in precisions}
    rows.append(
        Row(
            f"evaluate {len(val_set)} pictures {label.split(',')[0]}: {shown} vs fp32",
            f"{rate[last]:.3g} img/s",
            f"{rate['fp32']:.3g} img/s",
            f"{rate[last] / rate['fp32']:.2f}x",
        )
    )
    return rows


@dataclasses.dataclass
class Training:
    """One run of the recipe: its best validation Dice and the seconds until it first reached the target."""

    best: float
    seconds: float | None  # None: never reached
    total: float
    dices: list[float]


def train_once(config: TrainConfig) -> Training:
    """``unet_lib.train`` as ``make demo`` runs it (the picture cache included), its lines kept out of the way."""
    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()):
        history = train(config, out, datasets=cached_datasets)
    dices, elapsed, reached = [row["val_dice"] for row in history], 0.0, None
    for row in history:
        elapsed += row["seconds"]
        if reached is None and row["val_dice"] >= TARGET_DICE:
            reached = elapsed
    return Training(max(dices), reached, elapsed, dices)


def time_to_score_rows(recipe_name: str, config: TrainConfig, seeds: int) -> list[Row]:
    """The recipe from scratch with ``seeds`` seeds in each precision, alternating: time to the target Dice
    from seed 0 in both, and the best Dice's difference between the precisions against fp32's seed spread."""
    runs: dict[str, list[Training]] = {"fp32": [], "bf16 + channels_last": []}
    for seed in range(seeds):
        order = list(runs) if seed % 2 == 0 else list(reversed(runs))
        for name in order:
            started = time.perf_counter()
            done = train_once(dataclasses.replace(config, seed=seed, amp=name != "fp32"))
            runs[name].append(done)
            reached = "never" if done.seconds is None else f"after {done.seconds:.0f} s"
            print(
                f"  precision, {recipe_name} recipe, seed {seed}, {name}: best val Dice {done.best:.4f},"
                f" {TARGET_DICE} {reached}, {len(done.dices)} epochs in {time.perf_counter() - started:.0f} s",
                flush=True,
            )
    fp32, bf16 = runs["fp32"][0], runs["bf16 + channels_last"][0]
    label = f"{recipe_name} recipe to Dice {TARGET_DICE}, seed 0: bf16 + channels_last vs fp32"
    if bf16.seconds is None:
        rows = [Row(label, f"> {bf16.total:.0f} s", "-" if fp32.seconds is None else f"{fp32.seconds:.0f} s")]
    elif fp32.seconds is None:
        rows = [Row(label, f"{bf16.seconds:.0f} s", f"> {fp32.total:.0f} s", f"> {fp32.total / bf16.seconds:.1f}x")]
    else:
        rows = [Row(label, f"{bf16.seconds:.0f} s", f"{fp32.seconds:.0f} s", f"{fp32.seconds / bf16.seconds:.2f}x")]
    best = {name: [done.best for done in done_runs] for name, done_runs in runs.items()}
    noise = max(best["fp32"]) - min(best["fp32"])  # fp32's seed-to-seed spread
    apart = abs(statistics.mean(best["bf16 + channels_last"]) - statistics.mean(best["fp32"]))
    print(
        f"  precision: best val Dice over {seeds} seeds: fp32 {', '.join(f'{d:.4f}' for d in best['fp32'])}"
        f" (spread {noise:.4f}); bf16 + channels_last {', '.join(f'{d:.4f}' for d in best['bf16 + channels_last'])};"
        f" the means {apart:.4f} apart",
        flush=True,
    )
    rows.append(
        Row(
            f"{recipe_name} recipe, best Dice over {seeds} seeds: bf16 mean - fp32 mean, against fp32's spread",
            f"{apart:.4f}",
            target=f"<= {noise:.4f}",
            passed=apart <= noise,
        )
    )
    return rows
