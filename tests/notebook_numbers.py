"""The notebooks' key numbers, computed again by ``make test``'s nbval run, against the committed outputs.

nbval runs every cell of every notebook and fails a cell that raises; it compares outputs only where a
cell asks for it (``--nbval-lax``), exactly. The scores a reader is told (validation Dice, mIoU, pixel
accuracy) cannot be compared exactly: the committed outputs come from one machine in one precision
(the notebooks say which), and another CPU rounds differently, or runs fp32 where this one ran bf16.
This plugin (``pytest -p tests.notebook_numbers``) compares them within the tolerances below, each
several times the difference measured between bf16 and fp32 on the same quick run, and fails the cell
whose number moved further.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest


@dataclasses.dataclass(frozen=True)
class Key:
    """A number the notebook prints: ``pattern``'s groups in a cell's text output, and how far it may move."""

    name: str
    pattern: str  # a regular expression, searched line by line; each group is one number
    tolerance: float  # absolute


DICE = 0.01  # bf16 against fp32 on the same quick run: 0.0012 apart (validation Dice 0.9527 and 0.9515)
MIOU = 0.03  # 0.004 apart (best validation mIoU 0.188 and 0.192)
ACCURACY = 0.01  # 0.002 apart

KEYS: dict[str, tuple[Key, ...]] = {
    "train_carvana": (
        Key("best validation Dice", r"^best val_dice (\d\.\d+) at epoch", DICE),
        Key("validation Dice", r"^  dice +(\d\.\d+)$", DICE),
        Key("validation pixel accuracy", r"^  pixel_accuracy +(\d\.\d+)$", ACCURACY),
    ),
    "test_carvana": (
        Key("validation Dice", r"^  dice +(\d\.\d+)$", DICE),
        Key("Dice at full size, without and with TTA", r"^at full size \(Kaggle\) +(\d\.\d+) +(\d\.\d+)$", DICE),
    ),
    "inspect_layers": (
        Key("validation Dice in the checkpoint", r"^validation Dice stored in the checkpoint: (\d\.\d+)$", DICE),
        Key("Dice with all skips", r"^all skips +Dice (\d\.\d+)", DICE),
    ),
    "train_cityscapes": (
        Key("best validation mIoU", r"^best val_miou (\d\.\d+) at epoch", MIOU),
        Key("validation mIoU and pixel accuracy", r"^mIoU (\d\.\d+), pixel accuracy (\d\.\d+)$", MIOU),
    ),
}


def output_text(outputs: list[dict]) -> str:
    """What a cell printed and displayed as text: its streams and ``text/plain`` results."""
    parts = []
    for output in outputs:
        text = output.get("text") or output.get("data", {}).get("text/plain") or ""
        parts.append("".join(text) if isinstance(text, list) else text)
    return "\n".join(parts)


def numbers(key: Key, text: str) -> list[float]:
    """Every number ``key`` finds in ``text``, in order."""
    return [float(group) for match in re.finditer(key.pattern, text, re.MULTILINE) for group in match.groups()]


def moved(notebook: str, committed: str, now: str) -> list[str]:
    """One line for each key number of ``notebook`` that differs between the two texts by more than its tolerance
    (or is printed a different number of times)."""
    problems = []
    for key in KEYS.get(notebook, ()):
        before, after = numbers(key, committed), numbers(key, now)
        if len(before) != len(after):
            problems.append(f"{key.name}: printed {len(after)} numbers, the committed output {len(before)}")
            continue
        for old, new in zip(before, after, strict=True):
            if abs(new - old) > key.tolerance:
                problems.append(f"{key.name} {new:g}, committed {old:g}: more than {key.tolerance:g} apart")
    return problems


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """After an nbval cell ran: its key numbers against the committed ones."""
    result = yield
    outputs, cell = getattr(item, "test_outputs", None), getattr(item, "cell", None)
    if outputs is not None and cell is not None and cell.get("outputs"):
        notebook = Path(str(item.path)).stem
        if problems := moved(notebook, output_text(cell["outputs"]), output_text(outputs)):
            raise AssertionError(f"{item.path.name}, {item.name}: " + "; ".join(problems))
    return result
