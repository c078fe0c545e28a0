"""check-data on hand-made trees: what it reports on good data, one named line per problem, exit codes."""

import numpy as np
import pytest
from conftest import make_carvana_tree, make_cityscapes_tree
from folder_trees import listing, make_folder_tree
from PIL import Image

from unet_lib.cli import main
from unet_lib.cli.check_report import image_sizes, mask_modes, report_lines
from unet_lib.data.check import check_tree, detect_dataset, loss_weights
from unet_lib.data.pairs import Layout
from unet_lib.errors import InputError


def run_check(capsys, *args):
    """check-data's exit code and printed lines."""
    capsys.readouterr()
    code = main(["check-data", *map(str, args), "--quiet"])
    return code, capsys.readouterr().out.splitlines()


def test_a_good_binary_tree_is_ready_to_train(tmp_path, capsys):
    masks = make_folder_tree(tmp_path, count=6, size=(40, 60))
    before = listing(tmp_path)
    code, lines = run_check(capsys, tmp_path)
    assert code == 0 and lines[-1] == "no problems: ready to train"
    assert listing(tmp_path) == before  # nothing written into the data folder
    report = check_tree(tmp_path, progress=False)
    assert (report.dataset, report.pairs, dict(image_sizes(report))) == ("folder", 6, {(40, 60): 6})
    assert dict(mask_modes(report)) == {"L (uint8)": 6}
    values = np.concatenate([np.asarray(Image.open(p)).ravel() for p in masks])
    positives, negatives = int((values == 1).sum()), int((values == 0).sum())
    assert report.class_names == ["background", "foreground"] and not report.classes.foreground_255
    assert report.class_pixels.tolist() == [negatives, positives]
    assert loss_weights(report) == [pytest.approx(negatives / positives)]  # pos_weight
    assert any(
        line.startswith("  network size    40x60 is not divisible by 16") and "--size 48x64" in line for line in lines
    )


def test_0_255_masks_are_binary_with_255_the_foreground(tmp_path, capsys):
    masks = make_folder_tree(tmp_path, scale=255)
    report = check_tree(tmp_path, progress=False)
    foreground = sum(int((np.asarray(Image.open(p)) == 255).sum()) for p in masks)
    assert report.classes.foreground_255 and report.class_pixels[1] == foreground and report.ignored_pixels == 0
    code, lines = run_check(capsys, tmp_path)
    assert code == 0 and any("255 is the foreground" in line for line in lines)


def test_several_classes_named_by_classes_txt(tmp_path, capsys):
    make_folder_tree(tmp_path, num_classes=3, classes=["background", "box", "disc"], val=2, ignore_rows=2)
    report = check_tree(tmp_path, size=(48, 64), progress=False)
    assert report.class_names == ["background", "box", "disc"] and report.pairs == 8
    assert report.splits.startswith("6 in images/, 2 in val/images/")
    assert report.ignored_pixels == 8 * 2 * 60  # two rows of 255 in each mask
    freq = report.class_pixels / report.class_pixels.sum()
    assert loss_weights(report) == pytest.approx((np.median(freq) / freq).tolist())  # median frequency
    code, lines = run_check(capsys, tmp_path, "--size", "48x64")
    assert code == 0 and "3 from classes.txt" in "\n".join(lines) and "--size 48x64 suits" in "\n".join(lines)


def remove_mask(root):
    (root / "masks" / "p2.png").unlink()
    return "images/p2.jpg: image without mask (expected", "p2.png"


def orphan_mask(root):
    Image.fromarray(np.zeros((40, 60), np.uint8)).save(root / "masks" / "extra.png")
    return "masks/extra.png: mask without image", "extra.jpg"


def wrong_size(root):
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(root / "masks" / "p1.png")
    return "masks/p1.png: mask is 30x20 but its image", "p1.jpg is 60x40"


def anti_aliased(root):
    mask = Image.open(root / "masks" / "p3.png")
    mask.resize((30, 20), Image.BILINEAR).resize((60, 40), Image.BILINEAR).save(root / "masks" / "p3.png")
    return "masks/p3.png: anti-aliased:", "pixels ("


def label_beyond_classes(root):
    (root / "classes.txt").write_text("background\nobject\n")
    mask = np.asarray(Image.open(root / "masks" / "p4.png")).copy()
    mask[:3, :5] = 7
    Image.fromarray(mask).save(root / "masks" / "p4.png")
    return "masks/p4.png: labels beyond classes.txt (2 classes, 0..1): 7 on 15 pixels", ""


