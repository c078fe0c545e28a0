"""Training on crops and predicting in tiles: one tile is the plain prediction, the blend has no seams and agrees
with the whole-picture prediction, and train --crop, evaluate --tile and predict --tile run end to end."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_between, binary_scores_by_hand, gif_mask
from folder_trees import make_folder_tree, shapes_mask
from PIL import Image

from unet_lib import InputError, Tiled, TrainConfig, predict_labels, tiled_logits, train
from unet_lib import training as training_module
from unet_lib.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from unet_lib.cli import build_parser, main
from unet_lib.cli.cache import cache_dir
from unet_lib.cli.commands import cached_datasets, train_config
from unet_lib.config import ConfigError
from unet_lib.data import CarvanaDataset, FolderDataset, build_datasets
from unet_lib.data.rle import rle_decode
from unet_lib.evaluation import Scores, blend_weights, evaluate, predict, tile_starts
from unet_lib.model import UNet
from unet_lib.training import build_model

CROP = (32, 32)  # (H, W) the crop-trained model sees: divisible by 4, the tiny U-Net's two halvings
SIZES = ((48, 64), (64, 80))  # (H, W) of the folder tree's pictures: two sizes, both larger than the crop
COLOURS = torch.tensor([[40, 60, 50], [200, 60, 40], [50, 80, 210]]) / 255  # one colour per class


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def shapes_picture(height: int, width: int, k: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A picture [1, 3, H, W] whose three classes (a box, a disc, the rest) have their own colours plus noise,
    and its mask [1, H, W]: a network learns the classes from the colours."""
    mask = torch.from_numpy(shapes_mask(height, width, k, 3)).long()
    noise = 0.08 * torch.randn(3, height, width, generator=torch.Generator().manual_seed(seed))
    return (COLOURS[mask].permute(2, 0, 1) + noise).clamp(0, 1)[None], mask[None]


