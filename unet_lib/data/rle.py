"""Decoding Kaggle Carvana's run-length masks (``train_masks.csv``; the encoder is ``cli.carvana.rle_encode``): a
mask is flattened row after row and written as 1-indexed ``"start length ..."`` pairs, one per run of car pixels."""

from __future__ import annotations

import re

import numpy as np

from unet_lib.errors import InputError

_TOKENS = re.compile(r"[0-9]+(?:\s+[0-9]+)*", re.ASCII)


def rle_decode(rle: str, shape: tuple[int, int]) -> np.ndarray:
    """Decode Carvana run-length pairs into a mask.

    Args:
        rle: ``"start length ..."`` pairs (1-indexed, row-major); ``""`` is an empty mask.
        shape: ``(H, W)`` of the mask.

    Returns:
        uint8 [H, W] of 0/1; a malformed string or a run outside the image is an ``InputError``.
    """
    try:
        height, width = (int(n) for n in shape)
    except (TypeError, ValueError):
        raise InputError(f"shape: expected (height, width), got {shape!r}") from None
    if height <= 0 or width <= 0:
        raise InputError(f"shape: expected two positive sizes (height, width), got {shape!r}")
    if not isinstance(rle, str):
        raise InputError(f"rle: expected a string of 'start length' pairs, got {type(rle).__name__}")
    size, text = height * width, rle.strip()
    if not text:
        return np.zeros((height, width), dtype=np.uint8)
    if not _TOKENS.fullmatch(text):
        raise InputError(f"rle: expected whitespace-separated non-negative integers, got {rle[:40]!r}")
    tokens = text.split()
    if len(tokens) % 2:
        raise InputError(f"rle: expected 'start length' pairs, got an odd number of values ({len(tokens)})")
    if max(len(token.lstrip("0")) for token in tokens) > len(str(size)):  # before int64 overflows
        raise InputError(f"rle: a value is larger than the {height}x{width} image ({size} pixels)")
    numbers = np.array(tokens, dtype=np.int64)
    starts, lengths = numbers[0::2] - 1, numbers[1::2]  # 0-indexed starts
    ends = starts + lengths  # exclusive
    if starts.min() < 0:
        raise InputError("rle: run starts are 1-indexed, found a start of 0")
    if lengths.min() <= 0:
        raise InputError("rle: run lengths must be positive, found a length of 0")
    if (starts[1:] < ends[:-1]).any():
        raise InputError("rle: runs must be sorted by start and must not overlap")
    if ends[-1] > size:
        raise InputError(f"rle: a run ends at pixel {ends[-1]}, past the end of the {height}x{width} image ({size})")
    edges = np.zeros(size + 1, dtype=np.int8)  # +1 where a run starts, -1 just past where it ends
    edges[starts] += 1
    edges[ends] -= 1
    return np.cumsum(edges[:-1], dtype=np.int8).astype(np.uint8).reshape(height, width)
