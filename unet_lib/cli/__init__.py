"""The command line: ``python -m unet_lib {sample-data,check-data,train,evaluate,predict,export,demo} ...``.

This module parses arguments; ``unet_lib.cli.commands`` does the work. A user's mistake ends in
one line on stderr naming the file or argument, and exit code 2.

The package also holds the tools around the core: prediction files and Kaggle submissions (``pictures``,
``carvana``, ``cityscapes``), ONNX export, sample data, the picture cache, the demo, and the notebooks'
profiles and workspace.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import get_args

from unet_lib.config import RECIPES, CacheMode, ClassWeighting, ConfigError, DatasetName
from unet_lib.data.folder import EXPECTED_LAYOUT as FOLDER_LAYOUT
from unet_lib.errors import InputError

EPILOG = """examples:
  python -m unet_lib sample-data carvana data/carvana --cars 8
  python -m unet_lib train carvana --data data/carvana --recipe recommended --epochs 20
  python -m unet_lib evaluate --checkpoint models/carvana/run-001/best.pt --data data/carvana
  python -m unet_lib predict --checkpoint models/carvana/run-001/best.pt data/carvana/test --out predictions
  python -m unet_lib predict --checkpoint models/carvana/run-001/best.pt --data data/carvana --submission submission.csv
  python -m unet_lib predict --checkpoint best.pt --data data/cityscapes --split val --format cityscapes --out results
  python -m unet_lib check-data data/mine
  python -m unet_lib train folder --data data/mine --overfit-batch
  python -m unet_lib train folder --data data/mine --size 256x256 --epochs 30
  python -m unet_lib train folder --data data/big-pictures --crop 256x256
  python -m unet_lib predict --checkpoint best.pt big.tif --tile 512x512 --out predictions
  python -m unet_lib export --checkpoint models/folder/run-001/best.pt --out model.onnx
  python -m unet_lib demo"""

TILE_HELP = (
    "height x width of the tiles: predict each picture at its own size in overlapping tiles, blended (default: the"
    " crop of a checkpoint trained with --crop); not with --size"
)


def parse_size(text: str, order: str = "HxW") -> tuple[int, int]:
    """Parse ``"320x480"`` into a pair of positive ints (in the order the option documents)."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected {order} with two positive integers, e.g. 320x480, got {text!r}")
    return int(parts[0]), int(parts[1])


def parse_features(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive widths, e.g. 16,32,64,128, got {text!r}")
    return values


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def add_precision_options(p: argparse.ArgumentParser) -> None:
    """``--amp``/``--no-amp`` and ``--channels-last``/``--no-channels-last`` (see ``runtime.Precision.choose``)."""
    p.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        help="bf16 autocast where the device computes it natively: a CPU with avx512_bf16, amx_bf16 or Arm bf16, a"
        " CUDA GPU (fp16 where it has no bf16); fp32 elsewhere. Default on; --no-amp: exact fp32",
    )
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        help="NHWC memory layout (default: on with bf16 or fp16 autocast, whose kernels are fastest in it)",
    )


def add_layout_options(p: argparse.ArgumentParser, stored: bool = False) -> None:
    """The options that say where a folder tree's pictures and masks are, and its void value (``stored``: kept in
    the checkpoint, so needed only for a tree laid out otherwise)."""
    tail = "; stored in the checkpoint: needed only for a tree laid out otherwise" if stored else ""
    group = p.add_argument_group(
        "folder data laid out otherwise",
        "folders relative to the tree; a picture x.png pairs with a mask x.png, x_mask.png or x_L.png" + tail,
    )
    group.add_argument("--images", metavar="DIR", help="the (training) pictures, e.g. train (default images)")
    group.add_argument("--masks", metavar="DIR", help="their masks, e.g. trainannot (default masks)")
    group.add_argument("--val-images", metavar="DIR", help="validation pictures, e.g. val (default val/images)")
    group.add_argument("--val-masks", metavar="DIR", help="their masks, e.g. valannot (default val/masks)")
    group.add_argument(
        "--ignore-index",
        type=int,
        metavar="N",
        help="the masks' void value, e.g. 11: read as 255, ignored by the loss and the scores (255 always is)",
    )


