"""The benchmarks measure the right things: the fast data pipeline gives the original's pictures,
FLOPs are counted as a hand count says, and a quick ``make bench`` run prints a table whose ratios
come from their own columns and whose verdicts and exit status agree with its numbers.

No timing is asserted here: speed is judged by ``make bench``, side by side in one run.
"""

import contextlib
import dataclasses
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from benchmarks import run
from benchmarks.data_pipeline import SIZE, TARGET_MASK_AGREEMENT, TARGET_PSNR, OriginalCarvana, original_pairs, psnr
from benchmarks.measure import Row, best_rate, print_table
from benchmarks.train_step import step_flops
from unet_lib.cli.sample import write_carvana_sample
from unet_lib.config import recipe
from unet_lib.data import CarvanaDataset
from unet_lib.runtime import cpu_bf16
from unet_lib.training import build_model

REPO = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?|[-+]?\b(inf|nan)\b", re.IGNORECASE)


@dataclasses.dataclass
class Table:
    """What ``benchmarks.run`` printed at the end: the rows by figure, the count line and the missed lines."""

    rows: dict[str, dict[str, str]]  # figure -> {"ours", "original", "ratio", "target", "result"}
    met: int
    judged: int
    missed: list[str]  # the figures named on the "missed:" lines


def parse_table(out: str) -> Table:
    """Read the table back: its columns start where the runs of dashes above the header start."""
    lines = out.splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("---") and set(line) <= {"-", " "}]
    assert len(rules) >= 3, f"no table in the output:\n{out[-3000:]}"
    top, below_header, bottom = rules[-3:]
    starts = [m.start() for m in re.finditer(r"-+", lines[top])]
    ends = starts[1:] + [None]

    def cells(line: str) -> list[str]:
        return [line[start:end].strip() for start, end in zip(starts, ends, strict=True)]

    header = cells(lines[top + 1])
    assert header == ["figure", "ours", "original", "ratio", "target", "result"] and below_header == top + 2
    rows = {}
    for line in lines[below_header + 1 : bottom]:
        figure, *values = cells(line)
        assert figure not in rows, f"row {figure!r} printed twice"
        rows[figure] = dict(zip(header[1:], values, strict=True))
    summary = re.fullmatch(r"(\d+) of (\d+) targets met", lines[bottom + 1])
    assert summary, f"expected 'N of M targets met' below the table, got {lines[bottom + 1]!r}"
    missed = [line.removeprefix("missed: ").rsplit(": ", 1)[0] for line in lines[bottom + 2 :] if line.strip()]
    return Table(rows, int(summary[1]), int(summary[2]), missed)


def number(cell: str) -> float:
    """The first number in a cell such as ``"30 img/s"``, ``"> 2.6x"`` or ``"59%"``."""
    found = NUMBER.search(cell)
    assert found, f"no number in {cell!r}"
    return float(found[0])


def rounding(cell: str) -> float:
    """Half a unit in the last printed digit of the cell's number: ``"3.74x"`` -> 0.005, ``"59%"`` -> 0.5."""
    digits = NUMBER.search(cell)[1] or ""
    return 0.5 * 10 ** -len(digits.partition(".")[2])


def unit(cell: str) -> str:
    """The unit after a cell's number: ``"30 img/s"`` -> ``"img/s"``, ``"166.2 GFLOP/s spec"`` -> ``"GFLOP/s"``."""
    rest = cell[NUMBER.search(cell).end() :].split()
    return rest[0] if rest else ""


def interval(cell: str) -> tuple[float, float]:
    """The values a printed number may have come from (it was rounded to its last digit)."""
    value, half = number(cell), rounding(cell)
    return value - half, value + half


def check_ratio(name: str, row: dict[str, str]) -> None:
    """A ratio is computed from its own row: ours / original for a rate (``.../s``, higher is better), else
    original / ours (seconds, memory, epochs: lower is better); the ratio of the rounded columns, within rounding.

    A lower bound (``"> 30 s"``, a run stopped at its budget) gives a lower bound (``"> 2.5x"``), and only then.
    """
    ours, original, ratio = row["ours"], row["original"], row["ratio"]
    assert unit(ours) == unit(original), (name, row)
    assert ratio.startswith(">") == (original.startswith(">") and not ours.startswith(">")), (name, row)
    (ours_low, ours_high), (original_low, original_high) = interval(ours), interval(original)
    if unit(ours).endswith("/s"):
        low, high = ours_low / original_high, ours_high / original_low if original_low > 0 else math.inf
    else:
        low, high = original_low / ours_high, original_high / ours_low if ours_low > 0 else math.inf
    scale = 100 if ratio.endswith("%") else 1
    assert ratio.endswith(("x", "%")), (name, row)
    assert scale * low - rounding(ratio) <= number(ratio) <= scale * high + rounding(ratio), (name, row)


