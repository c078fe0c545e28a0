"""Fuzzing the readers: malformed files either load or give a one-line InputError naming the file, never a crash.

Each test tries a fixed number of inputs drawn from a fixed seed, so every run checks the same
files. A failure names its seed and case; ``UNET_FUZZ_SEED=N`` draws other inputs (each test adds
its own offset to N).
"""

import io
import itertools
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import make_carvana_tree
from PIL import Image

from unet_lib import InputError, UNet
from unet_lib.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from unet_lib.data import CarvanaDataset
from unet_lib.data.io import read_class_mask, read_image
from unet_lib.data.rle import rle_decode

SEED = int(os.environ.get("UNET_FUZZ_SEED", "0"))
CASES = 1000  # inputs per target: about a second each on one core
RLE_CASES = 20_000  # random strings for the RLE decoder, which is much faster


def seeded(offset: int) -> int:
    """The seed of one test, printed so that a failing run can be repeated."""
    seed = SEED + offset
    print(f"fuzz seed {seed} (UNET_FUZZ_SEED={SEED} + {offset})")
    return seed


def mutations(valid: bytes, rng: random.Random) -> Iterator[bytes]:
    """Endless variants of a valid file: truncated, bit-flipped, spliced, or pure noise."""
    while True:
        data = bytearray(valid)
        kind = rng.randrange(4)
        if kind == 0:
            data = data[: rng.randrange(len(data))]
        elif kind == 1:
            for _ in range(rng.randint(1, 20)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == 2:
            at = rng.randrange(len(data))
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        else:
            data = bytearray(rng.randbytes(rng.randint(0, 2048)))
        yield bytes(data)


def fuzz(valid: bytes, path: Path, read: Callable[[Path], object], seed: int, cases: int = CASES) -> tuple[int, int]:
    """Write ``cases`` mutations of ``valid`` to ``path`` and ``read`` each one.

    Returns:
        ``(loaded, refused)``: how many inputs were read and how many gave an InputError.
    """
    rng, loaded, refused = random.Random(seed), 0, 0
    for case, data in enumerate(itertools.islice(mutations(valid, rng), cases)):
        where = f"fuzz seed {seed}, case {case} of {path.name}"
        path.write_bytes(data)
        try:
            read(path)
        except InputError as err:
            assert str(path) in str(err), f"{where}: the error does not name the file: {err}"
            assert "\n" not in str(err), f"{where}: the error is not one line: {err!r}"
            refused += 1
            continue
        except Exception as err:  # any other exception is the crash this test looks for
            raise AssertionError(f"{where}: {type(err).__name__} instead of an InputError: {err}") from err
        loaded += 1
    return loaded, refused


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "offset,fmt,read",
    [(10, "JPEG", read_image), (11, "PNG", read_image), (12, "GIF", read_class_mask), (13, "PNG", read_class_mask)],
)
def test_image_readers(tmp_path, offset, fmt, read):
    seed = seeded(offset)
    pixels = np.random.default_rng(0).integers(0, 2, (24, 32), dtype=np.uint8)
    image = Image.fromarray(pixels * 255).convert("RGB") if read is read_image else Image.fromarray(pixels, "L")
    if fmt == "GIF":
        image = Image.fromarray(pixels, "P")
        image.putpalette([0, 0, 0, 255, 255, 255])
    loaded, refused = fuzz(encoded(image, fmt), tmp_path / f"x.{fmt.lower()}", read, seed)
    assert refused > 0, f"fuzz seed {seed}: no input was refused ({loaded} loaded): the mutations broke nothing"


def test_dataset_items(tmp_path):
    make_carvana_tree(tmp_path, cars=1, views=1)
    dataset = CarvanaDataset(tmp_path, "train", size=(16, 24))
    jpeg, gif = dataset.image_path(0), tmp_path / "train_masks" / f"{dataset.ids[0]}_mask.gif"
    valid_jpeg, valid_gif = jpeg.read_bytes(), gif.read_bytes()
    for path, valid, offset in ((jpeg, valid_jpeg, 1), (gif, valid_gif, 2)):
        seed = seeded(offset)
        loaded, refused = fuzz(valid, path, lambda _: dataset[0], seed)
        assert refused > 0, f"fuzz seed {seed}: no {path.name} was refused ({loaded} loaded)"
        path.write_bytes(valid)  # the other file is fuzzed next to a valid one


def test_rle_decoder_with_random_strings():
    seed = seeded(3)
    rng = random.Random(seed)
    alphabet = "0123456789 \t\n-+.,e x"
    decoded = 0
    for case in range(RLE_CASES):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        try:
            mask = rle_decode(text, (8, 12))
        except InputError as err:
            assert "\n" not in str(err), f"fuzz seed {seed}, case {case} ({text!r}): the error is not one line"
            continue
        assert mask.shape == (8, 12), f"fuzz seed {seed}, case {case} ({text!r}): shape {mask.shape}"
        assert set(np.unique(mask).tolist()) <= {0, 1}, f"fuzz seed {seed}, case {case} ({text!r})"
        decoded += 1
    assert 0 < decoded < RLE_CASES, f"fuzz seed {seed}: {decoded} of {RLE_CASES} strings decoded"


def test_checkpoint_loader(tmp_path):
    seed = seeded(4)
    valid = save_checkpoint(
        {"model": UNet(features=(2, 4)).state_dict(), "epoch": 1}, tmp_path / "good.pt"
    ).read_bytes()

    def read(path):
        model_from_checkpoint(path)
        # A mutation that still loads must at least be a dict.
        assert isinstance(load_checkpoint(path), dict)

    loaded, refused = fuzz(valid, tmp_path / "fuzzed.pt", read, seed, cases=CASES // 2)
    assert refused > 0, f"fuzz seed {seed}: no checkpoint was refused ({loaded} loaded)"