def add_training_options(p: argparse.ArgumentParser) -> None:
    """The dataset, the recipe and every setting of a run: ``train``'s and ``lr-find``'s."""
    p.add_argument("dataset", choices=get_args(DatasetName), help="folder: your own images/ and masks/ (check-data)")
    p.add_argument("--data", type=Path, help="dataset folder (default data/<dataset>)")
    p.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        help="named recipe (default: recommended / cityscapes-recommended / folder)",
    )
    p.add_argument("--size", type=parse_size, help="height x width the network sees, e.g. 320x480")
    p.add_argument(
        "--crop",
        type=parse_size,
        help="height x width: train on random crops of each picture at its own size (no resize), validate whole"
        " pictures in tiles of that size; evaluate and predict then tile too",
    )
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--lr", type=float)
    p.add_argument("--features", type=parse_features, help="encoder widths, e.g. 16,32,64,128")
    p.add_argument(
        "--class-weights",
        choices=get_args(ClassWeighting),
        help="weigh the loss by the classes' pixel shares, as check-data prints them: median frequency for"
        " cross-entropy, pos_weight (negatives / positives) for two classes; helps rare classes (default none)",
    )
    p.add_argument("--limit", type=positive_int, help="use only the first N training and validation images")
    p.add_argument("--workers", type=int, help="DataLoader worker processes")
    p.add_argument(
        "--cache",
        choices=get_args(CacheMode),
        help="decoded pictures: disk (one file in $UNET_LIB_CACHE or ~/.cache/unet_lib that all workers and later runs"
        " share; the default), memory (a copy in each worker) or none",
    )
    p.add_argument("--device", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--seed", type=int)
    p.add_argument("--threads", type=positive_int, help="CPU threads (fix it to compare runs bit for bit)")
    add_precision_options(p)


def add_figure_options(p: argparse.ArgumentParser, figure: str, what: str) -> None:
    """``--out DIR`` for a command's figure, and ``--overwrite`` to replace one already there."""
    p.add_argument("--out", type=Path, help=f"folder for {figure}: {what}")
    p.add_argument("--overwrite", action="store_true", help=f"replace an existing {figure} in --out")


def add_scoring_options(p: argparse.ArgumentParser, checkpoints: int = 1) -> None:
    """What ``evaluate``, ``analyze`` and ``compare`` read: checkpoints, a split of a dataset, how to run the model."""
    if checkpoints == 1:
        p.add_argument("--checkpoint", type=Path, required=True, help="a .pt from train, or an original project .h5")
    else:
        p.add_argument("--checkpoint", type=Path, action="append", required=True, help="give it twice: A, then B")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split", default="val", help="split to score (default val)")
    p.add_argument("--size", type=parse_size, help="height x width (default: the checkpoint's, 320x480 for .h5 files)")
    p.add_argument("--tile", type=parse_size, help=TILE_HELP)
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--workers", type=int, default=2, help="DataLoader processes decoding images (default 2)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--quiet", action="store_true")
    add_precision_options(p)
    add_layout_options(p, stored=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m unet_lib",
        description="U-Net semantic segmentation on Carvana, Cityscapes and your own data.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = subcommands.add_parser("sample-data", help="write procedurally generated data in the real on-disk formats")
    p.add_argument("dataset", choices=["carvana", "cityscapes"], help="the layout to write (your own: see check-data)")
    p.add_argument("dir", type=Path, help="folder to write, e.g. data/carvana")
    p.add_argument(
        "--cars", type=positive_int, default=8, help="carvana: number of training cars, 16 views each (default 8)"
    )
    p.add_argument("--images", type=positive_int, default=6, help="cityscapes: images per split (default 6)")
    p.add_argument(
        "--full-size",
        action="store_true",
        help="the real counts, in place of --cars / --images: carvana 318 cars (5,088 training photos, 1.8 GB, 10-16"
        " minutes on 2 cores), cityscapes 2,975 training and 500 validation pictures (10 GB, about 30 minutes on 2 cores)",
    )
    p.add_argument(
        "--size",
        type=lambda t: parse_size(t, "WxH"),
        help="width x height of the files (default: the real 1918x1280 / 2048x1024)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--workers", type=positive_int, help="processes writing at once (default: one per core); the files are the same"
    )
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty folder")

    p = subcommands.add_parser(
        "check-data",
        help="check a dataset folder before training: pairs, sizes, mask values, class balance, problems",
        description="Reads every mask and each picture's header, prints what the data holds and every problem "
        "(one line each, naming the file); exit code 2 when the data cannot be trained on. Changes no file.",
        epilog=f"Your own data (folder): {FOLDER_LAYOUT}\nCarvana: train/ + train_masks/ (or train_masks.csv). "
        "Cityscapes: leftImg8bit/ + gtFine/. More in data/README.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dir", type=Path, help="the dataset folder")
    p.add_argument("--dataset", choices=get_args(DatasetName), help="its layout (default: detected)")
    p.add_argument("--size", type=parse_size, help="height x width you mean to train at, e.g. 320x480")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_layout_options(p)

    p = subcommands.add_parser("train", help="train a U-Net")
    add_training_options(p)
    p.add_argument("--out", type=Path, help="run folder (default: a new models/<dataset>/run-NNN)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    p.add_argument("--overwrite", action="store_true", help="replace the checkpoints in an existing --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars (one line per epoch stays)")
    add_layout_options(p, stored=True)
    p.add_argument(
        "--overfit-batch",
        action="store_true",
        help="a quick check that the model can learn the masks, in about a minute; writes no run. Trains on up to 4 "
        "training pictures (no augmentation) for at most 300 steps (--steps) or 60 s, printing the batch's Dice (one "
        "output channel) or mIoU as it goes, then scores 4 other pictures with their own masks and with each other's, "
        "and says: learned (Dice 0.9 / mIoU 0.8 reached, and what it learned holds for the other pictures: train for "
        "real), learning but slowly (the score clearly rose and holds for the other pictures: try a higher --lr or "
        "more --steps) or not learning (the score hardly rose: a higher --lr; or what it learned holds for no other "
        "picture: check the masks against their pictures with check-data)",
    )
    p.add_argument(
        "--steps",
        type=positive_int,
        metavar="N",
        help="with --overfit-batch: at most N steps, however long they take (default: 300 steps or 60 s)",
    )

    p = subcommands.add_parser(
        "lr-find",
        help="which learning rate? a short sweep from 1e-6 to 10 on a copy of the model; writes no run",
        description="Trains a copy of the model for up to 100 steps on the training pictures (not augmented) while the "
        "learning rate grows exponentially from 1e-6 to 10, stops when the loss diverges, and suggests a tenth of the "
        "rate where the smoothed loss was lowest. Nothing is written to models/.",
    )
    add_training_options(p)
    add_figure_options(p, "lr_find.png", "the loss against the learning rate")
    p.add_argument("--json", action="store_true", help="print the sweep as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_layout_options(p, stored=True)
    p.set_defaults(resume=False, overfit_batch=False, steps=None)

    p = subcommands.add_parser(
        "doctor",
        help="what a finished run's history says went wrong, with what to try; train runs it too",
        description="Reads RUN_DIR/history.json: a loss that rose or stayed flat in the first steps, predictions all "
        "one class (the all-black mask), classes never predicted right, validation loss rising while training loss "
        "falls (from which epoch), a loss flat over the run. One line per finding.",
    )
    p.add_argument("run", type=Path, help="a run folder of train (history.json, last.pt)")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")

    p = subcommands.add_parser("evaluate", help="score a checkpoint on a dataset split")
    add_scoring_options(p)
    p.add_argument(
        "--tta", action="store_true", help="cityscapes: score the flip-averaged prediction (carvana reports both)"
    )

    p = subcommands.add_parser(
        "analyze",
        help="where a checkpoint fails: every picture worst first, errors on boundaries vs interiors, recall by size",
        description="Every picture's loss and score (Dice for two classes, mIoU over the classes present for more), "
        "worst first; the share of wrong pixels within --band px of a boundary between two reference labels; recall "
        "of the reference's connected regions by size; for several classes each IoU and the class it is taken for.",
    )
    add_scoring_options(p)
    p.add_argument("--band", type=int, default=3, help="boundary band half-width in pixels (default 3)")
    add_figure_options(p, "worst.png", "the worst pictures and their error maps")

    p = subcommands.add_parser(
        "compare",
        help="two checkpoints on the same pictures: is B really better than A, or is it noise?",
        description="Scores every picture with both checkpoints (Dice for two classes, mIoU for more) and prints the "
        "mean paired difference B - A with a 95 %% bootstrap interval (10,000 resamples of the pictures, seed 0) "
        "and how many pictures each wins; it says so when the interval contains 0.",
    )
    add_scoring_options(p, checkpoints=2)
    add_figure_options(p, "disagreement.png", "where the two predictions differ")

    p = subcommands.add_parser(
        "predict",
        help="predict masks at the input's original resolution",
        description="Either INPUTS --out DIR (masks and overlays), or --data DIR --split SPLIT with "
        "--submission CSV (Kaggle Carvana) or --out DIR (Cityscapes labelId PNGs for the official evaluator).",
    )
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("inputs", nargs="*", type=Path, help="image files or folders of images")
    p.add_argument("--out", type=Path, help="folder for <name>_mask.png and <name>_overlay.jpg, or Cityscapes results")
    p.add_argument("--data", type=Path, help="dataset folder: predict a whole split instead of INPUTS")
    p.add_argument("--split", default="test", help="split of --data to predict (default test; folder data: val)")
    p.add_argument("--submission", type=Path, help="carvana: the Kaggle img,rle_mask CSV to write")
    p.add_argument(
        "--format",
        choices=["png", "cityscapes"],
        help="png: mask + overlay per input (default); cityscapes: labelId + colour PNGs of a --data split",
    )
    p.add_argument("--size", type=parse_size, help="height x width the network sees (default: the checkpoint's)")
    p.add_argument("--tile", type=parse_size, help=TILE_HELP)
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--tta", action="store_true", help="average with the horizontally flipped prediction")
    p.add_argument("--batch-size", type=positive_int, default=4)
    p.add_argument("--workers", type=int, default=2, help="DataLoader processes decoding images (default 2)")
    p.add_argument("--device", default="auto")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_precision_options(p)
    add_layout_options(p, stored=True)

    p = subcommands.add_parser(
        "export",
        help="write a checkpoint as an ONNX model (any batch size, height and width)",
        description="Writes the model as ONNX (needs the onnx package: pip install 'unet_lib[export]') and, with "
        "onnxruntime installed, compares its logits with PyTorch's.",
    )
    p.add_argument("--checkpoint", type=Path, required=True, help="a .pt from train, or an original project .h5")
    p.add_argument("--out", type=Path, required=True, help="the .onnx file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")

    p = subcommands.add_parser("demo", help="the main job: sample data if needed, train, evaluate, baselines, figure")
    p.add_argument("--data", type=Path, default=Path("data/carvana"))
    p.add_argument("--models", type=Path, default=Path("models/demo"), help="a new run-NNN folder is made here")
    p.add_argument("--epochs", type=positive_int, help="override the demo recipe's epoch count")
    p.add_argument("--threads", type=positive_int)
    p.add_argument("--quiet", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from unet_lib.cli import commands  # after parsing: --help stays quick
    from unet_lib.training import TrainingDiverged

    if getattr(args, "quiet", False):
        os.environ["UNET_PROGRESS"] = "0"  # no progress bars, in this process and its workers
    try:
        return getattr(commands, args.command.replace("-", "_"))(args)
    except (InputError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("interrupted; continue a training run with --resume", file=sys.stderr)
        return 130
