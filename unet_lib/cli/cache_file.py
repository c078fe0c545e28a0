"""The picture cache's file: a header, a checksum per slot (0: empty), the images, the masks and an end
marker. It is created whole (a temporary file renamed over it); slots are filled in place, each checked
against its checksum whenever it is read.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

VERSION = 3  # raise it when the format or the decoding changes: every older file is then rebuilt
MAGIC, END = b"UNETPIC1", b"UNETEND1"
PAGE = 4096  # the header and the checksum table each take whole pages, so the pictures start page-aligned


class Layout:
    """Where things lie in a file of one slot per ``sizes`` entry: slot ``i`` holds a uint8 image [3, H, W] and,
    with ``masks``, a mask [H, W], at ``sizes[i] = (H, W)`` (pictures kept at their own size may differ)."""

    def __init__(self, sizes: Sequence[Sequence[int]], masks: bool, key: str):
        self.count, self.masks, self.key = len(sizes), bool(masks), key
        self.sizes = [(int(h), int(w)) for h, w in sizes]
        meta = {"version": VERSION, "key": key, "sizes": self.sizes, "masks": self.masks}
        header = json.dumps(meta).encode()
        self.header = MAGIC + struct.pack("<I", len(header)) + header
        self.table_at = -(-len(self.header) // PAGE) * PAGE
        images_at = self.table_at + -(-4 * self.count // PAGE) * PAGE
        pixels = np.array([h * w for h, w in self.sizes], dtype=np.int64)  # per slot
        ends = np.cumsum(pixels)  # the images take 3 bytes a pixel, the masks 1 (or none)
        self.image_at = images_at + 3 * (ends - pixels)  # where slot i's image starts
        self.mask_at = images_at + 3 * int(ends[-1]) + (ends - pixels)
        self.footer_at = images_at + (3 + self.masks) * int(ends[-1])
        self.footer = END + struct.pack("<II", zlib.crc32(self.header), 0)  # END, the header's crc32, 4 spare bytes
        self.total = self.footer_at + len(self.footer)


def slot_checksum(image: np.ndarray, mask: np.ndarray | None) -> int:
    """crc32 of a slot's bytes; never 0, which marks an empty slot."""
    crc = zlib.crc32(image)
    return (zlib.crc32(mask, crc) if mask is not None else crc) or 1


def inspect(path: Path, key: str) -> Layout | None:
    """The layout of a whole file for ``key``; None when there is none; ValueError saying what is wrong."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            start = f.read(12)
            if len(start) < 12 or start[:8] != MAGIC:
                raise ValueError("no header")
            meta = json.loads(f.read(struct.unpack("<I", start[8:])[0]))
            if meta.get("version") != VERSION or meta.get("key") != key:
                raise ValueError("written for other data")
            layout = Layout(meta["sizes"], meta["masks"], key)
            if size != layout.total:
                raise ValueError(f"{size} bytes, expected {layout.total}")
            f.seek(layout.footer_at)
            if f.read(len(layout.footer)) != layout.footer:
                raise ValueError("no end marker, or a wrong checksum")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, struct.error) as err:
        raise ValueError(str(err) or type(err).__name__) from None
    return layout


def create(path: Path, layout: Layout) -> None:
    """Write a file with every slot empty beside ``path`` (sparse: the pictures take no space yet), flush it
    to disk and rename it over ``path``: a reader sees the old file or the new one, never a part of either."""
    temp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "wb") as out:
            out.truncate(layout.total)
            out.write(layout.header)
            out.seek(layout.footer_at)
            out.write(layout.footer)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


class CacheFile:
    """An open cache file: its pictures memory-mapped read-only (a slot filled by any process shows at once),
    and a handle that fills slots in place."""

    def __init__(self, path: Path, layout: Layout):
        self.path, self.layout = path, layout
        self.table = np.memmap(path, "<u4", "r", layout.table_at, (layout.count,))
        self.bytes = np.memmap(path, np.uint8, "r")  # the whole file: slots are sliced out of it
        self.writer: tuple[int, int] | None = None  # (pid, file descriptor): a forked process opens its own

    def slot(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Views of slot ``index``: image [3, H, W] and mask [H, W] (or None), read-only."""
        (h, w), layout = self.layout.sizes[index], self.layout
        image = self.bytes[layout.image_at[index] : layout.image_at[index] + 3 * h * w].reshape(3, h, w)
        mask = self.bytes[layout.mask_at[index] : layout.mask_at[index] + h * w].reshape(h, w) if layout.masks else None
        return image, mask

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray | None] | None:
        """Copies of slot ``index``; None when it is empty; ValueError when it fails its checksum."""
        expected = int(self.table[index])
        if not expected:
            return None
        image, mask = (None if part is None else np.array(part) for part in self.slot(index))  # copies: read-only map
        if slot_checksum(image, mask) != expected:
            raise ValueError(f"slot {index} fails its checksum")
        return image, mask

    def write(self, index: int, image: np.ndarray, mask: np.ndarray | None) -> None:
        """Fill slot ``index``: the pictures first, then their checksum, so a half-written slot reads as damaged."""
        layout, (h, w) = self.layout, self.layout.sizes[index]
        expected = ((3, h, w), (h, w) if layout.masks else None)
        if (tuple(image.shape), None if mask is None else tuple(mask.shape)) != expected:
            raise ValueError(f"decoded to {tuple(image.shape)}, expected {(3, h, w)}")
        if self.writer is None or self.writer[0] != os.getpid():
            self.writer = (os.getpid(), os.open(self.path, os.O_RDWR | getattr(os, "O_BINARY", 0)))
        fd = self.writer[1]
        image, mask = np.ascontiguousarray(image), None if mask is None else np.ascontiguousarray(mask)
        put(fd, image, int(layout.image_at[index]))
        if mask is not None:
            put(fd, mask, int(layout.mask_at[index]))
        put(fd, struct.pack("<I", slot_checksum(image, mask)), layout.table_at + 4 * index)

    def close(self) -> None:
        if self.writer is not None and self.writer[0] == os.getpid():
            os.close(self.writer[1])
        self.writer = None


def put(fd: int, data, offset: int) -> None:
    """Write all of ``data`` at ``offset`` without moving a file position another process might share."""
    view = memoryview(data).cast("B")
    while view:
        if hasattr(os, "pwrite"):
            written = os.pwrite(fd, view, offset)
        else:  # Windows: DataLoader workers are spawned there, so no process shares this descriptor
            os.lseek(fd, offset, os.SEEK_SET)
            written = os.write(fd, view)
        view, offset = view[written:], offset + written