@pytest.fixture(scope="module")
def learnt() -> UNet:
    """A tiny three-class U-Net trained 40 steps on two pictures: a model that has learnt something, so that tiled
    and whole-picture predictions are compared where they mean something."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = UNet(3, 3, features=(4, 8))
    pairs = [shapes_picture(48, 64, k, seed=k) for k in (0, 6)]
    images, masks = torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(model(images), masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.set_num_threads(threads)
    return model.eval()


def test_one_tile_the_size_of_the_picture_is_exactly_the_plain_prediction():
    torch.manual_seed(0)
    model = UNet(3, 2, features=(4, 8)).eval()
    images = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        assert torch.equal(tiled_logits(model, images, (32, 48)), model(images))
        assert torch.equal(Tiled(model, (32, 48))(images), model(images))
    assert torch.equal(predict(Tiled(model, (32, 48)), images), predict(model, images))


def test_tiled_and_whole_picture_labels_agree(learnt):
    images, masks = shapes_picture(96, 128, 9, seed=3)  # larger than the training pictures, shapes elsewhere
    whole = predict(learnt, images)
    assert (whole == masks).float().mean() > 0.95  # the model has learnt the classes
    for tile in ((32, 32), (48, 64)):
        tiled = predict(Tiled(learnt, tile), images)
        agreement = (tiled == whole).float().mean().item()
        print(f"tile {tile[0]}x{tile[1]}: {agreement:.2%} of the pixels agree with the whole picture's labels")
        assert agreement >= 0.99, (tile, agreement)


def test_blend_weights_are_positive_and_a_constant_blends_to_itself():
    weights = blend_weights(32, 48)
    assert weights.shape == (32, 48) and weights.min() > 0 and weights.max() == 1
    assert torch.equal(weights, weights.flip(0)) and torch.equal(weights, weights.flip(1))  # symmetric
    for length, tile in ((70, 32), (64, 32), (33, 32), (20, 32)):
        starts = tile_starts(length, tile, 0.5)
        assert starts[0] == 0 and starts[-1] == max(length - tile, 0)  # the last one flush with the border
        assert all(0 < b - a <= tile // 2 for a, b in zip(starts, starts[1:], strict=False))  # no gaps
    constant = lambda x: torch.full((len(x), 2, *x.shape[-2:]), 3.0)  # noqa: E731
    for size in ((70, 90), (20, 30), (8, 8)):  # several tiles; one padded tile (reflected, then repeated)
        logits = tiled_logits(constant, torch.rand(2, 3, *size), CROP)
        assert logits.shape == (2, 2, *size)
        torch.testing.assert_close(logits, torch.full_like(logits, 3.0))
    with pytest.raises(ValueError, match=r"^overlap: expected a share of a tile in \[0, 1\), got -0.5$"):
        tiled_logits(constant, torch.rand(1, 3, 70, 90), CROP, overlap=-0.5)


def test_tiling_an_onnx_model_gives_the_labels_of_tiling_the_pytorch_one(learnt, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from unet_lib.cli.export import export_onnx

    path = export_onnx(learnt, tmp_path / "model.onnx", image_size=CROP)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_model = lambda x: torch.from_numpy(session.run(["logits"], {"images": x.numpy()})[0])  # noqa: E731
    images, _ = shapes_picture(80, 112, 4, seed=5)
    with torch.inference_mode():
        ours = tiled_logits(learnt, images, CROP)
    theirs = tiled_logits(onnx_model, images, CROP)
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=1e-4)
    assert torch.equal(predict_labels(theirs), predict_labels(ours))


def test_a_crop_not_divisible_by_the_halvings_names_the_field():
    with pytest.raises(ConfigError, match=r"^crop: 30x50 is not divisible by 4 \(.*\); try 32x48$"):
        TrainConfig(crop=(30, 50), features=(4, 8))
    config = TrainConfig(crop=(32, 48), features=(4, 8))
    assert config.resize_to is None and TrainConfig(features=(4, 8)).resize_to == config.image_size
    assert TrainConfig.from_dict(config.to_dict()) == config
    args = build_parser().parse_args(["train", "folder", "--data", "mine", "--crop", "64x96"])
    assert train_config(args).crop == (64, 96)


def test_a_picture_smaller_than_the_crop_is_one_line_naming_it(tmp_path):
    make_folder_tree(tmp_path / "data", count=4, size=(40, 60))
    config = TrainConfig(dataset="folder", data_dir=str(tmp_path / "data"), crop=(48, 48), features=(4, 8))
    train_set, val_set = build_datasets(config)
    assert val_set[0][0].shape == (3, 40, 60)  # validation: whole pictures, at their own size
    with pytest.raises(InputError) as err:
        train_set[0]
    path = train_set.image_path(0)
    assert str(err.value) == (
        f"{path}: picture is 40x60 (HxW), smaller than the crop 48x48; pass a smaller --crop or leave the picture out"
    )


def two_size_tree(root: Path) -> Path:
    """A folder tree with pictures of two sizes (``SIZES``): 3 + 3 for training, 1 + 1 under ``val/``."""
    for height, width in SIZES:
        part = root.parent / f"{root.name}-{height}x{width}"
        make_folder_tree(part, count=3, size=(height, width), val=1)
        for path in [p for p in part.rglob("*") if p.is_file()]:
            target = root / path.relative_to(part).parent / f"s{height}_{path.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, target)
    return root


@pytest.fixture(scope="module")
def crop_run(tmp_path_factory):
    """A run trained on 32x32 crops of pictures of two sizes, read through the command line's disk cache; with the
    pictures that validation passed to the tiled model."""
    root = two_size_tree(tmp_path_factory.mktemp("tiles") / "data")
    config = TrainConfig(
        dataset="folder",
        data_dir=str(root),
        crop=CROP,
        features=(4, 8),
        batch_size=2,
        num_epochs=2,
        lr=1e-2,
        augment="flip",
        device="cpu",
        threads=1,
        progress=False,
    )
    seen = []

    class Watched(Tiled):
        def forward(self, images):
            seen.append(tuple(images.shape))
            return super().forward(images)

    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training_module, "Tiled", Watched)
        history = train(config, root.parent / "run", datasets=cached_datasets)
    torch.set_num_threads(threads)
    return root, root.parent / "run" / "best.pt", history, seen


def test_training_on_crops_validates_whole_pictures_in_tiles(crop_run):
    root, checkpoint, history, seen = crop_run
    assert len(history) == 2 and all(np.isfinite(row["val_dice"]) for row in history)
    assert sorted(set(seen)) == [(1, 3, h, w) for h, w in SIZES]  # each validation picture whole, one at a time
    stored = TrainConfig.from_dict(load_checkpoint(checkpoint)["config"])
    assert stored.crop == CROP
    train_set, _ = build_datasets(stored)
    assert {tuple(train_set[i][0].shape) for i in range(len(train_set))} == {(3, *CROP)}  # random crops
    # The command line's disk cache kept the pictures at their own size, one file per split.
    names = {tuple(p.name.split("-")[:3]) for p in cache_dir().glob("folder-*-own-*.pictures")}
    assert {("folder", "train", "own"), ("folder", "val", "own")} <= names


def tiled_by_hand(checkpoint: Path, path: Path, tile) -> torch.Tensor:
    """Logits [1, 1, H, W] of a picture file at its own size, tiled with ``tiled_logits`` around the plain model."""
    model, _ = model_from_checkpoint(checkpoint)
    image = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255
    with torch.inference_mode():
        return tiled_logits(model.eval(), image[None], tile)


@pytest.mark.parametrize("tile", [None, (16, 32)])
def test_evaluate_scores_each_picture_at_its_own_size_in_tiles(crop_run, tile, capsys):
    root, checkpoint, _, _ = crop_run
    args = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(root), "--workers", "0", "--quiet", "--no-amp"]
    assert main(args + (["--tile", f"{tile[0]}x{tile[1]}"] if tile else []) + ["--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    val = FolderDataset(root, "val")
    logits = [tiled_by_hand(checkpoint, val.image_path(i), tile or CROP)[0, 0].numpy() for i in range(len(val))]
    masks = [val.read_mask(i) for i in range(len(val))]
    assert {m.shape for m in masks} == set(SIZES)
    bounds = binary_scores_by_hand(logits, masks)
    assert_between(result, bounds, keys=["dice"], suffix="_full_res")
    assert_between(result, bounds, keys=["dice", "pixel_accuracy"])  # the network's size is the picture's
    assert main(args + (["--tile", f"{tile[0]}x{tile[1]}"] if tile else [])) == 0
    h, w = tile or CROP
    assert f"(val, 2 images, in {h}x{w} tiles):" in capsys.readouterr().out


def test_predict_writes_masks_tiled_at_each_pictures_own_size(crop_run, tmp_path):
    root, checkpoint, _, _ = crop_run
    pictures = sorted((root / "val" / "images").iterdir())
    for tile, out in ((None, tmp_path / "default"), ((16, 32), tmp_path / "tiles")):
        extra = ["--tile", f"{tile[0]}x{tile[1]}"] if tile else []
        assert main(["predict", "--checkpoint", str(checkpoint), *map(str, pictures), "--out", str(out), *extra]) == 0
        for path in pictures:
            mask = np.asarray(Image.open(out / f"{path.stem}_mask.png"))
            expected = (tiled_by_hand(checkpoint, path, tile or CROP)[0, 0] > 0).numpy() * 255  # sigmoid > 0.5
            assert mask.shape == Image.open(path).size[::-1] and np.array_equal(mask, expected)


def test_carvana_kaggle_dice_and_submission_at_full_resolution_in_tiles(carvana_tree, tmp_path, capsys):
    config = TrainConfig(data_dir=str(carvana_tree), crop=(16, 16), features=(4, 8), loss="bce")
    torch.manual_seed(0)
    model = build_model(config)
    train_set = CarvanaDataset(carvana_tree, "train")  # 48x32 photos: a few steps, so logits stand clear of 0
    images, masks = (torch.stack(t) for t in zip(*(train_set[i] for i in range(len(train_set))), strict=True))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(20):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(images), masks[:, None].float())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    state = {"model": model.state_dict(), "arch": dict(model.arch), "config": config.to_dict()}
    checkpoint = save_checkpoint(state, tmp_path / "carvana.pt")
    common = ["--checkpoint", str(checkpoint), "--data", str(carvana_tree), "--workers", "0", "--quiet", "--no-amp"]
    assert main(["evaluate", *common, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    val = CarvanaDataset(carvana_tree, "val")
    logits = [tiled_by_hand(checkpoint, val.image_path(i), (16, 16))[0, 0] for i in range(len(val))]
    masks = [gif_mask(val.mask_path(i)) for i in range(len(val))]
    assert_between(result, binary_scores_by_hand([t.numpy() for t in logits], masks), keys=["dice"], suffix="_full_res")
    csv_path = tmp_path / "submission.csv"
    assert main(["predict", *common, "--split", "val", "--submission", str(csv_path)]) == 0
    rows = dict(line.split(",") for line in csv_path.read_text().splitlines()[1:])
    for i, expected in enumerate(logits):  # Kaggle's rows: each photo's mask at its own size, tiled
        assert np.array_equal(rle_decode(rows[val.image_path(i).name], expected.shape), (expected > 0).numpy())


def test_tile_errors_are_one_line_naming_the_option(crop_run, tmp_path, capsys):
    root, checkpoint, _, _ = crop_run
    base = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(root), "--workers", "0"]
    capsys.readouterr()
    assert main([*base, "--tile", "30x30"]) == 2
    assert (
        capsys.readouterr().err
        == "error: --tile 30x30: not divisible by 4 (the model halves it 2 times); try --tile 32x32\n"
    )
    assert main([*base, "--tile", "32x32", "--size", "32x32"]) == 2
    assert capsys.readouterr().err.startswith("error: --size and --tile: give one;")
    picture = next((root / "val" / "images").iterdir())
    assert (
        main(["predict", "--checkpoint", str(checkpoint), str(picture), "--out", str(tmp_path), "--tile", "10x12"]) == 2
    )
    assert capsys.readouterr().err.startswith(
        "error: --tile 10x12: not divisible by 4 (the model halves it 2 times); try --tile 8x12"
    )


def test_a_wrapped_model_goes_through_evaluate_with_flip_tta(learnt):
    tiled = Tiled(learnt, CROP)
    assert next(tiled.parameters()) is next(learnt.parameters()) and tiled.arch == learnt.arch
    images, masks = shapes_picture(64, 96, 2, seed=7)
    metrics = lambda: [Scores(3), Scores(3, tta=True, suffix="_tta")]  # noqa: E731
    whole = evaluate(learnt, [(images, masks)], metrics(), progress=False)
    tiled_scores = evaluate(tiled, [(images, masks)], metrics(), progress=False)
    for key in ("miou", "miou_tta"):
        assert abs(whole[key] - tiled_scores[key]) < 0.02, key
    assert not learnt.training and not tiled.training  # eval_mode put both back as they were
