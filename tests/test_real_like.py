"""The trees shaped like public datasets: CamVid's and ISBI's layouts, the three mask encodings of one
and the same mask, class shares near the real ones, and the same bytes from the same seed."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.real_like import (
    CAMVID_CLASSES,
    CAMVID_COLOURS,
    RARE_CLASSES,
    VOID,
    main,
    write_microscopy_tree,
    write_street_tree,
)

SMALL = {"train": 6, "val": 3, "test": 3}  # 12 pictures
SMALL_SIZE = (90, 120)


def read(path: Path) -> tuple[str, np.ndarray]:
    with Image.open(path) as image:
        return image.mode, np.array(image)


@pytest.fixture(scope="module")
def index_tree(tmp_path_factory):
    return write_street_tree(tmp_path_factory.mktemp("index"), SMALL, SMALL_SIZE, "index", seed=3, workers=1)


def test_street_layout_pairs_pictures_and_masks_by_name(index_tree):
    root = index_tree.root
    assert sorted(p.name for p in root.iterdir()) == sorted(
        ["classes.txt", "train", "trainannot", "val", "valannot", "test", "testannot"]
    )
    for split, n in SMALL.items():
        pictures, masks = sorted((root / split).iterdir()), sorted((root / f"{split}annot").iterdir())
        assert [p.name for p in pictures] == [m.name for m in masks] and len(pictures) == n
        assert index_tree.folders[split] == (root / split, root / f"{split}annot")
        mode, photo = read(pictures[0])
        assert mode == "RGB" and photo.shape == (*SMALL_SIZE, 3)
        assert photo.std() > 20  # a picture, not a flat fill
    assert (root / "classes.txt").read_text().splitlines() == list(CAMVID_CLASSES)
    assert index_tree.counts == SMALL


def test_index_masks_hold_the_classes_and_void(index_tree):
    values = set()
    for path in sorted((index_tree.root / "trainannot").iterdir()):
        mode, mask = read(path)
        assert mode == "L" and mask.shape == SMALL_SIZE
        values |= set(np.unique(mask).tolist())
    assert VOID in values and values <= set(range(VOID + 1))
    assert {CAMVID_CLASSES.index(name) for name in ("sky", "road", "building", "car")} <= values
    assert sum(index_tree.pixels.values()) == SMALL["train"] * SMALL_SIZE[0] * SMALL_SIZE[1]


def test_palette_and_rgb_masks_encode_the_index_masks(index_tree, tmp_path):
    palette = write_street_tree(tmp_path / "p", SMALL, SMALL_SIZE, "palette", seed=3, workers=1)
    rgb = write_street_tree(tmp_path / "c", SMALL, SMALL_SIZE, "rgb", seed=3, workers=1)
    assert (palette.root / "classes.txt").read_text().splitlines() == list(CAMVID_CLASSES)
    # classes.txt of the rgb tree is the colour table: "name r g b", void the 12th line
    table = [line.split() for line in (rgb.root / "classes.txt").read_text().splitlines()]
    assert [row[0] for row in table] == [*CAMVID_CLASSES, "void"]
    colour_to_index = {tuple(int(c) for c in row[1:]): i for i, row in enumerate(table)}
    assert colour_to_index[(0, 0, 0)] == VOID and len(colour_to_index) == 12
    for split in SMALL:
        for path in sorted((index_tree.root / f"{split}annot").iterdir()):
            _, index = read(path)
            mode, indices = read(palette.root / f"{split}annot" / path.name)
            assert mode == "P" and np.array_equal(indices, index)
            with Image.open(palette.root / f"{split}annot" / path.name) as image:
                assert tuple(image.getpalette()[3 * 8 : 3 * 9]) == CAMVID_COLOURS[8]  # car
            mode, colours = read(rgb.root / f"{split}annot" / path.name)
            assert mode == "RGB"
            back = np.array([colour_to_index[tuple(c)] for c in colours.reshape(-1, 3).tolist()])
            assert np.array_equal(back.reshape(index.shape), index)
            # the photos do not depend on how the masks are stored
            assert (index_tree.root / split / path.name).read_bytes() == (rgb.root / split / path.name).read_bytes()


def test_no_classes_file_when_asked(tmp_path):
    (tmp_path / "classes.txt").write_text("old\nnames\n")
    write_street_tree(tmp_path, {"train": 1}, (48, 64), classes_file=False, workers=1)
    assert not (tmp_path / "classes.txt").exists()


def test_rare_classes_cover_about_one_percent_each(tmp_path):
    """40 training pictures at 180x240 (a quarter of CamVid's pixels each): every rare class is 0.5-2.5 %."""
    tree = write_street_tree(tmp_path, {"train": 40}, (180, 240), seed=0)
    shares = tree.shares()
    assert sum(shares.values()) == pytest.approx(1.0)
    for name in RARE_CLASSES:
        assert 0.005 <= shares[name] <= 0.025, (name, shares[name])
    # the masks agree with the reported counts
    counts = sum(np.bincount(read(p)[1].ravel(), minlength=12) for p in (tmp_path / "trainannot").iterdir())
    assert dict(enumerate(counts.tolist())) == tree.pixels
    assert 0.01 < tree.pixels[VOID] / counts.sum() < 0.15


def test_microscopy_layout_and_labels(tmp_path):
    tree = write_microscopy_tree(tmp_path, count=8, size=(64, 64), seed=1, workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image", "label"]  # no classes.txt, as ISBI ships
    names = [f"{i}.png" for i in range(8)]
    assert sorted(p.name for p in (tmp_path / "image").iterdir()) == sorted(names)
    assert sorted(p.name for p in (tmp_path / "label").iterdir()) == sorted(names)
    for name in names:
        mode, picture = read(tmp_path / "image" / name)
        assert mode == "L" and picture.shape == (64, 64) and picture.std() > 5
        mode, label = read(tmp_path / "label" / name)
        assert mode == "L" and set(np.unique(label).tolist()) == {0, 255}
        # membranes are darker than the cells' insides, as in the micrographs
        assert picture[label == 0].mean() < picture[label == 255].mean()
    assert tree.classes == () and 0.05 < tree.shares()["membrane"] < 0.5


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_whatever_the_workers(tmp_path):
    one = write_street_tree(tmp_path / "a", {"train": 3, "val": 1}, (48, 64), seed=5, workers=1)
    two = write_street_tree(tmp_path / "b", {"train": 3, "val": 1}, (48, 64), seed=5, workers=2)
    other = write_street_tree(tmp_path / "c", {"train": 3, "val": 1}, (48, 64), seed=6, workers=1)
    assert tree_bytes(one.root) == tree_bytes(two.root) != tree_bytes(other.root)
    write_microscopy_tree(tmp_path / "d", 2, (48, 48), seed=5, workers=1)
    write_microscopy_tree(tmp_path / "e", 2, (48, 48), seed=5, workers=2)
    assert tree_bytes(tmp_path / "d") == tree_bytes(tmp_path / "e")


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="mask_kind"):
        write_street_tree(tmp_path, {"train": 1}, (48, 64), mask_kind="gif")
    with pytest.raises(ValueError, match="counts"):
        write_street_tree(tmp_path, {"training": 1}, (48, 64))
    with pytest.raises(ValueError, match="count"):
        write_microscopy_tree(tmp_path, count=0)


def test_command_line_refuses_a_non_empty_folder(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("keep me")
    assert main(["microscopy", str(tmp_path), "--count", "1", "--size", "32x32"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(tmp_path) in err and "--overwrite" in err
    assert main(["microscopy", str(tmp_path), "--count", "1", "--size", "32x32", "--overwrite"]) == 0
    assert (tmp_path / "notes.txt").exists() and (tmp_path / "label" / "0.png").exists()


def test_command_line_street_summary(tmp_path, capsys):
    args = ["street", str(tmp_path / "t"), "--train", "2", "--val", "1", "--test", "0", "--size", "48x64"]
    assert main([*args, "--mask-kind", "palette", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "trainannot/: 2 files" in out and "valannot/: 1 files" in out and "rare classes: pole" in out
    assert not (tmp_path / "t" / "test").exists()
