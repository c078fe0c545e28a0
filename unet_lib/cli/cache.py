"""One picture cache for all processes: decoded uint8 pictures (resized, or at their own size) written once to a
file that every DataLoader worker and every later run memory-maps, so the OS page cache holds a single copy.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import get_args

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from unet_lib.cli.cache_file import VERSION, CacheFile, Layout, create, inspect
from unet_lib.config import CacheMode
from unet_lib.data.io import image_size
from unet_lib.errors import InputError
from unet_lib.runtime import show_progress

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the atomic rename alone keeps every file whole
    fcntl = None

CACHE_MODES = get_args(CacheMode)
CACHE_ENV = "UNET_LIB_CACHE"  # the cache folder; default ~/.cache/unet_lib

Decoded = tuple[torch.Tensor, torch.Tensor | None]  # uint8 image [3, H, W], uint8 mask [H, W] or None


def cache_mode(value: CacheMode | bool) -> CacheMode:
    """``"disk"``, ``"memory"`` or ``"none"``; the older ``True``/``False`` mean ``"memory"``/``"none"``."""
    if value is True or value is False:
        return "memory" if value else "none"
    if value not in CACHE_MODES:
        raise InputError(f"cache: expected one of {CACHE_MODES}, got {value!r}")
    return value


def cache_dir() -> Path:
    """Where cache files live: ``$UNET_LIB_CACHE``, else ``$XDG_CACHE_HOME/unet_lib``, else ``~/.cache/unet_lib``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "unet_lib"


class Decoding(Dataset):
    """The items a build still needs, decoded (in DataLoader workers): ``(index, image, mask)``.

    A bad file comes back as ``(index, message, None)`` and is raised again, as one line, by the builder.
    """

    def __init__(self, decode: Callable[[int], Decoded], indices: Sequence[int]):
        self.decode, self.indices = decode, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> tuple[int, torch.Tensor | str, torch.Tensor | None]:
        try:
            return self.indices[k], *self.decode(self.indices[k])
        except InputError as err:
            return self.indices[k], str(err), None


