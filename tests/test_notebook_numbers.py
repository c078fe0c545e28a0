"""``tests/notebook_numbers.py``, the plugin that compares the notebooks' key numbers when nbval re-runs them:
every key still finds its number in the committed outputs, a number within its tolerance passes, one further
away fails its cell, and ``make test`` loads the plugin."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from notebook_numbers import DICE, KEYS, moved, numbers, output_text

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("notebook", sorted(KEYS))
def test_every_key_finds_its_number_in_the_committed_outputs(notebook):
    cells = json.loads((REPO / "notebooks" / f"{notebook}.ipynb").read_text())["cells"]
    text = "\n".join(output_text(cell.get("outputs", [])) for cell in cells)
    for key in KEYS[notebook]:
        found = numbers(key, text)
        assert found and all(0 <= n <= 1 for n in found), (notebook, key.name, found)


def test_numbers_within_the_tolerance_pass_and_further_ones_are_named():
    committed = "best val_dice 0.9527 at epoch 5\n  dice            0.9527\n"
    assert moved("train_carvana", committed, committed.replace("0.9527", "0.9515")) == []
    problems = moved("train_carvana", committed, committed.replace("0.9527", f"{0.9527 - 2 * DICE:.4f}"))
    assert problems == [
        "best validation Dice 0.9327, committed 0.9527: more than 0.01 apart",
        "validation Dice 0.9327, committed 0.9527: more than 0.01 apart",
    ]
    assert moved("train_carvana", committed, "best val_dice 0.9527 at epoch 5\n") == [
        "validation Dice: printed 0 numbers, the committed output 1"
    ]
    assert moved("a_notebook_without_keys", committed, "") == []


def small_notebook(folder: Path, printed: str) -> Path:
    """A one-cell ``train_carvana.ipynb`` that prints ``printed``, its committed output saying Dice 0.9527."""
    cell = nbformat.v4.new_code_cell(f"print({printed!r})", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="best val_dice 0.9527 at epoch 5\n")]
    path = folder / "train_carvana.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("dice, passes", [("0.9515", True), ("0.9300", False)])
def test_the_plugin_fails_the_cell_whose_number_moved(tmp_path, dice, passes):
    path = small_notebook(tmp_path, f"best val_dice {dice} at epoch 5")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.notebook_numbers"]
        + ["--nbval-lax", "--rootdir", str(tmp_path), str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (done.returncode == 0) == passes, done.stdout[-3000:]
    if not passes:
        assert "best validation Dice 0.93, committed 0.9527: more than 0.01 apart" in done.stdout


def test_make_test_loads_the_plugin_for_the_notebooks():
    makefile = (REPO / "Makefile").read_text()
    nbval = next(line for line in makefile.splitlines() if "--nbval-lax" in line)
    assert "-p tests.notebook_numbers" in nbval
