"""The shared picture cache: exactly the uncached pictures, rebuilt when the data or the file changes,
safe when two processes build it at once, and never written into the data folder."""

import multiprocessing
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_carvana_tree
from PIL import Image
from torch.utils.data import DataLoader, Subset

from unet_lib import InputError
from unet_lib.cli.cache import CACHE_ENV, build_cache, cache_mode, use_cache
from unet_lib.cli.sample import write_carvana_sample, write_cityscapes_sample
from unet_lib.cli.sample.common import WriteOptions
from unet_lib.config import TrainConfig
from unet_lib.data import CarvanaDataset, CityscapesDataset, build_loaders

SIZE = (64, 96)  # (H, W) the tests resize to


@pytest.fixture
def cache_folder(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "picture-cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


@pytest.fixture(scope="module")
def carvana_sample(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("carvana")
    write_carvana_sample(root, num_cars=3, size=(240, 160), num_test_cars=1, options=WriteOptions(seed=1))
    return root


@pytest.fixture(scope="module")
def cityscapes_sample(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cityscapes")
    write_cityscapes_sample(root, num_images=3, size=(256, 128), coarse=False, options=WriteOptions(seed=1))
    return root


def pictures(dataset) -> list[tuple[torch.Tensor, ...]]:
    return [tuple(t for t in (item if isinstance(item, tuple) else (item,))) for item in dataset]


def assert_same(cached, uncached) -> None:
    assert len(cached) == len(uncached)
    for ours, reference in zip(pictures(cached), pictures(uncached), strict=True):
        assert all(torch.equal(a, b) for a, b in zip(ours, reference, strict=True))


def files_under(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_carvana_cached_pictures_equal_the_uncached_ones(carvana_sample, cache_folder, split):
    before = files_under(carvana_sample)
    cached = use_cache(CarvanaDataset(carvana_sample, split, size=SIZE), "disk")
    assert_same(cached, use_cache(CarvanaDataset(carvana_sample, split, size=SIZE), "none"))
    assert_same(cached, cached)  # the second pass reads the file
    assert cached.cache.path.parent == cache_folder and cached.cache.path.is_file()
    assert files_under(carvana_sample) == before  # nothing written into the data folder


@pytest.mark.parametrize("split", ["train", "val"])
def test_cityscapes_cached_pictures_equal_the_uncached_ones(cityscapes_sample, cache_folder, split):
    cached = use_cache(CityscapesDataset(cityscapes_sample, split, size=SIZE), "disk")
    assert_same(cached, use_cache(CityscapesDataset(cityscapes_sample, split, size=SIZE), "none"))
    assert len(list(cache_folder.glob("*.pictures"))) == 1


def test_loaders_with_two_workers_read_the_same_pictures(carvana_sample, cache_folder):
    config = TrainConfig(data_dir=str(carvana_sample), image_size=SIZE, augment="none", batch_size=4, num_workers=2)
    reference = CarvanaDataset(carvana_sample, "val", size=SIZE)
    val = use_cache(CarvanaDataset(carvana_sample, "val", size=SIZE), config.cache)
    train = use_cache(CarvanaDataset(carvana_sample, "train", size=SIZE), config.cache)
    _, val_loader = build_loaders(config, train, val)
    assert val.cache.path.is_file() and train.cache.path.is_file()  # made before the workers start
    expected = pictures(reference)
    for _ in range(2):  # the workers fill the file, then read it
        images, masks = (torch.cat(parts) for parts in zip(*val_loader, strict=True))
        assert torch.equal(images, torch.stack([image for image, _ in expected]))
        assert torch.equal(masks, torch.stack([mask for _, mask in expected]))
        assert val.cache.open().table.all()


def test_cityscapes_through_two_workers(cityscapes_sample, cache_folder):
    dataset = use_cache(CityscapesDataset(cityscapes_sample, "train", size=SIZE), "disk")
    build_cache(dataset, workers=2, progress=False)  # decoded in two processes
    assert dataset.cache.open().table.all()
    loader = DataLoader(dataset, batch_size=2, num_workers=2)
    images, labels = (torch.cat(parts) for parts in zip(*loader, strict=True))
    expected = pictures(CityscapesDataset(cityscapes_sample, "train", size=SIZE))
    assert torch.equal(images, torch.stack([image for image, _ in expected]))
    assert torch.equal(labels, torch.stack([label for _, label in expected]))


def test_a_changed_picture_rebuilds_the_cache(tmp_path, cache_folder):
    root = tmp_path / "carvana"
    make_carvana_tree(root)
    first = use_cache(CarvanaDataset(root, "train", size=(16, 24)), "disk")
    first[0]
    old = first.cache.path
    path = first.image_path(0)
    noise = np.random.default_rng(1).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, quality=80)  # new content, new size and modification time
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    second = use_cache(CarvanaDataset(root, "train", size=(16, 24)), "disk")
    assert_same(second, CarvanaDataset(root, "train", size=(16, 24)))
    assert second.cache.path != old and not old.exists()  # the stale file is gone
    assert sorted(p.name for p in cache_folder.glob("*.pictures")) == [second.cache.path.name]


@pytest.mark.parametrize("damage", ["truncate", "header", "end marker", "empty", "pixels"])
def test_a_damaged_cache_file_is_rebuilt_with_a_warning(tmp_path, cache_folder, damage):
    root = tmp_path / "carvana"
    make_carvana_tree(root, masks="csv")
    built = use_cache(CarvanaDataset(root, "train", size=(16, 24)), "disk")
    build_cache(built, progress=False)
    path, layout = built.cache.path, built.cache.open().layout
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "header":
        data[20] ^= 0xFF
    elif damage == "end marker":
        data[-12] ^= 0xFF
    elif damage == "empty":
        data = bytearray()
    else:
        data[layout.image_at[3] + 100] ^= 0xFF  # one byte of the fourth picture
    path.write_bytes(bytes(data))
    if damage == "pixels":
        dataset = use_cache(CarvanaDataset(root, "train", size=(16, 24)), "disk")
        dataset[0]  # an intact slot reads quietly
        with pytest.warns(UserWarning, match=r"\.pictures: slot 3 fails its checksum; decoding the picture again$"):
            dataset[3]
    else:
        with pytest.warns(UserWarning, match=r"cache file is truncated or corrupt \(.*\); making it anew$"):
            dataset = use_cache(
                CarvanaDataset(root, "train", size=(16, 24)), "disk"
            )  # checked before any worker starts
    assert_same(dataset, CarvanaDataset(root, "train", size=(16, 24)))
    assert dataset.cache.open().table.all()  # whole again, every slot filled
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same(use_cache(CarvanaDataset(root, "train", size=(16, 24)), "disk"), dataset)


def fill_in_another_process(root: str, cache: str, how: str, start, counts) -> None:
    os.environ[CACHE_ENV] = cache
    dataset = use_cache(CarvanaDataset(root, "train", size=(16, 24)), "disk")
    decode, decoded = dataset.cache.decode, []
    dataset.cache.decode = lambda index: decoded.append(index) or decode(index)
    start.wait()
    if how == "build":
        build_cache(dataset, progress=False)
    else:
        for index in range(len(dataset)):  # both fill slots as they read them, at the same time
            dataset[index]
    counts.put(len(decoded))


@pytest.mark.parametrize("how", ["build", "read"])
def test_two_processes_filling_at_once_leave_one_whole_file(tmp_path, cache_folder, how):
    root = tmp_path / "carvana"
    make_carvana_tree(root, cars=12, views=4, size=(96, 64))
    context = multiprocessing.get_context("spawn")
    start, counts = context.Barrier(2), context.Queue()
    processes = [
        context.Process(target=fill_in_another_process, args=(str(root), str(cache_folder), how, start, counts))
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0, 0]
    dataset = use_cache(CarvanaDataset(root, "train", size=(16, 24)), "disk")
    decoded = sum(counts.get(timeout=5) for _ in processes)
    if how == "build":  # one process at a time: each picture decoded once (the first when the file was made)
        assert decoded == len(dataset) - 1
    assert dataset.cache.open().table.all()
    assert [p.name for p in cache_folder.glob("*.pictures")] == [dataset.cache.locate().name]
    assert not list(cache_folder.glob("*.tmp"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a damaged file would warn
        assert_same(dataset, CarvanaDataset(root, "train", size=(16, 24)))


def test_a_subset_builds_only_its_items_and_reading_fills_the_rest(tmp_path, cache_folder):
    root = tmp_path / "carvana"
    make_carvana_tree(root)
    dataset = use_cache(CarvanaDataset(root, "train", size=(16, 24)), "disk")
    build_cache(Subset(Subset(dataset, [5, 1, 3]), [0, 2]), progress=False)  # items 5 and 3
    assert np.flatnonzero(dataset.cache.open().table).tolist() == [0, 3, 5]  # 0: made with the file, for its shapes
    assert_same(dataset, CarvanaDataset(root, "train", size=(16, 24)))
    assert dataset.cache.open().table.all()


def test_a_bad_file_stops_the_build_with_its_name(tmp_path, cache_folder):
    root = tmp_path / "carvana"
    ids = make_carvana_tree(root)
    (root / "train" / f"{ids[3]}.jpg").write_bytes(b"not a picture")
    dataset = use_cache(CarvanaDataset(root, "train", size=(16, 24)), "disk")
    for workers in (0, 2):
        with pytest.raises(InputError, match=f"^{root / 'train' / ids[3]}.jpg: not a readable image") as err:
            build_cache(dataset, workers=workers, progress=False)
        assert "\n" not in str(err.value)
    assert not dataset.cache.open().table[3] and not list(cache_folder.glob("*.tmp"))


def test_modes_and_the_older_true_false(carvana_tree, cache_folder):
    assert (cache_mode(True), cache_mode(False), cache_mode("disk")) == ("memory", "none", "disk")
    with pytest.raises(InputError, match=r"^cache: expected one of \('disk', 'memory', 'none'\), got 'ram'$"):
        cache_mode("ram")
    assert TrainConfig().cache == "disk" and TrainConfig(cache=True).cache == "memory"
    assert TrainConfig.from_dict({**TrainConfig().to_dict(), "cache": False}).cache == "none"
    memory = use_cache(CarvanaDataset(carvana_tree, "train", size=(16, 24)), True)
    assert_same(memory, CarvanaDataset(carvana_tree, "train", size=(16, 24)))
    assert len(memory.cache.memory) == len(memory) and not cache_folder.exists()


def test_pictures_of_different_sizes_share_one_file_at_their_own_size(tmp_path, cache_folder):
    root = tmp_path / "carvana"
    ids = make_carvana_tree(root)  # 48x32 photos
    mask = np.zeros((40, 56), dtype=np.uint8)
    mask[10:30, 12:40] = 1
    Image.fromarray(np.stack([mask * 200] * 3, axis=-1)).save(root / "train" / f"{ids[2]}.jpg", quality=95)
    gif = Image.fromarray(mask, mode="P")
    gif.putpalette([0, 0, 0, 255, 255, 255])
    gif.save(root / "train_masks" / f"{ids[2]}_mask.gif")
    dataset = use_cache(CarvanaDataset(root, "train"), "disk")  # size None: each photo at its own size
    build_cache(dataset, progress=False)
    assert dataset.cache.path.name.startswith("carvana-train-own-")
    assert {tuple(image.shape[-2:]) for image, _ in pictures(dataset)} == {(32, 48), (40, 56)}
    assert_same(dataset, CarvanaDataset(root, "train"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # read back from the file, whole
        again = use_cache(CarvanaDataset(root, "train"), "disk")
        assert again.cache.open().table.all() and again.cache.path == dataset.cache.path
        assert_same(again, CarvanaDataset(root, "train"))
    resized = use_cache(CarvanaDataset(root, "train", size=(16, 24)), "disk")
    resized[0]
    assert resized.cache.path != dataset.cache.path  # another size, another file; both kept
    assert len(list(cache_folder.glob("*.pictures"))) == 2
