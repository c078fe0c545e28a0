"""Carvana run-length encoding: round trips, a hand-worked case, a plain-loop reference, bad strings."""

import numpy as np
import pytest
from conftest import rle_by_hand as reference_encode

from unet_lib.cli.carvana import rle_encode
from unet_lib.data.rle import rle_decode
from unet_lib.errors import InputError


def test_hand_worked_example():
    mask = np.array([[0, 1, 1], [1, 0, 0], [0, 0, 1]], dtype=np.uint8)
    # Row after row: 0 1 1 | 1 0 0 | 0 0 1 -> a run of 3 from pixel 2, a run of 1 at pixel 9.
    assert rle_encode(mask) == "2 3 9 1"
    np.testing.assert_array_equal(rle_decode("2 3 9 1", (3, 3)), mask)


def test_row_major_not_column_major():
    mask = np.zeros((4, 5), dtype=np.uint8)
    mask[1, :] = 1  # one whole row is a single run in row-major order
    assert rle_encode(mask) == "6 5"
    mask = np.zeros((4, 5), dtype=np.uint8)
    mask[:, 1] = 1  # one column is four runs
    assert rle_encode(mask) == "2 1 7 1 12 1 17 1"


@pytest.mark.parametrize(
    "mask, expected",
    [
        (np.zeros((3, 4), dtype=np.uint8), ""),
        (np.ones((3, 4), dtype=np.uint8), "1 12"),
        (np.array([[1, 0, 0, 0, 0, 1]], dtype=np.uint8), "1 1 6 1"),  # runs touch the first and last pixel
        (np.array([[1], [1], [0], [1]], dtype=bool), "1 2 4 1"),
    ],
)
def test_edge_cases(mask, expected):
    assert rle_encode(mask) == expected
    np.testing.assert_array_equal(rle_decode(expected, mask.shape), mask.astype(np.uint8))


@pytest.mark.parametrize("density", [0.02, 0.5, 0.98])
@pytest.mark.parametrize("shape", [(1, 1), (1, 37), (29, 1), (17, 23)])
def test_round_trip_matches_reference(shape, density):
    rng = np.random.default_rng([*shape, int(density * 100)])
    for _ in range(5):
        mask = (rng.random(shape) < density).astype(np.uint8)
        text = rle_encode(mask)
        assert text == reference_encode(mask)
        decoded = rle_decode(text, shape)
        assert decoded.dtype == np.uint8 and decoded.shape == shape
        np.testing.assert_array_equal(decoded, mask)


def test_round_trip_full_size_blobs():
    mask = np.zeros((1280, 1918), dtype=np.uint8)
    mask[300:900, 200:1700] = 1
    mask[:, -1] = 1
    mask[-1, :] = 1
    np.testing.assert_array_equal(rle_decode(rle_encode(mask), mask.shape), mask)


def test_decode_accepts_extra_whitespace_and_touching_runs():
    np.testing.assert_array_equal(rle_decode("  1 2\n3 1 ", (1, 4)), [[1, 1, 1, 0]])


@pytest.mark.parametrize(
    "text",
    [
        "1",  # odd number of values
        "1 2 3",
        "a b",  # not integers
        "1.5 2",
        "-1 2",
        "1 -2",
        "0 1",  # starts are 1-indexed
        "1 0",  # empty run
        "5 1 2 1",  # starts not increasing
        "1 3 2 1",  # overlapping runs
        "12 2",  # past the end of a 3x4 mask
        "1 13",
        "99999999999999999999999 1",  # far too large for any integer type
        "1,2",
        "\u0661 1",  # a non-ASCII digit
    ],
)
def test_decode_rejects_malformed(text):
    with pytest.raises(InputError, match="rle"):
        rle_decode(text, (3, 4))


@pytest.mark.parametrize("shape", [(0, 4), (3, -1), (3,), "ab", None])
def test_decode_rejects_bad_shape(shape):
    with pytest.raises(InputError, match="shape"):
        rle_decode("1 1", shape)


def test_decode_rejects_non_string():
    with pytest.raises(InputError, match="rle"):
        rle_decode(float("nan"), (3, 4))


@pytest.mark.parametrize("mask", [np.zeros((2, 2, 2)), np.array([[0, 2]]), np.array([[0.5, 1.0]]), np.array([[-1, 0]])])
def test_encode_rejects_non_binary(mask):
    with pytest.raises(InputError, match="mask"):
        rle_encode(mask)


def test_fuzz_only_input_error_escapes():
    rng = np.random.default_rng(0)
    alphabet = list("0123456789 -.,\n\tx")
    for _ in range(2000):
        text = "".join(rng.choice(alphabet, size=rng.integers(0, 20)))
        try:
            mask = rle_decode(text, (5, 7))
        except InputError:
            continue
        assert mask.shape == (5, 7) and set(np.unique(mask)) <= {0, 1}
        assert rle_encode(mask) == reference_encode(mask)
