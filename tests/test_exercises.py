"""Every notebook's exercises have the same shape: a numbered task with its expected outcome, a cell the
learner fills in that ends with the check, and a collapsed solution that must pass the check. nbval runs the
solutions (``make test``); ``test_exercises_<notebook>.py`` shows that each check refuses wrong answers."""

from __future__ import annotations

import importlib
import io
import re
from contextlib import redirect_stdout
from pathlib import Path

import jupytext
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = ("train_carvana", "test_carvana", "inspect_layers", "train_cityscapes")
MIN_EXERCISES = 4
TITLE = re.compile(r"^\*\*Exercise (\d+): .+\*\*", re.MULTILINE)
SOLUTION_HEAD = "# Solution to exercise {}."


verdict = importlib.import_module("exercises").verdict


def exercises(name: str) -> list[tuple[int, list]]:
    """``(number, [task, learner's cell, solution])`` for each exercise of a notebook, in order."""
    cells = jupytext.read(NOTEBOOKS / f"{name}.py").cells
    found = []
    for i, cell in enumerate(cells):
        match = TITLE.search(cell.source) if cell.cell_type == "markdown" else None
        if match:
            found.append((int(match.group(1)), cells[i : i + 3]))
    return found


@pytest.mark.parametrize("name", NAMES)
def test_every_notebook_has_numbered_exercises_that_check_themselves(name):
    found = exercises(name)
    numbers = [number for number, _ in found]
    assert len(found) >= MIN_EXERCISES, f"{name}: {len(found)} exercises, expected at least {MIN_EXERCISES}"
    assert numbers == list(range(1, len(found) + 1)), f"{name}: exercises numbered {numbers}"
    module = importlib.import_module(f"exercises.{name}")
    for number, (task, attempt, solution) in found:
        where = f"{name}, exercise {number}"
        assert "Expected" in task.source, f"{where}: the task states no expected outcome"
        assert attempt.cell_type == "code" and "answer = ..." in attempt.source, f"{where}: no cell to fill in"
        assert re.search(rf"^check_exercise_{number}\(answer\b[^\n]*\)\s*$", attempt.source, re.MULTILINE), (
            f"{where}: the learner's cell does not end with its check"
        )
        assert solution.cell_type == "code" and "solution" in solution.metadata.get("tags", []), f"{where}: no solution"
        assert solution.metadata.get("jupyter", {}).get("source_hidden"), f"{where}: the solution is not collapsed"
        assert solution.source.startswith(SOLUTION_HEAD.format(number)), f"{where}: solution's first line"
        assert re.search(rf"assert check_exercise_{number}\(answer\b", solution.source), f"{where}: unchecked"
        assert callable(getattr(module, f"check_exercise_{number}", None)), f"{where}: no check in {module.__name__}"


@pytest.mark.parametrize(
    ("answer", "hint", "expected", "printed"),
    [
        (..., None, False, "Exercise 3: not tried yet"),
        (None, None, False, "Exercise 3: not tried yet"),
        (4, None, True, "Exercise 3: right. four"),
        (5, "count again", False, "Exercise 3: not yet. Hint: count again"),
        ("x", "raise", False, "Exercise 3: not yet. Hint: ValueError: invalid literal"),
    ],
)
def test_a_verdict_says_not_tried_right_or_a_hint(answer, hint, expected, printed):
    def judge(value):
        if hint == "raise":
            int(value)  # the kind of answer is wrong: the error's message is the hint
        return hint

    out = io.StringIO()
    with redirect_stdout(out):
        assert verdict(3, answer, judge, "four") is expected
    assert out.getvalue().startswith(printed)
