"""The notebooks' exercises and their checks: after trying exercise N, call ``check_exercise_N(answer)``.

Each notebook has its module (``exercises.train_carvana``, ...). A check prints "right" with what the answer
shows, or "not yet" with a hint, and returns True or False; an answer left as ``...`` is "not tried yet". Every
solution (a collapsed cell under its exercise) ends with ``assert check_exercise_N(answer)``, so running the
notebook checks the solutions, ``tests/test_exercises_<notebook>.py`` checks that wrong answers are refused, and
``tests/test_exercises.py`` that every exercise has its task, its check and its collapsed solution.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def verdict(number: int, answer: Any, judge: Callable[[Any], str | None], right: str) -> bool:
    """Print and return the verdict on ``answer`` to exercise ``number``.

    Args:
        number: The exercise's number in its notebook.
        answer: What the learner wrote; ``...`` (Ellipsis) or None means not tried yet.
        judge: Returns None for a right answer, else the hint to print (an exception it raises is a hint too).
        right: What to print for a right answer: what it shows, in a sentence.

    Returns:
        Whether the answer is right.
    """
    if answer is ... or answer is None:
        print(f"Exercise {number}: not tried yet; write your answer, then run this cell again.")
        return False
    try:
        hint = judge(answer)
    except Exception as err:  # a wrong kind of answer (a shape, a type): its message is the hint
        hint = f"{type(err).__name__}: {err}"
    if hint is None:
        print(f"Exercise {number}: right. {right}")
        return True
    print(f"Exercise {number}: not yet. Hint: {hint}")
    return False
