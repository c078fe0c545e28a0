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
    return image_header(path)[0]


def image_header(path: str | Path) -> tuple[tuple[int, int], str]:
    """((width, height), PIL mode) of an image file, read from its header only."""
    with _open(Path(path)) as image:
        return image.size, image.mode


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
Colors = tuple[tuple[int, int, int], ...]  # colors[i]: the RGB colour of class i in colour-coded masks


def read_class_mask(path: str | Path, colors: Colors | None = None) -> tuple[np.ndarray, str]:
    """Read a mask of class indices: ``(uint8 [H, W], the file's PIL mode)``.

    Args:
        path: The mask file. Any 8- or 16-bit single-channel mode is read as indices (a palette's as stored);
            values above 255 are refused.
        colors: The class colours of colour-coded masks (``classes.txt`` lines ``name r g b``): an RGB or RGBA
            mask is read through them (mode ``"RGB"``); without them a colour mask is refused.
    """
    path = Path(path)
    with _open(path) as opened:
        image = _load(opened, path)
        mode = image.mode
        if mode in ("RGB", "RGBA") and colors:
            return colors_to_classes(np.array(image.convert("RGB")), colors, path), "RGB"
        if mode not in SINGLE_CHANNEL_MODES:
            channels = len(image.getbands())
            raise InputError(
                f"{path}: mask has {channels} channel{'s' * (channels > 1)} ({mode}); expected a single-channel"
                " PNG whose pixel values are class indices, or a colour table in classes.txt (lines: name r g b)"
            )
        array = np.array(image)
    if array.dtype != np.uint8:  # bool (mode "1": 0/1), or 16- and 32-bit integers
        if array.size and (array.min() < 0 or array.max() > 255):
            raise InputError(f"{path}: {mode} mask holds values up to {array.max()}; expected 8-bit class indices")
        array = array.astype(np.uint8)
    return array, mode


def colors_to_classes(rgb: np.ndarray, colors: Colors, path: Path) -> np.ndarray:
    """uint8 [H, W] class indices of a colour-coded mask (uint8 [H, W, 3]); a colour not in ``colors`` is an error."""
    codes = (rgb.astype(np.int64) << [16, 8, 0]).sum(-1)  # one int per colour: 0xRRGGBB, [H, W]
    table = np.array([(r << 16) | (g << 8) | b for r, g, b in colors])
    order = np.argsort(table, kind="stable")  # the first class of a colour listed twice wins
    found = np.minimum(np.searchsorted(table[order], codes), len(table) - 1)
    known = table[order][found] == codes
    if not known.all():
        unknown = np.unique(codes[~known])
        shown = ", ".join(f"({c >> 16} {c >> 8 & 255} {c & 255})" for c in unknown[:4].tolist())
        more = f" and {len(unknown) - 4} more" if len(unknown) > 4 else ""
        raise InputError(
            f"{path}: {int((~known).sum())} pixels have colours not in the {len(colors)} of classes.txt: {shown}{more};"
            " expected only the listed colours (saved without smoothing, as PNG)"
        )
    return order[found].astype(np.uint8)
