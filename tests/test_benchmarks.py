"""The benchmarks measure the right things: the fast data pipeline gives the original's pictures,
FLOPs are counted as a hand count says, and a quick ``make bench`` run prints a table whose
verdicts and exit status agree with its numbers.

No timing is asserted here: speed is judged by ``make bench``, side by side in one run.
"""

import dataclasses
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from benchmarks import run
from benchmarks.data_pipeline import SIZE, TARGET_MASK_AGREEMENT, TARGET_PSNR, OriginalCarvana, original_pairs, psnr
from benchmarks.measure import Row
from benchmarks.train_step import step_flops
from unet_lib.cli.sample import write_carvana_sample
from unet_lib.config import recipe
from unet_lib.data import CarvanaDataset
from unet_lib.training import build_model

REPO = Path(__file__).resolve().parents[1]
# The rows of a quick run (run.QUICK's sizes); the CUDA rows depend on the machine.
QUICK_ROWS = [
    "data 320x480, cold epoch",
    "data 320x480, warm epoch",
    "data: image PSNR vs original",
    "data: mask pixels identical",
    "train step 160x240 b2 2M",
    "train step 160x240 b2 2M: channels_last vs NCHW",
    "train step: FLOP/s vs the cores' peak",
    "epochs to Dice 0.97 (64x96)",
    "submission, small U-Net 160x240",
    "submission, small U-Net 160x240: channels_last vs NCHW",
]
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


def check_verdicts(table: Table) -> None:
    """Every judged row says pass or FAIL as its numbers do, and the count and missed lines agree."""
    judged = {name: row for name, row in table.rows.items() if row["target"] != "-"}
    for name, row in table.rows.items():
        assert row["result"] in ({"pass", "FAIL"} if name in judged else {"-"}), (name, row)
        if row["ratio"] != "-":
            assert math.isfinite(number(row["ratio"])) and number(row["ratio"]) > 0, (name, row)
    failed = [name for name, row in judged.items() if row["result"] == "FAIL"]
    assert (table.met, table.judged) == (len(judged) - len(failed), len(judged))
    assert table.missed == failed
    for name, row in judged.items():
        # The value judged: the ratio when it is in the target's unit, else the measurement itself.
        unit = row["target"].split()[-1].lstrip("0123456789.")
        shown = row["ratio"] if row["ratio"] != "-" and row["ratio"].endswith(unit) else row["ours"]
        if not shown.endswith(unit) or abs(number(shown) - number(row["target"])) <= rounding(shown):
            continue  # not comparable (an epoch count against a speedup), or too close to tell after rounding
        at_most = row["target"].startswith("<=")  # a memory ceiling, not a floor
        met = number(shown) <= number(row["target"]) if at_most else number(shown) >= number(row["target"])
        assert (row["result"] == "pass") == met, (name, row)


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


def test_scale_figure_on_a_small_sample(tmp_path, capsys):
    """Both caches run, their memory is sampled, the warm target is judged, and no cache file is left."""
    from benchmarks import scale
    from benchmarks.measure import print_table

    write_carvana_sample(tmp_path / "carvana", num_cars=1, size=(480, 320), num_test_cars=0)
    rows = scale.run(tmp_path / "carvana", workers=2, limit=8)
    print_table(rows)
    print(f"{sum(r.passed is True for r in rows)} of {sum(r.passed is not None for r in rows)} targets met")
    table = parse_table(capsys.readouterr().out)
    assert [row.figure for row in rows][-1] == "scale: disk cache file" and len(rows) == 6
    for name, row in table.rows.items():
        assert number(row["ours"]) > 0, (name, row)
    assert number(table.rows["scale: disk cache file"]["ours"]) > 0  # 8 slots written
    table.missed = [name for name, row in table.rows.items() if row["result"] == "FAIL"]
    check_verdicts(table)
    assert scale.run(tmp_path / "absent", workers=2)[0].ours.startswith("skipped: no ")


def test_peak_names_its_source(monkeypatch):
    """The CPU's figure when it is higher than the fastest kernel, else that kernel; never silently."""
    from benchmarks import train_step

    monkeypatch.setattr(train_step, "spec_peak", lambda cores: (100e9, "AVX2+FMA: ..."))
    peak, source = train_step.peak_of((80e9, "torch.mm 4096"), 2)
    assert peak == 100e9 and source.startswith("CPU spec, AVX2+FMA") and "torch.mm 4096 at 80.0 GFLOP/s" in source
    peak, source = train_step.peak_of((120e9, "conv 3x3 256ch"), 2)
    assert peak == 120e9 and source.startswith("measured, above the CPU spec 100.0 GFLOP/s")
    monkeypatch.setattr(train_step, "spec_peak", lambda cores: None)
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


def test_quick_bench_prints_its_table(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--threads", "1", "--data", str(tmp_path / "absent")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode in (0, 1), result.stderr[-2000:]
    table = parse_table(result.stdout)
    if torch.cuda.is_available():
        step = [name for name in table.rows if name.startswith("cuda step 320x480 b8, ")]  # named by its dtype
        assert len(step) == 1, list(table.rows)
        cuda_rows = [*step, "cuda step: peak memory"]
    else:
        cuda_rows = ["cuda train step 320x480 b8"]
    optional = ["seconds to Dice 0.97"]  # printed only when two epochs reach the Dice target
    assert [name for name in table.rows if name not in optional] == QUICK_ROWS + cuda_rows, result.stdout[-3000:]
    for name, row in table.rows.items():
        if row["ours"] != "skipped: no GPU":
            assert math.isfinite(number(row["ours"])), (name, row)
    check_verdicts(table)
    assert table.judged >= 7
    assert result.returncode == (1 if table.met < table.judged else 0)
    assert not (tmp_path / "absent").exists()  # a quick run writes its sample to a temporary folder