def check_verdicts(table: Table) -> None:
    """Every ratio comes from its row; every judged row says pass or FAIL as its numbers do; the count and
    the missed lines agree with the rows."""
    judged = {name: row for name, row in table.rows.items() if row["target"] != "-"}
    for name, row in table.rows.items():
        assert row["result"] in ({"pass", "FAIL"} if name in judged else {"-"}), (name, row)
        if row["ratio"] != "-":
            check_ratio(name, row)
    failed = [name for name, row in judged.items() if row["result"] == "FAIL"]
    assert (table.met, table.judged) == (len(judged) - len(failed), len(judged))
    assert table.missed == failed
    for name, row in judged.items():
        assert not row["ours"].startswith("skipped"), (name, row)  # nothing measured, nothing judged
        if row["ours"].startswith(">"):  # the target was never reached within the run's budget
            assert row["result"] == "FAIL", (name, row)
            continue
        # The value judged: the ratio when it is in the target's unit, else the measurement itself.
        target_unit = row["target"].split()[-1].lstrip("0123456789.")
        shown = row["ratio"] if row["ratio"] != "-" and row["ratio"].endswith(target_unit) else row["ours"]
        assert shown.endswith(target_unit), (name, row)  # every target is in the unit of the ratio or of ours
        if abs(number(shown) - number(row["target"])) <= rounding(shown):
            continue  # too close to tell after rounding
        at_most = row["target"].startswith("<=")  # a memory ceiling, not a floor
        met = number(shown) <= number(row["target"]) if at_most else number(shown) >= number(row["target"])
        assert (row["result"] == "pass") == met, (name, row)


def printed_table(rows: list[Row], capsys) -> Table:
    """The table and count line as ``benchmarks.run`` prints them, read back."""
    capsys.readouterr()
    print_table(rows)
    judged = [row for row in rows if row.passed is not None]
    print(f"{sum(row.passed for row in judged)} of {len(judged)} targets met")
    for row in judged:
        if not row.passed:
            print(f"missed: {row.figure}: {row.ratio if row.ratio != '-' else row.ours}, target {row.target}")
    return parse_table(capsys.readouterr().out)


def test_the_table_checks_catch_a_wrong_ratio_a_wrong_verdict_and_a_wrong_count(capsys):
    """The checks above can fail: each row below is wrong in one way that a bug in ``benchmarks`` could make."""
    good = [
        Row("rate", "8 img/s", "2 img/s", "4.00x", ">= 2x", True),  # 8 / 2
        Row("time", "0.5 s", "2 s", "4.00x", ">= 5x", False),  # 2 / 0.5, short of 5x
        Row("share", "40.0 GFLOP/s", "160.0 GFLOP/s spec", "25%", ">= 50%", False),
        Row("memory", "1.5 GiB", "3 GiB", "2.00x", "<= 2 GiB", True),  # judged by ours, a ceiling
        Row("budget", "12 s", "> 30 s", "> 2.5x", ">= 2x", True),
        Row("never", "> 2", "> 2", target=">= 2x", passed=False),
        Row("shown", "3 img/s"),
    ]
    check_verdicts(printed_table(good, capsys))
    wrong = [
        Row("time the wrong way up", "0.5 s", "2 s", "0.25x"),
        Row("rate the wrong way up", "8 img/s", "2 img/s", "0.25x"),
        Row("share of the wrong column", "40.0 GFLOP/s", "160.0 GFLOP/s", "400%"),
        Row("bound shown as a value", "12 s", "> 30 s", "2.50x"),
        Row("missed but passed", "0.5 s", "2 s", "4.00x", ">= 5x", True),
        Row("ceiling read as a floor", "1.5 GiB", "3 GiB", "2.00x", "<= 2 GiB", False),
        Row("never reached but passed", "> 2", "> 2", target=">= 2x", passed=True),
    ]
    for row in wrong:
        with pytest.raises(AssertionError):
            check_verdicts(printed_table([good[0], row], capsys))
    table = printed_table(good, capsys)
    table.met += 1  # a count line that disagrees with the rows
    with pytest.raises(AssertionError):
        check_verdicts(table)
    table = printed_table(good, capsys)
    table.missed = table.missed[:1]  # a missed target left off the "missed:" lines
    with pytest.raises(AssertionError):
        check_verdicts(table)


