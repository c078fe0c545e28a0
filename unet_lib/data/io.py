"""Reading pictures and masks from disk, with one clear error per bad file."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from unet_lib.errors import InputError


def _open(path: Path) -> Image.Image:
    """Open an image lazily: only its header is read."""
    try:
        with warnings.catch_warnings():
            # PIL only warns about 89 to 179 megapixels: decoding would be slow and huge, and no photo is near that.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"{path}: image header claims an implausibly large size; the file is corrupt") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:  # PIL's plugins raise all of these
        if path.is_file() and path.stat().st_size == 0:
            raise InputError(f"{path}: empty file; expected a JPEG, PNG or GIF image") from None
        raise InputError(
            f"{path}: not a readable image, or truncated ({err.__class__.__name__}); expected a JPEG, PNG or GIF"
        ) from None
    return image


def _load(image: Image.Image, path: Path) -> Image.Image:
    """Decode now, so that a truncated or corrupt file fails here with its name."""
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        image.close()  # the file handle PIL opened lazily
        raise InputError(f"{path}: corrupt or truncated image ({err}); re-download or re-export it") from None
    return image


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file, read from its header only."""
    with _open(Path(path)) as image:
        return image.size


def _draft_request(size: tuple[int, int], min_size: tuple[int, int]) -> tuple[int, int]:
    """The (W, H) to ask ``Image.draft`` for to get the smallest scale still >= ``min_size``: libjpeg rounds the scaled
    size up (1918 / 4 -> 480), PIL picks the scale rounding down (1918 // 480 = 3 -> 1/2: twice the pixels)."""
    width, height = size
    for scale in (8, 4, 2):
        if -(-width // scale) >= min_size[1] and -(-height // scale) >= min_size[0]:  # ceil division
            return width // scale, height // scale
    return width, height


def read_image(path: str | Path, min_size: tuple[int, int] | None = None) -> torch.Tensor:
    """Read a picture as uint8 RGB [3, H, W]; grayscale, palette, RGBA and 16-bit pictures are converted.

    Args:
        path: The picture file.
        min_size: The ``(H, W)`` the caller will resize to. A JPEG is then decoded straight at the smallest
            scale (1/2, 1/4, 1/8) still that big: libjpeg scales in the DCT domain (1918x1280 at 1/4 is
            480x320), much faster than decoding at full size.
    """
    path = Path(path)
    with _open(path) as opened:  # closes the file, whatever happens below
        if min_size is not None and opened.format == "JPEG":
            opened.draft("RGB", _draft_request(opened.size, min_size))
        return rgb_tensor(_load(opened, path))


def rgb_tensor(image: Image.Image) -> torch.Tensor:
    """A decoded PIL image as uint8 RGB [3, H, W]: grayscale, palette, RGBA (alpha dropped), 16-bit converted."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit (or 32-bit int) grayscale: scale to 8 bits by the type's range.
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if array.max() > 255 or image.mode.startswith("I;16") else 255.0
        image = Image.fromarray(np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if image.mode != "RGB":
        image = image.convert("RGB")
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous()  # (H, W, 3) -> (3, H, W)


SINGLE_CHANNEL_MODES = ("1", "L", "P", "I", "I;16", "I;16L", "I;16B")  # P: palette PNGs and GIFs store indices


def read_class_mask(path: str | Path) -> tuple[np.ndarray, str]:
    """Read a single-channel mask of class indices: ``(uint8 [H, W], the file's PIL mode)``. Any 8- or 16-bit mode
    is read (a palette's indices as stored); a colour picture or values above 255 are refused."""
    path = Path(path)
    with _open(path) as opened:
        image = _load(opened, path)
        mode = image.mode
        if mode not in SINGLE_CHANNEL_MODES:
            channels = len(image.getbands())
            raise InputError(
                f"{path}: mask has {channels} channel{'s' * (channels > 1)} ({mode}); expected a single-channel"
                " PNG whose pixel values are class indices (not a colour picture of the classes)"
            )
        array = np.array(image)
    if array.dtype != np.uint8:  # bool (mode "1": 0/1), or 16- and 32-bit integers
        if array.size and (array.min() < 0 or array.max() > 255):
            raise InputError(f"{path}: {mode} mask holds values up to {array.max()}; expected 8-bit class indices")
        array = array.astype(np.uint8)
    return array, mode