def unreadable_image(root):
    (root / "images" / "p0.jpg").write_bytes(b"not a picture at all")
    return "images/p0.jpg: not a readable image", ""


def unreadable_mask(root):
    (root / "masks" / "p5.png").write_bytes((root / "masks" / "p5.png").read_bytes()[:40])
    return "masks/p5.png: ", "truncated"


def rgb_mask(root):
    mask = np.asarray(Image.open(root / "masks" / "p4.png")) * 255
    Image.fromarray(np.stack([mask] * 3, axis=-1)).save(root / "masks" / "p4.png")
    return "masks/p4.png: mask has 3 channels (RGB); expected a single-channel PNG", ""


def jpeg_mask(root):
    (root / "masks" / "p1.png").rename(root / "masks" / "p1.jpg")
    return "masks/p1.jpg: not a PNG; expected", "lossy"


PROBLEMS = [
    remove_mask,
    orphan_mask,
    wrong_size,
    anti_aliased,
    label_beyond_classes,
    unreadable_image,
    unreadable_mask,
    rgb_mask,
    jpeg_mask,
]


@pytest.mark.parametrize("spoil", PROBLEMS, ids=[f.__name__ for f in PROBLEMS])
def test_each_problem_is_one_line_naming_the_file(tmp_path, capsys, spoil):
    make_folder_tree(tmp_path, scale=255 if spoil is anti_aliased else 1)
    start, detail = spoil(tmp_path)
    before = listing(tmp_path)
    code, lines = run_check(capsys, tmp_path)
    assert code == 2 and lines[-1].startswith("not ready to train")
    problems = lines[lines.index(next(line for line in lines if line.startswith("problems ("))) + 1 : -1]
    assert len(problems) == 1, problems  # exactly the one spoilt file
    assert problems[0].startswith(f"  {tmp_path / start.split(':')[0]}:") and start in problems[0]
    assert detail in problems[0]
    assert listing(tmp_path) == before


def test_train_stops_at_the_first_problem_before_making_a_run(tmp_path, capsys):
    make_folder_tree(tmp_path / "data")
    rgb_mask(tmp_path / "data")
    remove_mask(tmp_path / "data")
    capsys.readouterr()
    args = ["train", "folder", "--data", str(tmp_path / "data"), "--size", "32x48", "--features", "4,8"]
    assert main([*args, "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        f"error: {tmp_path / 'data' / 'images' / 'p2.jpg'}: image without mask"
    )
    assert "(and 1 more: python -m unet_lib check-data" in err
    assert not (tmp_path / "run").exists()


def test_carvana_and_cityscapes_trees(tmp_path, capsys):
    make_carvana_tree(tmp_path / "carvana", cars=2, views=2)
    make_cityscapes_tree(tmp_path / "cityscapes")
    assert detect_dataset(tmp_path / "carvana") == "carvana" and detect_dataset(tmp_path / "cityscapes") == "cityscapes"
    code, lines = run_check(capsys, tmp_path / "carvana")
    assert code == 0 and lines[0].endswith("(carvana layout)")
    report = check_tree(tmp_path / "cityscapes", progress=False)
    assert report.ok and report.pairs == 4 and len(report.class_names) == 19
    assert report.ignored_pixels > 0  # labelIds without a trainId
    make_cityscapes_tree(tmp_path / "coarse", coarse=True)
    for split in ("train", "val"):
        for label in (tmp_path / "coarse" / "gtFine" / split).rglob("*.png"):
            label.unlink()
    coarse = Layout(mode="coarse")  # gtCoarse is what coarse training reads
    assert check_tree(tmp_path / "coarse", progress=False, layout=coarse).ok
    assert "image without labels" in check_tree(tmp_path / "coarse", progress=False).problems[0]
    (tmp_path / "carvana" / "train_masks" / "000000000001_02_mask.gif").unlink()
    code, lines = run_check(capsys, tmp_path / "carvana")
    assert code == 2 and f"{tmp_path / 'carvana' / 'train' / '000000000001_02.jpg'}: image without mask" in lines[-2]


def test_layouts_it_cannot_read_and_sizes_it_cannot_use(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a layout this reads: a folder tree"):
        check_tree(tmp_path / "empty")
    assert main(["check-data", str(tmp_path / "missing")]) == 2
    make_folder_tree(tmp_path / "data")
    report = check_tree(tmp_path / "data", size=(50, 70), progress=False)
    assert report.problems == ["--size 50x70: not divisible by 16 (4 halvings); try --size 48x64"]
    assert report_lines(report)[-1].startswith("not ready to train")