@pytest.fixture(scope="module")
def full_size_car(tmp_path_factory) -> Path:
    """One sample car (16 views) at Kaggle's 1918x1280, where the 1/4-scale JPEG decode applies."""
    root = tmp_path_factory.mktemp("carvana")
    write_carvana_sample(root, num_cars=1, num_test_cars=0)
    return root


def test_fast_pipeline_gives_the_original_pictures(full_size_car):
    ours = CarvanaDataset(full_size_car, "train", size=SIZE, val_fraction=0.0)
    original = OriginalCarvana(original_pairs(ours))
    assert len(ours) == len(original) == 16
    for i in (0, 4, 8, 12):  # front, side, back, other side
        image, mask = ours[i]
        ref_image, ref_mask = original[i]
        assert image.shape == ref_image.shape == (3, *SIZE)
        assert psnr(image, ref_image.clamp(0, 1)) >= TARGET_PSNR
        assert (mask == (ref_mask[0] > 0.5)).float().mean().item() >= TARGET_MASK_AGREEMENT


def test_scale_figure_on_a_small_sample(tmp_path, capsys, monkeypatch):
    """Both caches run, their memory is sampled, the warm target is judged, and no cache file is left."""
    from benchmarks import scale

    # Sampled every 50 ms instead of 250: each phase waits two intervals for its last sample (3 s in all).
    watch = scale.MemoryWatch
    monkeypatch.setattr(scale, "MemoryWatch", lambda: watch(interval=0.05))
    folders, fresh = [], scale.fresh_cache_dir  # where each cache is written, to see it gone afterwards

    @contextlib.contextmanager
    def recorded():
        with fresh() as folder:
            folders.append(folder)
            yield folder

    monkeypatch.setattr(scale, "fresh_cache_dir", recorded)
    write_carvana_sample(tmp_path / "carvana", num_cars=1, size=(480, 320), num_test_cars=0)
    rows = scale.run(tmp_path / "carvana", workers=2, limit=8)
    table = printed_table(rows, capsys)
    label = "scale 320x480 x2, 8 photos"  # the recommended recipe's size, 2 workers, the first 8 photos
    assert list(table.rows) == [
        f"{label}: cold, disk vs memory cache",
        f"{label}: warm, disk vs memory cache",
        "scale: peak PSS of the process tree, cold",
        "scale: peak PSS of the process tree, warm",
        "scale: workers' peak PSS, warm",
        "scale: disk cache file",
    ]
    for name, row in table.rows.items():
        assert number(row["ours"]) > 0, (name, row)
    # The disk cache file holds at least the 8 decoded 320x480 RGB pictures and masks (its header aside).
    assert number(table.rows["scale: disk cache file"]["ours"]) * 2**30 >= 8 * 320 * 480 * 4 * 0.99
    check_verdicts(table)
    assert len(folders) == 2 and not any(folder.exists() for folder in folders)  # memory, then disk: both gone
    assert scale.run(tmp_path / "absent", workers=2)[0].ours.startswith("skipped: no ")


def test_peak_names_its_source(monkeypatch):
    """The CPU's figure when it is higher than the fastest kernel, else that kernel; never silently."""
    from benchmarks import train_step

    monkeypatch.setattr(train_step, "spec_peak", lambda cores, dtype: (100e9, "AVX2+FMA: ..."))
    peak, source = train_step.peak_of((80e9, "torch.mm 4096"), 2)
    assert peak == 100e9 and source.startswith("CPU spec, AVX2+FMA") and "torch.mm 4096 at 80.0 GFLOP/s" in source
    peak, source = train_step.peak_of((120e9, "conv 3x3 256ch"), 2)
    assert peak == 120e9 and source.startswith("measured, above the CPU spec 100.0 GFLOP/s")
    monkeypatch.setattr(train_step, "spec_peak", lambda cores, dtype: None)
    peak, source = train_step.peak_of((80e9, "torch.mm 2048"), 2)
    assert peak == 80e9 and "reports no vector width" in source and "torch.mm 2048 at 80.0 GFLOP/s" in source