class PictureCache:
    """Decoded pictures of one dataset, kept as ``mode`` says (see ``CacheMode``).

    ``"disk"`` keeps them in ``cache_dir()/<label>-<H>x<W>-<folders>-<files>.pictures`` (``-own-`` for pictures
    at their own size), whose name hashes the resolved folders, the size and every source file's path, size and
    modification time: changed data gets a new file, and the old one is removed. The file is created whole (all slots empty, renamed into place, one
    process at a time under an ``fcntl`` lock) before the DataLoader workers start; each slot is filled
    the first time any process reads it, and checked against its checksum on every read. A truncated or
    damaged file is made anew, a damaged slot decoded again, each with a one-line warning. Pictures at their
    own size (``size=None``) may differ in size: each slot has its picture's, read from its header.

    Args:
        mode: ``"disk"``, ``"memory"`` (each process keeps its own dict), ``"none"``; or True / False.
        decode: ``index -> (uint8 image [3, H, W], uint8 mask [H, W] or None)``, resized to ``size``.
        sources: ``index -> the files that item is decoded from``, the picture first (they make the key).
        count: Number of items.
        size: ``(H, W)`` every decoded picture has, or None: each its own (its picture file's).
        label: Names the file, e.g. ``"carvana-train"``.
    """

    def __init__(
        self,
        mode: CacheMode | bool,
        decode: Callable[[int], Decoded],
        sources: Callable[[int], Sequence[Path]],
        count: int,
        *,
        size: tuple[int, int] | None,
        label: str,
    ):
        self.mode = cache_mode(mode)
        self.decode, self.sources, self.count, self.size = decode, sources, count, size
        self.label = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)
        self.memory: dict[int, Decoded] = {}
        self.path: Path | None = None  # known once the key is computed
        self.key = ""
        self.file: CacheFile | None = None  # the open file, in this process
        self.warned = False  # about a damaged slot or a full disk, once per process
        self.full = False  # writing failed (a full disk, say): read what is there, keep nothing more

    def __getstate__(self) -> dict:
        return {**self.__dict__, "file": None}  # each process maps the file itself

    def get(self, index: int) -> Decoded:
        """Item ``index``: from the cache, or decoded (and then kept)."""
        if self.mode == "none":
            return self.decode(index)
        if self.mode == "memory":
            if index not in self.memory:
                self.memory[index] = self.decode(index)
            return self.memory[index]
        file = self.open()
        if file is None:  # the cache folder is not writable
            return self.decode(index)
        try:
            found = file.read(index)
        except ValueError as err:
            self.warn(f"{file.path}: {err}; decoding the picture again")
            found = None
        if found is not None:
            image, mask = found
            return torch.from_numpy(image), None if mask is None else torch.from_numpy(mask)
        image, mask = self.decode(index)
        self.keep(file, index, image, mask)
        return image, mask

    def keep(self, file: CacheFile, index: int, image: torch.Tensor, mask: torch.Tensor | None) -> None:
        if self.full:
            return
        try:
            file.write(index, image.numpy(), None if mask is None else mask.numpy())
        except ValueError as err:
            raise InputError(f"{self.sources(index)[0]}: {err}") from None
        except OSError as err:  # a full disk, say: go on without keeping it
            self.full = True
            self.warn(f"{file.path}: cannot write the picture cache ({err}); reading the files")

    def warn(self, message: str) -> None:
        if not self.warned:
            warnings.warn(message, stacklevel=3)
            self.warned = True

    def locate(self) -> Path:
        """The cache file's path (computing the key: one ``stat`` per source file)."""
        if self.path is None:
            digest, places, seen = hashlib.sha256(repr((VERSION, self.label, self.size)).encode()), set(), {}
            for index in range(self.count):
                for source in self.sources(index):
                    source = Path(source)
                    if source not in seen:
                        try:
                            stat = source.stat()
                        except FileNotFoundError:
                            raise InputError(f"{source}: file not found") from None
                        folder = os.path.realpath(source.parent)
                        places.add(folder)
                        seen[source] = f"{folder}/{source.name} {stat.st_size} {stat.st_mtime_ns}"
                    digest.update(f"{index} {seen[source]}\n".encode())
            place = hashlib.sha256("\n".join(sorted(places)).encode()).hexdigest()[:8]
            self.key = digest.hexdigest()[:20]
            size = "own" if self.size is None else "x".join(map(str, self.size))
            self.path = cache_dir() / f"{self.label}-{size}-{place}-{self.key}.pictures"
        return self.path

    def open(self) -> CacheFile | None:
        """The cache file, opened in this process (created first when absent or damaged); None if unwritable."""
        if self.file is None and self.mode == "disk":
            path = self.locate()
            try:
                layout = inspect(path, self.key)
            except ValueError:
                layout = None  # create() says what is wrong
            if layout is None:
                layout = self.create(path)
            self.file = None if layout is None else CacheFile(path, layout)
        return self.file

    @contextmanager
    def locked(self, path: Path) -> Iterator[None]:
        """One process at a time creates or builds this cache (the others wait)."""
        with open(path.parent / f"{path.name.rsplit('-', 1)[0]}.lock", "a+b") as lock:
            if fcntl is not None:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    print(f"waiting for another process making {path}", flush=True)
                    fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def create(self, path: Path) -> Layout | None:
        """A new, empty cache file (unless another process made one meanwhile); stale ones removed."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self.locked(path):
                try:
                    layout = inspect(path, self.key)
                except ValueError as err:
                    warnings.warn(f"{path}: cache file is truncated or corrupt ({err}); making it anew", stacklevel=4)
                    layout = None
                if layout is None:
                    image, mask = self.decode(0)  # the first item says whether there are masks
                    sizes = [self.size or image_size(self.sources(i)[0])[::-1] for i in range(self.count)]  # (H, W)
                    layout = Layout(sizes, mask is not None, self.key)
                    create(path, layout)
                    first = CacheFile(path, layout)
                    first.write(0, image.numpy(), None if mask is None else mask.numpy())
                    first.close()
                for stale in path.parent.glob(f"{path.name.rsplit('-', 1)[0]}-*"):
                    if stale.name != path.name and (stale.suffix == ".pictures" or fcntl and stale.suffix == ".tmp"):
                        stale.unlink(missing_ok=True)  # older data's file, or what a killed process left
                return layout
        except OSError as err:
            warnings.warn(f"{path.parent}: cannot write the picture cache ({err}); reading the files", stacklevel=4)
            self.mode = "none"
            return None

    def build(self, indices: Sequence[int], workers: int = 0, progress: bool | None = None) -> None:
        """Fill the empty slots of ``indices`` now, decoding in ``workers`` processes, with a progress bar."""
        file = self.open()
        if file is None:
            return
        with self.locked(file.path):
            missing = [i for i in indices if not file.table[i]]
            shown = "at their own size" if self.size is None else "x".join(map(str, self.size))
            desc = f"caching {self.label} {shown}"
            for index, image, mask in tqdm(
                self.decoded(missing, workers), desc, len(missing), disable=not show_progress(progress)
            ):
                self.keep(file, index, image, mask)

    def decoded(self, indices: list[int], workers: int) -> Iterator[tuple]:
        """``(index, image, mask)`` of each of ``indices``, in order, decoded in ``workers`` processes."""
        items = Decoding(self.decode, indices)
        if workers and indices:
            results = iter(DataLoader(items, batch_size=None, num_workers=workers, prefetch_factor=4))
        else:
            results = (items[k] for k in range(len(items)))
        for index, image, mask in results:
            if isinstance(image, str):
                del results  # stop the workers now, not when the error's traceback is dropped
                raise InputError(image)  # a bad file's one-line message
            yield index, image, mask


def caches_in(dataset: Dataset) -> tuple[PictureCache | None, list[int] | None]:
    """The :class:`PictureCache` of a dataset, maybe inside ``Subset`` s, and the item indices it uses (None: all)."""
    indices = None
    while isinstance(dataset, Subset):
        indices = [dataset.indices[i] for i in (indices if indices is not None else range(len(dataset)))]
        dataset = dataset.dataset
    cache = getattr(dataset, "cache", None)
    return (cache, indices) if isinstance(cache, PictureCache) else (None, None)


def use_cache(dataset: Dataset, mode: CacheMode | bool) -> Dataset:
    """Read a dataset's pictures through a :class:`PictureCache` kept as ``mode`` says; returns ``dataset``.

    The dataset (maybe inside ``Subset`` s) reads each item with ``load(index)``, which is its own
    ``decode`` until a cache takes its place here. With ``"disk"`` the cache file is created (or checked,
    and made anew with a warning when damaged) now, in this process, so DataLoader workers started later
    share it.
    """
    base = dataset
    while isinstance(base, Subset):
        base = base.dataset
    if cache_mode(mode) != "none":
        label = "-".join([base.name, *([base.mode] if hasattr(base, "mode") else []), base.split])
        base.cache = PictureCache(mode, base.decode, base.source_files, len(base), size=base.size, label=label)
        base.load = base.cache.get
        base.cache.open()
    return dataset


def build_cache(dataset: Dataset, workers: int = 0, progress: bool | None = None) -> None:
    """Fill a dataset's disk cache now instead of during the first epoch, e.g. before several runs start.

    Args:
        dataset: A dataset with a :class:`PictureCache` in ``.cache``, maybe inside ``Subset`` s (only the
            items these use are filled); other datasets are left alone.
        workers: Processes decoding in parallel (0: this one).
        progress: Show a progress bar (None: on a terminal or in Jupyter only).
    """
    cache, indices = caches_in(dataset)
    if cache is not None:
        cache.build(range(cache.count) if indices is None else indices, workers, progress)


__all__ = [
    "CACHE_ENV",
    "CACHE_MODES",
    "CacheMode",
    "PictureCache",
    "build_cache",
    "cache_dir",
    "cache_mode",
    "use_cache",
]
