"""Fuzzing the readers for a bounded time: random and mutated bytes give a clear InputError, never a crash."""

import io
import random
import time

import numpy as np
import pytest
from conftest import make_carvana_tree
from PIL import Image

from unet_lib import InputError, UNet
from unet_lib.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from unet_lib.data import CarvanaDataset
from unet_lib.data.io import read_image, read_label_map, read_mask
from unet_lib.rle import rle_decode

SECONDS = 2.0  # per target: bounded, so the suite stays fast


def mutations(valid: bytes, rng: random.Random):
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


def fuzz(valid: bytes, path, read, seed: int) -> int:
    rng, count = random.Random(seed), 0
    deadline = time.monotonic() + SECONDS
    for data in mutations(valid, rng):
        if time.monotonic() > deadline:
            return count
        path.write_bytes(data)
        try:
            read(path)
        except InputError as err:
            assert str(path) in str(err)
        count += 1
    return count


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "seed,fmt,read",
    [(10, "JPEG", read_image), (11, "PNG", read_image), (12, "GIF", read_mask), (13, "PNG", read_label_map)],
)
def test_image_readers(tmp_path, seed, fmt, read):
    pixels = np.random.default_rng(0).integers(0, 2, (24, 32), dtype=np.uint8)
    image = Image.fromarray(pixels * 255).convert("RGB") if read is read_image else Image.fromarray(pixels, "L")
    if fmt == "GIF":
        image = Image.fromarray(pixels, "P")
        image.putpalette([0, 0, 0, 255, 255, 255])
    assert fuzz(encoded(image, fmt), tmp_path / f"x.{fmt.lower()}", read, seed) > 20


def test_dataset_items(tmp_path):
    make_carvana_tree(tmp_path, cars=1, views=1)
    dataset = CarvanaDataset(tmp_path, "train", size=(16, 24))
    jpeg, gif = dataset.image_path(0), tmp_path / "train_masks" / f"{dataset.ids[0]}_mask.gif"
    valid_jpeg, valid_gif = jpeg.read_bytes(), gif.read_bytes()
    assert fuzz(valid_jpeg, jpeg, lambda _: dataset[0], seed=1) > 20
    jpeg.write_bytes(valid_jpeg)
    assert fuzz(valid_gif, gif, lambda _: dataset[0], seed=2) > 20


def test_rle_decoder_with_random_strings():
    rng = random.Random(3)
    alphabet = "0123456789 \t\n-+.,e x"
    deadline, count = time.monotonic() + SECONDS, 0
    while time.monotonic() < deadline:
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        try:
            mask = rle_decode(text, (8, 12))
        except InputError:
            continue
        assert mask.shape == (8, 12) and set(np.unique(mask).tolist()) <= {0, 1}
        count += 1
    assert count > 0  # some strings were valid run lists


def test_checkpoint_loader(tmp_path):
    valid = save_checkpoint(
        {"model": UNet(features=(2, 4)).state_dict(), "epoch": 1}, tmp_path / "good.pt"
    ).read_bytes()

    def read(path):
        try:
            model_from_checkpoint(path)
        except InputError:
            raise
        # A mutation that still loads must at least be a dict.
        assert isinstance(load_checkpoint(path), dict)

    assert fuzz(valid, tmp_path / "fuzzed.pt", read, seed=4) > 5
