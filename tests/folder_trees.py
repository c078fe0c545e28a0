"""Small folder-layout trees (images/, masks/, classes.txt, val/), written with PIL and numpy directly."""

from pathlib import Path

import numpy as np
from PIL import Image


def shapes_mask(height: int, width: int, k: int, num_classes: int) -> np.ndarray:
    """A box of class 1 and, with 3 or more classes, a disc of class 2, both moving with ``k``; 0 elsewhere."""
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[height // 5 : height // 2, width // 6 + k : width // 2 + k] = 1
    if num_classes >= 3:
        yy, xx = np.mgrid[:height, :width]
        mask[(yy - 0.7 * height) ** 2 + (xx - 0.7 * width + k) ** 2 < (height / 5) ** 2] = 2
    return mask


def make_folder_tree(
    root: Path,
    count: int = 6,
    size: tuple[int, int] = (40, 60),
    num_classes: int = 2,
    scale: int = 1,
    classes: list[str] | None = None,
    val: int = 0,
    suffix: str = ".jpg",
    ignore_rows: int = 0,
) -> list[Path]:
    """``count`` pictures ``p<i>`` with masks (values times ``scale``), and ``val`` more under ``val/``.

    Each class has its own colour (plus noise), so a network learns the masks from the pictures.

    Returns:
        The mask files written.
    """
    height, width = size
    rng = np.random.default_rng(0)
    colours = np.array([[40, 60, 50], [200, 60, 40], [50, 80, 210]], dtype=np.int64)
    written = []
    for part, n in (("", count), ("val", val)):
        if n == 0:
            continue
        (root / part / "images").mkdir(parents=True, exist_ok=True)
        (root / part / "masks").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            mask = shapes_mask(height, width, i + (count if part else 0), num_classes)
            pixels = colours[mask] + rng.integers(-20, 20, (height, width, 3))
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(root / part / "images" / f"p{i}{suffix}")
            stored = mask * scale
            if ignore_rows:
                stored[:ignore_rows] = 255
            Image.fromarray(stored.astype(np.uint8)).save(root / part / "masks" / f"p{i}.png")
            written.append(root / part / "masks" / f"p{i}.png")
    if classes is not None:
        (root / "classes.txt").write_text("".join(f"{name}\n" for name in classes))
    return written


def listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and modification time: equal listings mean nothing was touched."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}