def test_psnr_by_hand():
    reference = torch.zeros(3, 4, 4)
    assert psnr(reference + 0.1, reference) == pytest.approx(20.0)  # 10 log10(1 / 0.01)
    assert psnr(reference, reference) == float("inf")


def test_step_flops_match_a_hand_count():
    """Forward: 2 * MACs of every convolution; backward: twice that, less the first layer's input gradient."""
    config = dataclasses.replace(recipe("original-160x240", batch_size=2), features=(8, 16, 32, 64))
    model = build_model(config)
    forward = []

    def count(module, inputs, output):
        kh, kw = module.kernel_size
        if isinstance(module, nn.ConvTranspose2d):  # each input pixel feeds out_channels * kh * kw outputs
            forward.append(2 * inputs[0].numel() * module.out_channels * kh * kw // module.groups)
        else:  # each output pixel sums in_channels * kh * kw products
            forward.append(2 * output.numel() * module.in_channels * kh * kw // module.groups)

    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            module.register_forward_hook(count)
    model(torch.rand(2, 3, *config.image_size))
    # The images need no gradient, so the first convolution's backward computes only its weight gradient.
    assert step_flops(config, 2) == 3 * sum(forward) - forward[0]


def test_exit_status_follows_the_targets(monkeypatch, capsys, tmp_path):
    """1 when a target is missed, with the missed rows named; 0 when all are met or none is judged."""
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # main sets it when unset; keep this process as it was
    fast, slow = (
        Row("fast", "8 img/s", "2 img/s", "4.00x", ">= 2x", True),
        Row("slow", "1 s", "1 s", "1.00x", ">= 2x", False),
    )
    shown = Row("shown", "3 img/s")  # reported, not judged
    for rows, expected, met, judged in (([fast, slow], 1, 1, 2), ([fast, shown], 0, 1, 1), ([shown], 0, 0, 0)):
        monkeypatch.setattr(run, "run_figure", lambda *_, rows=rows: rows)
        status = run.main(["--quick", "--only", "inference", "--data", str(tmp_path)])
        table = parse_table(capsys.readouterr().out)
        assert status == expected and list(table.rows) == [row.figure for row in rows]
        assert (table.met, table.judged) == (met, judged) and table.missed == (["slow"] if slow in rows else [])
        check_verdicts(table)


# A quick run made smaller still (run.QUICK is what --quick runs): a 0.12 M parameter U-Net for the train
# step, 32x48 pictures and a 7.6 k parameter U-Net for time-to-Dice, 2 test pictures for the submission.
SMALLER = dict(step_features=(4, 8, 16, 32), dice_size=(32, 48), dice_features=(4, 8), inference_images=2)


def small_peak(dtype: torch.dtype = torch.float32) -> tuple[float, str]:
    """A real but short kernel measurement, in place of ``measured_peak``'s survey (15 s here; ``peak_of``,
    which chooses between it and the CPU's figure, is tested above)."""
    a = torch.randn(512, 512, dtype=dtype)
    return best_rate(2 * 512**3, lambda: torch.mm(a, a), 3), "torch.mm 512"


def test_quick_bench_prints_a_table_that_agrees_with_itself(monkeypatch, capsys, tmp_path):
    """Every default figure runs, in order; each ratio comes from its row; verdicts, count and exit status agree."""
    from benchmarks import precision, train_step

    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # main sets it when unset; keep this process as it was
    monkeypatch.setattr(run, "QUICK", dataclasses.replace(run.QUICK, **SMALLER))
    monkeypatch.setattr(train_step, "measured_peak", small_peak)
    small = precision.Case((4, 8), (32, 48), 2)  # 7.6 k parameters; the quick recipe at 32x48 for one epoch
    plan = precision.Plan((small,), (small,), 1, "quick", (("num_epochs", 1), ("image_size", (32, 48))), 2, 1)
    monkeypatch.setitem(precision.PLANS, "quick", plan)
    write_carvana_sample(tmp_path / "carvana", num_cars=2, size=(480, 320), num_test_cars=1)
    threads = torch.get_num_threads()
    try:
        status = run.main(["--quick", "--threads", "1", "--data", str(tmp_path / "carvana")])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    table = parse_table(out)
    assert ", 1 torch threads (OMP_WAIT_POLICY=PASSIVE)" in out.splitlines()[0]
    assert "  data: 16 images, ours with 2 workers: cold epoch " in out
    if torch.cuda.is_available():
        step = [name for name in table.rows if name.startswith("cuda step 320x480 b8, ")]  # named by its dtype
        assert len(step) == 1, list(table.rows)
        cuda_rows = [*step, "cuda step: peak memory"]
    else:
        cuda_rows = ["cuda train step 320x480 b8"]
        assert table.rows[cuda_rows[0]] == dict(ours="skipped: no GPU", original="-", ratio="-", target="-", result="-")
    native = cpu_bf16()[0]
    step_rows = ["train step 160x240 b2 0M"]  # 0.12 M parameters, printed in whole millions
    if native:  # ours runs bf16 + channels_last: also in fp32, each against its own peak
        step_rows += [
            "train step 160x240 b2 0M: ours in fp32 (--no-amp)",
            "train step, ours: FLOP/s vs the cores' bf16 peak",
            "train step, ours, fp32: FLOP/s vs the cores' fp32 peak",
        ]
    else:
        step_rows += ["train step, ours: FLOP/s vs the cores' fp32 peak"]
    case = "4..8 wide (0.0 M), 32x48, batch 2"
    epoch = "quick epoch 32x48, 16 pictures"  # one of the two sample cars trains, the other validates
    if native:
        precision_rows = [
            f"train step {case}: bf16 vs fp32",
            f"train step {case}: bf16 + channels_last vs fp32",
            f"inference {case}: bf16 vs fp32",
            f"inference {case}: bf16 + channels_last vs fp32",
            "dense kernels: the fastest bf16 vs the fastest fp32",
            f"{epoch}: bf16 + channels_last vs fp32",
            f"{epoch}: reading the pictures, bf16 + channels_last",
            "evaluate 16 pictures 32x48: bf16 + channels_last vs fp32",
            "quick recipe to Dice 0.97, seed 0: bf16 + channels_last vs fp32",
            "quick recipe, best Dice over 2 seeds: bf16 mean - fp32 mean, against fp32's spread",
        ]
    else:  # --amp chooses fp32: timed against --no-amp, no bf16 and no trainings
        precision_rows = [  # the same computation twice: the fastest of each compared (one run each here)
            f"train step {case}: chosen vs fp32, fastest of 1",
            f"inference {case}: chosen vs fp32, fastest of 1",
            f"{epoch}: chosen vs fp32, fastest of 1",
            f"{epoch}: reading the pictures, chosen",
            "evaluate 16 pictures 32x48: chosen vs fp32",
        ]
    # 2 epochs at 32x48 never reach Dice 0.97: the epochs row says so and fails; no seconds row is printed.
    assert list(table.rows) == [
        "data 320x480, cold epoch",
        "data 320x480, warm epoch",
        "data: image PSNR vs original",
        "data: mask pixels identical",
        *step_rows,
        "epochs to Dice 0.97 (32x48)",
        "submission, small U-Net 160x240",
        "submission, small U-Net 160x240: channels_last vs NCHW",
        *cuda_rows,
        *precision_rows,
        "analyze vs evaluate, carvana 16 pictures 32x48 (time, goal <= 1.5x)",
        "analyze vs evaluate, cityscapes 2 pictures 32x48 (time, goal <= 1.5x)",
    ], out[-3000:]
    assert table.rows["epochs to Dice 0.97 (32x48)"] | {"original": "?"} == dict(
        ours="> 2", original="?", ratio="-", target=">= 2x", result="FAIL"
    )
    for name, row in table.rows.items():
        if row["ours"] != "skipped: no GPU" and not row["ours"].startswith(">"):
            assert math.isfinite(number(row["ours"])) and number(row["ours"]) >= 0, (
                name,
                row,
            )  # 0 %: no wait for pictures
    check_verdicts(table)
    # 4 data, 2 train step, time to Dice, the precision figure's, 2 analyze (+ the CUDA step)
    assert table.judged == 7 + (5 if native else 4) + 2 + torch.cuda.is_available()
    assert "epochs to Dice 0.97 (32x48)" in table.missed
    assert status == 1


def test_bench_command_line_refuses_an_unknown_figure():
    """``python -m benchmarks.run`` is a command; a figure it does not know is a usage error, before any work."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--only", "data,speed"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines()[-1].endswith(
        "error: --only: unknown figure 'speed'; expected some of data,train-step,time-to-dice,inference,cuda,scale,precision,analyze"
    )
