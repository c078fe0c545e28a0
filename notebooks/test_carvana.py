# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Testing a Carvana U-Net: scores, failures, thresholds and test-time augmentation
#
# Training ends with one number, the validation Dice. This notebook takes a trained model apart:
#
# 1. load a checkpoint: one of this project's `best.pt` files, or a `.h5` file of the original project;
# 2. score it on validation cars it never saw: pixel accuracy, Dice, precision and recall;
# 3. the spread of the per-image Dice, the worst photos, and where their wrong pixels lie (on the car's
#    outline or inside it);
# 4. the probability threshold: how the scores move with it, and how to choose it honestly;
# 5. test-time augmentation (averaging with the mirrored photo), on and off;
# 6. noise: a second model that differs only in its random seed, and how large a difference must be to
#    mean something;
# 7. predictions on test photos (no masks there) and on augmented training photos, as the original did;
# 8. your own photo, at its own resolution.
#
# Six exercises along the way check themselves: write your answer in the cell under each, run it, and
# open the collapsed solution below it when you want to compare.
#
# It reads the checkpoint that `train_carvana` wrote (the newest run under
# `models/notebooks/carvana`); run alone, it takes the newest one from the command line or the demo,
# or trains a small one first (seconds in quick mode, its log says how long). Without a GPU the notebook runs its quick
# profile (small sample data); `UNET_QUICK=0` or `1` forces either.
#
# **Sizes** are written height x width (HxW), the order in which PyTorch stores a picture: 64x96 is 64 rows
# of 96 pixels.
#
# **The quick-mode photos** are not Kaggle's: they are sample cars drawn by this project
# (`python -m unet_lib sample`, `unet_lib/cli/sample/carvana.py`), 16 turntable views of each, stored at
# 320x480 instead of Kaggle's 1280x1918 (cited: the competition's photo size). Section 2 prints which
# photos it read.
#
# **Precision.** The model is scored in the precision it was trained in (`Precision.choose`, the
# library's pick for this machine: the 16-bit bf16 format for the convolutions where the processor
# computes it directly, 32-bit fp32 elsewhere; `train_carvana` explains both, and the line printed in
# section 2 says which). Every cell below that runs the network passes this precision
# (`amp_dtype=precision.dtype`), so all of them see the same predictions. The committed outputs ran in bf16 on a CPU with `avx512_bf16`. A CPU without
# bf16 instructions rounds differently, so its scores differ in the third decimal: on an earlier, smaller
# sample the same quick run gave a validation Dice of 0.9515 in fp32 instead of 0.9527 in bf16 (cited,
# measured with `ONEDNN_MAX_CPU_ISA=AVX2`, which hides the bf16 instructions). `make test` accepts the
# Dice within 0.01 of the committed one.

# %% tags=["parameters"]
from unet_lib.cli.profiles import notebook_profile

QUICK, WHY = notebook_profile()  # UNET_QUICK=1 or 0 decides; unset, quick without a GPU (small sample data)
# CHECKPOINT: None for train_carvana's newest best.pt (else the newest under models/, trained now if there is none);
# or a path relative to the repository, e.g. "models/notebooks/carvana/run-001/best.pt", or the original project's
# Carvana model "models/sem_segmentation/1703926149/model_1703926149.h5".
CHECKPOINT = None
ORIGINAL_SIZE = (320, 480)  # (H, W) for an original .h5 file, which does not store it: 320x480 for 1703926149
DATA_DIR = None  # None: the folder the checkpoint was trained on if it is here, else data/carvana (or sample data)
THRESHOLD = 0.5  # a pixel is "car" when the predicted probability exceeds this
BATCH_SIZE = 8
NUM_WORST = 3  # worst photos shown with their error maps
NUM_SHOW = 2 if QUICK else 3  # photos in the test and augmentation galleries
THREADS = 1 if QUICK else None  # CPU threads; on a small shared CPU one thread is faster than two that wait

# %%
import contextlib
import dataclasses
import io
import json
import os
from pathlib import Path

import torch
from exercises.test_carvana import (
    check_exercise_1,
    check_exercise_2,
    check_exercise_3,
    check_exercise_4,
    check_exercise_5,
    check_exercise_6,
)
from IPython.display import display
from matplotlib import pyplot as plt
from PIL import Image
from torch.utils.data import DataLoader

from unet_lib import (
    CarvanaDataset,
    InputError,
    count_parameters,
    dice_per_image,
    evaluate,
    make_loss,
    model_from_checkpoint,
    seed_everything,
)
from unet_lib.checkpoint import new_run_dir
from unet_lib.cli.cache import use_cache
from unet_lib.cli.carvana import DEFAULT_THRESHOLDS, sweep_thresholds
from unet_lib.cli.full_res import binary_metrics, with_full_masks
from unet_lib.cli.original import checkpoint_config, load_original
from unet_lib.cli.pictures import predict_items
from unet_lib.cli.workspace import carvana_checkpoint, carvana_dir, repo_root
from unet_lib.data.carvana import car_of
from unet_lib.evaluation import predict_labels, predict_logits
from unet_lib.inspect.analysis import BAND, Atlas, boundary_band, paired_comparison
from unet_lib.runtime import Precision, pick_device
from unet_lib.training import train
from unet_lib.viz import RowLabels, plot_histograms, plot_threshold_sweep, show_gallery
from unet_lib.viz.analysis import show_disagreement, show_worst
from unet_lib.viz.photo_widget import PhotoPredictor

plt.rcParams["figure.dpi"] = 100  # readable at 100 % zoom, on GitHub too
plt.rcParams["image.interpolation"] = "nearest"  # each pixel as it is: the network's resolution, a smaller file
seed_everything(0, threads=THREADS)
print(f"{'quick' if QUICK else 'full'} profile: {WHY}")

# %% [markdown]
# ## 1. Loading a checkpoint
#
# The network is the U-Net of Ronneberger, Fischer and Brox, [*U-Net: Convolutional Networks for
# Biomedical Image Segmentation*](https://arxiv.org/abs/1505.04597) (2015): an encoder that halves the
# picture block by block, a decoder that doubles it back, and skip connections that hand each decoder
# block the encoder's features of the same size. `train_carvana` builds and trains it; here we test it.
#
# **This project's checkpoints** (`best.pt`, `last.pt`) are plain dicts: the weights under `model`,
# the network's shape under `arch` (widths, blocks), the training settings under `config` (among them
# the picture size and the data folder), the metrics of the epoch, and more. `model_from_checkpoint`
# rebuilds the U-Net from `arch` and loads the weights with `weights_only=True`, which refuses files
# that would run code when loaded.
#
# **The original project's files** (`model_<time>.h5`) are not HDF5 despite the name: they were
# written with `torch.save(model.state_dict(), ...)`, so they hold the weights and nothing else. Their
# key names are the ones this project's `UNet` uses (`downs.0.conv.0.weight`, ..., `bottleneck...`,
# `upconvs.0.weight`, `ups.0...`, `final_conv.weight`), so `load_original` reads the widths off the
# weights' shapes and loads them as they are. What the file does not say must be given: the picture
# size it was trained at (`ORIGINAL_SIZE`). Its pictures went in as RGB scaled to [0, 1], as here (its
# `Normalize(mean=0, std=1)` changed nothing).

# %%
checkpoint = carvana_checkpoint() if CHECKPOINT is None else Path(repo_root(), CHECKPOINT)
if checkpoint.suffix == ".h5":
    model = load_original(checkpoint)
    state = {"arch": model.arch}  # a bare state_dict: no settings, no metrics
else:
    model, state = model_from_checkpoint(checkpoint)
if model.arch["num_classes"] != 1:
    raise InputError(f"{checkpoint}: predicts {model.arch['num_classes']} classes; expected a one-class Carvana model")
config = checkpoint_config(state, checkpoint)  # for an .h5 file: the original's settings (BCE loss)
image_size = tuple(config.image_size) if "config" in state else tuple(ORIGINAL_SIZE)
written_by = "train_carvana" if "notebooks" in checkpoint.parts else "the command line, the demo or you"
print(f"checkpoint: {os.path.relpath(checkpoint, repo_root())} (written by {written_by})")
print(
    f"widths {model.arch['features']}, {count_parameters(model):,} parameters, pictures of {image_size[0]}x{image_size[1]}"
)
if "metrics" in state:
    print(f"saved after epoch {state['epoch']} with validation Dice {state['metrics']['val_dice']:.4f}")
if "config" in state:
    print(f"trained with loss {config.loss!r}, augment {config.augment!r}, {config.num_epochs} epochs")

# %% [markdown]
# The weights of the first block, as stored in either kind of file: a 3x3 convolution without a bias
# (`conv.0`), BatchNorm's scale, shift and running statistics (`conv.1`; `conv.2` is the ReLU, which
# has no weights), then a second convolution (`conv.3`) and BatchNorm (`conv.4`). The second
# convolution does have a bias, though BatchNorm right after it cancels any bias: the original
# project's block has it, and keeping it lets its saved weights load unchanged.

# %%
weights = model.state_dict()
print(f"{len(weights)} tensors; those of downs.0 and final_conv:")
for name, tensor in weights.items():
    if name.startswith(("downs.0.", "final_conv.")):
        print(f"  {name:36s} {tuple(tensor.shape)}")

# %% [markdown]
# ## 2. Scores on held-out cars
#
# The validation photos are cars the checkpoint was not trained on, when the data and the split are
# the ones it was trained with: the split is made by car, with the same seed, from the same folder.
# (For an original `.h5` model the split it was trained with is unknown: its scores here may include
# cars it has seen.)
#
# `evaluate` with the metrics of `binary_metrics` scores in one pass at the network's picture size, at
# the photos' own size (as Kaggle does; `with_full_masks` adds each photo's full-size mask to the
# batches) and with test-time augmentation (section 5); every score comes from the same pixel counts
# (`unet_lib.metrics.BinaryCounts`). The later cells predict in the same precision, so their pixel counts
# agree with these: section 3 checks it.

# %%
trained_on = Path(repo_root(), config.data_dir) if "config" in state else None
if DATA_DIR:
    data_dir = Path(DATA_DIR)
elif trained_on is not None and trained_on.is_dir():
    data_dir = trained_on
else:
    data_dir = carvana_dir()
val_fraction = config.val_fraction
val_set = CarvanaDataset(data_dir, "val", size=image_size, val_fraction=val_fraction)
val_set = use_cache(val_set, "memory")  # read twice: the decoded pictures are kept in memory
val_loader = DataLoader(val_set, BATCH_SIZE)
device = pick_device("auto")
precision = Precision.choose(device, config.amp, config.channels_last)  # as trained: bf16 where native, else fp32
model = precision.prepare(model.to(device)).eval()
loss_fn = make_loss(config.loss, 1)  # the training loss (the original's: BCE)
metrics = evaluate(model, with_full_masks(val_set, BATCH_SIZE), binary_metrics(THRESHOLD), loss_fn, precision.dtype)
print(precision)
print(f"data: {os.path.relpath(data_dir, repo_root())}, {len(val_set)} validation photos, threshold {THRESHOLD}")
with Image.open(val_set.image_path(0)) as opened:
    photo_size = opened.size[::-1]  # (H, W) of the photo on disk
drawn = "quick" in data_dir.parts  # data/quick: the sample cars this project draws
print(
    f"photos of {photo_size[0]}x{photo_size[1]} (HxW; {'drawn sample cars' if drawn else 'Kaggle'}),"
    f" scored by the network at {image_size[0]}x{image_size[1]}"
)
for name in ("dice", "pixel_accuracy", "precision", "recall", "iou", "loss"):
    print(f"  {name:15s} {metrics[name]:.4f}")

same_run = trained_on is not None and data_dir == trained_on and config.limit is None and "metrics" in state
if same_run and THRESHOLD == config.threshold:
    # The same photos, weights and rule as the last validation of training: the same score, up to float noise.
    assert abs(metrics["dice"] - state["metrics"]["val_dice"]) < 1e-3, (metrics["dice"], state["metrics"])

# %% [markdown]
# How the scores are made: `dice` is computed **per photo** and then averaged over the photos (the Kaggle
# metric). `pixel_accuracy`, `precision`, `recall` and `iou` are **pooled**: the true and false positives
# and negatives of all photos are added up first and divided once (`unet_lib.metrics.binary_scores`), so a
# large car counts more than a small one. `loss` is the training loss (its name is printed in section 1)
# averaged over the validation batches: it is the number training pushed down, lower is better, and its
# scale depends on which loss it is, so compare it only between runs trained with the same loss. Pixel
# accuracy is usually the highest of them because it also counts the easy floor pixels, most of a photo.
#
# ## 3. Photo by photo
#
# The Dice above is a mean over photos. One pass over the validation photos counts, for each photo
# and for each threshold from 0.05 to 0.95, its true and false positives and negatives
# (`sweep_thresholds`). It counts with the same `BinaryCounts` as the evaluation above, in the same
# precision, so at the chosen threshold it gives the same Dice (the `assert` checks it).

# %%
sweep = sweep_thresholds(model, val_loader, sorted({*DEFAULT_THRESHOLDS, THRESHOLD}), amp_dtype=precision.dtype)
at_threshold = sweep.scores(THRESHOLD)
assert at_threshold["dice"] == metrics["dice"], (at_threshold, metrics)
dice = sweep.dice()[sweep.index(THRESHOLD)]  # (N,) one Dice per photo
by_car = {}
for index, image_id in enumerate(val_set.ids):
    by_car.setdefault(car_of(image_id), []).append(dice[index])
display(
    plot_histograms(
        {f"car {car}": torch.stack(values) for car, values in by_car.items()},
        "Dice of the photo",
        f"Per-image Dice at threshold {THRESHOLD}, by car",
    )
)
print(f"{len(sweep.thresholds)} thresholds, {len(val_set)} photos of {len(by_car)} car(s)")
print(f"per-image Dice: min {dice.min():.4f}, median {dice.median():.4f}, max {dice.max():.4f}")

# %% [markdown]
# The worst photos, by name (`<car>_<view>`): their Dice, and their two kinds of wrong pixels, false
# positives (background called car) and false negatives (car missed). Which kind dominates says whether
# the network draws the car too large or too small: the cell says it for each photo (a kind "dominates" when
# it is more than 1.5 times the other). The counts are the ones the sweep above made: the cell checks it. Errors along the outline are unavoidable at a small
# picture size; whole missing parts (a roof, a wheel) or blobs on the floor are real mistakes: the next
# cells tell the two apart.

# %%
worst = sweep.worst(NUM_WORST, THRESHOLD)
worst_cars = {car_of(val_set.ids[index]) for index in worst}
print(f"the {len(worst)} worst photos show {len(worst_cars)} car(s) of the {len(by_car)} held out")
images, probs, masks = predict_items(model, val_set, worst, amp_dtype=precision.dtype)  # in the same precision
called = probs[:, 0] > THRESHOLD  # (K, H, W)
worst_counts = sweep.counts[sweep.index(THRESHOLD)]  # (N, 4): TP, FP, FN, TN of each photo, from the sweep
wrong_of_worst = {}  # photo index -> (FP, FN), compared with the next section's analysis
for index, pred, mask in zip(worst, called, masks.bool(), strict=True):
    false_pos, false_neg = (pred & ~mask).sum().item(), (~pred & mask).sum().item()
    assert (false_pos, false_neg) == tuple(worst_counts[index, 1:3].tolist()), (false_pos, false_neg)  # as counted
    wrong_of_worst[index] = (false_pos, false_neg)
    if false_pos > 1.5 * false_neg:
        reading = "mostly false positives: the car is drawn too large"
    elif false_neg > 1.5 * false_pos:
        reading = "mostly false negatives: the car is drawn too small"
    else:
        reading = "about as many of each: the outline is off both ways, not too large or too small"
    print(
        f"  {val_set.ids[index]}: Dice {dice[index]:.4f}, {false_pos} false positive and {false_neg} false negative px"
    )
    print(f"    {reading}")

# %% [markdown]
# ### Where the wrong pixels lie
#
# Is a photo bad because the network cannot draw a clean outline, or because it misses or invents whole
# parts? `unet_lib.inspect.analysis.Atlas` is a metric for the same `evaluate` loop: for every photo it
# keeps its Dice and loss, and splits its wrong pixels into those **within a few pixels of the car's
# outline** (the *boundary band*: `boundary_band`, every pixel within `BAND` px of a pixel whose
# neighbour has the other label) and those in the **interior** (deep inside the car, or far out on the
# floor). It also cuts each reference mask into connected regions (`components`) and measures how much of
# each region was found, by region size. This is what the command line's `analyze` prints
# (`python -m unet_lib analyze --checkpoint ...`; `unet_lib/cli/analyze.py`).

# %%
atlas = Atlas(1, loss_fn, threshold=THRESHOLD)  # 1 output: scored by Dice
analysis = evaluate(model, val_loader, [atlas], amp_dtype=precision.dtype)
pictures = sorted(analysis["pictures"], key=lambda p: p["index"])  # in dataset order
scores = torch.tensor([p["score"] for p in pictures], dtype=torch.float64)  # (N,) Dice per photo
assert abs(scores.mean().item() - metrics["dice"]) < 1e-4, (
    scores.mean(),
    metrics["dice"],
)  # the same Dice as section 2
for index, (false_pos, false_neg) in wrong_of_worst.items():  # the same counts as the cell above, photo by photo
    assert pictures[index]["wrong"] == false_pos + false_neg, (pictures[index], false_pos, false_neg)
print(f"{'photo':22s} {'Dice':>6s} {'wrong px':>9s} {'on the outline':>15s}")
for p in analysis["pictures"][:5]:  # worst first
    in_band = p["wrong_in_band"] / max(p["wrong"], 1)
    print(f"{val_set.ids[p['index']]:22s} {p['score']:6.4f} {p['wrong']:9d} {in_band:15.0%}")
band = analysis["boundary"]
print(
    f"all {len(pictures)} photos: {band['wrong']:,} wrong pixels; {band['wrong_share_in_band']:.0%} of them lie within"
    f" {band['band_px']} px of the outline, where {band['pixels_share_in_band']:.0%} of all pixels lie"
)
if band["wrong_share_in_band"] is not None and band["wrong_share_in_band"] > 2 * band["pixels_share_in_band"]:
    print("  -> the band holds a much larger share of the wrong pixels than of all pixels: mostly outline errors")
else:
    print("  -> the wrong pixels are not concentrated on the outline: many lie in the interior")
for row in analysis["by_size"]:
    recall = "-" if row["recall"] is None else f"{row['recall']:.3f}"
    size = f"{row['min_px']}..{row['max_px'] or ''} px"
    print(
        f"  {row['bin']:7s} regions ({size:>12s}): {row['objects']:3d}, {row['pixels']:7,} car pixels, recall {recall}"
    )

# %% [markdown]
# How to read it: the band is a strip along the outline. On the line that starts "all N photos:" (N the
# number of validation photos), the first share is the band's share of the wrong pixels,
# the second its share of all pixels: when the first is much larger, the band holds most of the wrong
# pixels, and the line under it (marked `->`) says which is the case here. Such errors are the
# outline drawn a pixel or two off: in quick mode, at 64x96, one pixel covers 5x5 pixels of the photo, so the small
# picture size, not the network's understanding of a car, limits the score (training at a larger size is
# the fix). Wrong pixels in the interior are the real mistakes: a window taken for background, a shadow
# taken for car.
#
# Scores by object size: a car's mask is one large region, so nearly all car pixels are in the "large"
# row. Small regions, when there are any, are bits of car that the mask at this size shows cut off from
# the body (a few pixels each): compare their recall with the large row's to see how much less of them
# the network finds. The size
# limits are COCO's (32x32 and 96x96 px of a 480x640 picture), scaled to the network's picture.
#
# The figure shows the worst photos again, now with the reference outline drawn in white over the
# prediction, and the error map split by kind and by where the wrong pixels lie: warm colours are false
# positives (orange on the outline, magenta inside: floor or shadow called car), cool colours false
# negatives (light blue on the outline, dark blue inside: car missed). The legend lists only the colours that
# occur. Look where along the outline each kind piles up: orange along the bottom would be the dark shadow
# under the car taken for car.

# %%
val_images, val_masks = (torch.stack(items) for items in zip(*(val_set[i] for i in range(len(val_set))), strict=True))
with torch.no_grad():  # every validation photo once: (N, 1, H, W) logits, (N, H, W) labels
    val_logits = predict_logits(model, val_images.to(device), amp_dtype=precision.dtype).cpu()
val_preds = predict_labels(val_logits, THRESHOLD)
shown = [p["index"] for p in analysis["pictures"][:NUM_WORST]]
fig = show_worst(
    [val_images[i] for i in shown],
    [val_preds[i] for i in shown],
    [val_masks[i] for i in shown],
    [f"{val_set.ids[i]}\nDice {scores[i]:.4f}" for i in shown],
    by_kind=True,  # false positives and false negatives in their own colours
)
display(fig)
plt.close(fig)

# %% [markdown]
# **Exercise 1: the Dice of the worst photo, by hand.** The worst photo's prediction is
# `val_preds[worst_index]` and its mask `val_masks[worst_index]` (both 0/1, 64x96 in quick mode). Count
# its true positives (car, called car), false positives (background called car) and false negatives (car
# missed), and compute its Dice, 2 TP / (2 TP + FP + FN).
# Expected: the score the table above gives the worst photo; the check counts again with set operations.

# %%
worst_index = analysis["pictures"][0]["index"]
answer = ...  # the Dice, a float
check_exercise_1(answer, val_preds[worst_index], val_masks[worst_index])

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution to exercise 1.
pred_1, mask_1 = val_preds[worst_index].bool(), val_masks[worst_index].bool()
tp_1, fp_1, fn_1 = (pred_1 & mask_1).sum(), (pred_1 & ~mask_1).sum(), (~pred_1 & mask_1).sum()
answer = (2 * tp_1 / (2 * tp_1 + fp_1 + fn_1)).item()
print(f"TP {tp_1}, FP {fp_1}, FN {fn_1}: Dice {answer:.4f}; the analysis gave {scores[worst_index]:.4f}")
assert check_exercise_1(answer, val_preds[worst_index], val_masks[worst_index])

# %% [markdown]
# **Exercise 2: outline or interior?** For the same worst photo, what share of its wrong pixels lies in
# the boundary band (`boundary_band(mask[None], BAND)[0]`, `BAND` px wide)? Answer with the share (a float),
# or with the word `"boundary"` or `"interior"` for the kind of error that dominates.
# Expected: the share the table prints for this photo, and the word that goes with it; the check builds
# the band again by shifting the outline in every direction.

# %%
answer = ...  # a share between 0 and 1, or "boundary" / "interior"
check_exercise_2(answer, val_preds[worst_index], val_masks[worst_index], BAND)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution to exercise 2.
mask_2 = val_masks[worst_index].long()
wrong_2 = val_preds[worst_index] != mask_2
band_2 = boundary_band(mask_2[None], BAND)[0]
answer = ((wrong_2 & band_2).sum() / wrong_2.sum()).item()
print(f"{answer:.0%} of the wrong pixels lie in the band: mostly {'boundary' if answer > 0.5 else 'interior'}")
assert check_exercise_2(answer, val_preds[worst_index], val_masks[worst_index], BAND)

# %% [markdown]
# ## 4. The threshold
#
# A higher threshold calls fewer pixels car: precision goes up, recall goes down, and Dice, which
# balances the two, peaks somewhere between. The best threshold below is picked on the very photos
# it is scored on, which flatters it; to use it honestly, pick it on one set of cars and report the
# score on another.
#
# Watch the low end: when the threshold drops to the probability the network gives the background
# (printed below; `train_carvana` explains why a short run leaves it well above 0), the whole
# background is called car at once and the Dice falls off a cliff.

# %%
best_threshold, best_dice = sweep.best_threshold()
display(plot_threshold_sweep(sweep.thresholds, sweep.curves(), best=(best_threshold, best_dice)))
print(f"Dice {at_threshold['dice']:.4f} at threshold {THRESHOLD}; best {best_dice:.4f} at {best_threshold:.2f}")
if best_threshold == THRESHOLD:
    print(f"here the default {THRESHOLD} is already the best: there is nothing to tune on these photos")
with torch.no_grad():
    images, masks = next(iter(val_loader))
    background_p = predict_logits(model, images.to(device), amp_dtype=precision.dtype).sigmoid().cpu()[:, 0][masks == 0]
print(f"median P(car) on background pixels: {background_p.median():.2f}")
print(f"Dice at the lowest threshold, {sweep.thresholds[0]:.2f}: {sweep.curves()['dice'][0]:.4f}")

# %% [markdown]
# **Exercise 3: choose the threshold on one car, measure it on the other.** Two cars are held out. Choose
# the threshold with the best mean per-photo Dice on the photos of the first car (`car_of(val_set.ids[0])`),
# using `sweep.dice()` (one row per threshold of `sweep.thresholds`, one column per photo), then report
# the mean Dice of the second car's photos at that threshold. Answer `(threshold, dice)`.
# Expected: a Dice at most the best the second car could get with its own best threshold (the check prints
# both): that gap is what choosing on the photos you report flatters. The check scores the photos itself
# from their probabilities, accepts only the first car's best threshold, and says whether the second car's
# own best threshold is another one. When the two coincide (on a coarse grid and cars this alike they may),
# choosing on the second car would have picked the same threshold: the gap is then 0, and on these photos
# the choice does not overfit; with a finer grid, or fewer photos, it would.

# %%
answer = ...  # (threshold, mean Dice on the second car)
val_cars = [car_of(image_id) for image_id in val_set.ids]
check_exercise_3(answer, val_logits.sigmoid()[:, 0], val_masks, val_cars, sweep.thresholds.tolist())

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution to exercise 3.
first_car = torch.tensor([car == val_cars[0] for car in val_cars])  # (N,) photos of the first car
per_photo = sweep.dice()  # (T, N)
chosen_3 = int(per_photo[:, first_car].mean(1).argmax())
answer = (float(sweep.thresholds[chosen_3]), per_photo[chosen_3, ~first_car].mean().item())
print(f"chosen on car {val_cars[0]}: threshold {answer[0]:.2f}; Dice on the other car {answer[1]:.4f}")
assert check_exercise_3(answer, val_logits.sigmoid()[:, 0], val_masks, val_cars, sweep.thresholds.tolist())

# %% [markdown]
# ## 5. Test-time augmentation (TTA)
#
# A car mirrored left to right is still a car. TTA predicts the photo and its mirror image, mirrors the
# second prediction back and averages the two logits: errors that are not symmetric partly cancel.
# It costs a second forward pass. `evaluate` (section 2) scored both ways, at the network's
# picture size and, as Kaggle does, at the photo's own size (the logits are upsampled before the
# threshold). "Full size" is the photo's own size: Kaggle's 1280x1918 on the real data, the sample cars'
# 320x480 in quick mode (the table prints it).

# %% [markdown]
# **Exercise 4: TTA by hand, before you see the library's.** Predict the logits of all validation photos
# (`val_images`) and of their mirror images (`val_images.flip(-1)`) with
# `predict_logits(model, images.to(device), amp_dtype=precision.dtype)`, mirror the second back, average
# the two, and compute the mean per-photo Dice at `THRESHOLD` (`dice_per_image`). Before you run it: will it
# be higher than the Dice without TTA, and by how much?
# Expected: a change of a few thousandths at most, of either sign; the check mirrors and scores the photos
# itself, and the next cell prints the library's numbers.

# %%
answer = ...  # the mean Dice with TTA at the network's size
check_exercise_4(answer, model, val_images.to(device), val_masks, THRESHOLD, precision.dtype)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution to exercise 4.
with torch.no_grad():
    plain_4 = predict_logits(model, val_images.to(device), amp_dtype=precision.dtype)
    mirrored_4 = predict_logits(model, val_images.to(device).flip(-1), amp_dtype=precision.dtype).flip(-1)
answer = dice_per_image(((plain_4 + mirrored_4) / 2).sigmoid().cpu() > THRESHOLD, val_masks).mean().item()
print(f"mean Dice with TTA, by hand: {answer:.4f}")
assert check_exercise_4(answer, model, val_images.to(device), val_masks, THRESHOLD, precision.dtype)

# %%
print(f"{'mean Dice':28s} {'without TTA':>12s} {'with TTA':>10s}")
print(f"{f'at {image_size[0]}x{image_size[1]}':28s} {metrics['dice']:12.4f} {metrics['dice_tta']:10.4f}")
print(f"{'at full size (Kaggle)':28s} {metrics['dice_full_res']:12.4f} {metrics['dice_full_res_tta']:10.4f}")
print(f"full size here: the photos' own {photo_size[0]}x{photo_size[1]} (Kaggle's photos: 1280x1918)")
full_minus_net = round(metrics["dice_full_res"] - metrics["dice"], 4) + 0.0  # + 0.0: no "-0.0000"
if abs(full_minus_net) < 0.002:
    print(f"full size - network size: {full_minus_net:+.4f}: nearly equal; upsampling the logits loses almost nothing")
else:
    print(
        f"full size - network size: {full_minus_net:+.4f}: the upsampled outline scores differently from the small one"
    )

# %% [markdown]
# Is the difference real? Each photo is scored both ways, so the gain can be read photo by photo: its
# mean, and the *standard error* of that mean (the spread of the gains over the square root of their
# count). A gain smaller than about two standard errors could be luck. This answers one question only:
# does TTA change *this* model's score on these photos? Both columns use the same weights, so the
# per-photo gains are small and alike, and a small standard error resolves even a small gain. Whether TTA
# helps *models of this recipe* is another question, which section 6 takes up. And photos of one car are
# not independent: with few held-out cars, even a clear gain says little about other cars.

# %%
sweep_tta = sweep_thresholds(model, val_loader, [THRESHOLD], tta=True, amp_dtype=precision.dtype)
gain = sweep_tta.dice()[0] - dice  # (N,) per photo: with TTA minus without
stderr = gain.std() / len(gain) ** 0.5
print(
    f"TTA gain per photo: mean {gain.mean():+.4f}, standard error {stderr:.4f}, over {len(gain)} photos of {len(by_car)} car(s)"
)
print(f"photos better with TTA: {(gain > 0).sum().item()}, worse: {(gain < 0).sum().item()}")
verdict = "larger than" if gain.mean().abs() > 2 * stderr else "within"
print(f"the mean gain is {verdict} two standard errors (for this model, on these photos)")

# %% [markdown]
# How close to the edge such a verdict can be: on an earlier, smaller sample, the same run found the gain
# within two standard errors in bf16 and just beyond them in fp32 (cited, measured on the same machine). A
# gain that one number format calls real and the other calls luck is not one to rely on.

# %% [markdown]
# ## 6. Noise: the same recipe with another seed
#
# The seed decides the network's first weights, the order of the photos and the random flips. Two runs
# that differ only in their seed are equally good recipes, so whatever separates their scores is noise:
# it tells how large a difference between two models must be before it means anything. The cell trains
# the twin of the checkpoint with `seed=1` (`dataclasses.replace(config, seed=1)`, everything else the
# same; in quick mode about a second or two an epoch) into a folder of its own under `models/notebooks/`, or
# reuses such a run when one with the same settings is there.

# %%
twin_config = dataclasses.replace(config, seed=1)


def settings(values: dict) -> str:
    """A run's settings, without where and how it ran (threads, device, cache, progress bars)."""
    kept = {k: v for k, v in values.items() if k not in ("threads", "device", "cache", "num_workers", "progress")}
    return json.dumps(kept, sort_keys=True, default=list)


twin_base = Path(repo_root(), "models", "notebooks", "carvana_seed")
wanted = settings(dataclasses.asdict(twin_config))
reusable = [
    path
    for path in sorted(twin_base.glob("run-*/best.pt"))
    if settings(torch.load(path, map_location="cpu", weights_only=True)["config"]) == wanted
]
if reusable:
    twin_checkpoint = reusable[-1]
else:
    twin_dir = new_run_dir(twin_base)
    print(f"training the seed-1 twin ({twin_config.num_epochs} epochs) into {os.path.relpath(twin_dir, repo_root())}")
    log = io.StringIO()  # the training log, printed below with paths relative to the repository
    with contextlib.redirect_stdout(log):  # one line per epoch (progress=False: no bars)
        train(dataclasses.replace(twin_config, threads=THREADS or config.threads, progress=False), twin_dir)
    print(log.getvalue().replace(f"{repo_root()}{os.sep}", "").rstrip())
    twin_checkpoint = twin_dir / "best.pt"
twin, twin_state = model_from_checkpoint(twin_checkpoint)
twin = precision.prepare(twin.to(device)).eval()
twin_atlas = evaluate(twin, val_loader, [Atlas(1, loss_fn, threshold=THRESHOLD)], amp_dtype=precision.dtype)
twin_pictures = sorted(twin_atlas["pictures"], key=lambda p: p["index"])
twin_scores = torch.tensor([p["score"] for p in twin_pictures], dtype=torch.float64)  # (N,) in dataset order
print(f"seed 0: {os.path.relpath(checkpoint, repo_root())}, mean Dice {scores.mean():.4f}")
print(f"seed 1: {os.path.relpath(twin_checkpoint, repo_root())}, mean Dice {twin_scores.mean():.4f}")

# %% [markdown]
# The two means differ. Is the second model better, or were these photos lucky for it? Each photo is
# scored by both, so we look at the differences photo by photo, and ask how much their mean would move
# had other photos been drawn. `paired_comparison` answers with the **bootstrap**: 10,000 times it draws
# as many photos as we have from our photos *with replacement* (some twice, some not at all), takes the
# mean difference of that draw, and reports the range holding the middle 95 % of those means. If that
# interval contains 0, these photos do not show either model better.

# %% [markdown]
# **Exercise 5: real, or luck?** Before running the comparison, judge three made-up results, each a mean
# difference B - A of Dice with its 95 % bootstrap interval: (a) +0.004, interval [-0.001, +0.009];
# (b) +0.004, interval [+0.001, +0.007]; (c) -0.010, interval [-0.019, -0.002]. Answer a list of three
# booleans: True where the difference is real.
# Expected: only intervals that leave 0 outside show a real difference, in either direction.

# %%
answer = ...  # [a, b, c], each True or False
made_up = [(-0.001, 0.009), (0.001, 0.007), (-0.019, -0.002)]
check_exercise_5(answer, made_up)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution to exercise 5.
answer = [not (low <= 0 <= high) for low, high in made_up]
assert check_exercise_5(answer, made_up)

# %%
comparison = paired_comparison(scores, twin_scores)  # B - A: seed 1 minus seed 0, photo by photo
low, high = comparison["interval"]
print(f"{len(scores)} validation photos of {len(by_car)} cars, scored by both")
print(f"mean Dice: seed 0 {scores.mean():.4f}, seed 1 {twin_scores.mean():.4f}")
print(f"seed 1 - seed 0: {comparison['mean_difference']:+.4f}, 95 % bootstrap interval [{low:+.4f}, {high:+.4f}]")
print(
    f"seed 1 better on {comparison['b_wins']} photos, seed 0 on {comparison['a_wins']}, equal on {comparison['ties']}"
)
print(f"interval contains 0: {comparison['interval_contains_zero']}; half its width: {(high - low) / 2:.4f}")
seed_gap = abs(twin_scores.mean() - scores.mean()).item()
tta_gain = gain.mean().item()
print(
    f"TTA on the seed-0 model: {tta_gain:+.4f} (2 standard errors {2 * stderr:.4f});"
    f" retraining with another seed moved the mean by {seed_gap:.4f}"
)
print(f"95 % half-widths: seed 1 - seed 0 {(high - low) / 2:.4f}, TTA - no TTA {1.96 * stderr:.4f}")
shown_here = abs(tta_gain) > 2 * stderr
print(
    f"-> for this model, TTA's change is {'larger than' if shown_here else 'within'} its noise over these photos;"
    f" it is {'smaller' if abs(tta_gain) < seed_gap else 'larger'} than the difference one retraining makes"
)

# %% [markdown]
# How to read it: the interval's half-width is the resolution of *this* comparison, the smallest mean
# difference it can tell from luck. It depends on the number of photos and on how much the per-photo
# differences vary: two independently trained models disagree on many pixels, so their per-photo
# differences spread widely and the interval is wide; TTA on one model changes few pixels, its per-photo
# gains spread less, and its interval is narrower (the cell prints both half-widths), which is why a
# smaller gain can be resolved there.
#
# The two comparisons answer different questions, and the last printed lines put them side by side.
# Section 5 asked: is TTA better for *this* checkpoint? Here we ask: how much would a *retrained* model
# differ? Two runs of the same recipe are equally good by construction, so the difference between them is
# what the noise of training looks like, whether or not its interval happens to contain 0 here. A change to
# the recipe (a loss, an augmentation) is judged against that noise: if it moves the mean Dice by less than
# the seeds do, it has not been shown to help, because one retraining moves it as much. TTA leaves the
# weights alone, so for this checkpoint its paired test is the one that counts; whether it helps every
# model of the recipe would take TTA measured on several seeds. And the bootstrap treats the photos as independent, while they are 16 views of each of only a
# couple of cars: a model that suits one car's paint gains on 16 photos at once, so the honest interval
# is wider still. More held-out cars, and several seeds per recipe, make small differences meaningful.
#
# The figure shows where the two models disagree, on the photos whose scores differ most: blue where only
# seed 0 is right, green where only seed 1 is (with one class, two wrong answers are the same answer, so the
# legend lists only the colours that occur). Look where the coloured pixels lie: a thin line along the
# outline means the two seeds draw the same car and differ only where neither is sure; a patch (under the
# car, where the shadow meets the floor, or a wheel) is a part one of them gets wrong.

# %%
ranked = torch.argsort((twin_scores - scores).abs(), descending=True)[:4].tolist()
with torch.no_grad():
    twin_preds = predict_labels(predict_logits(twin, val_images.to(device), amp_dtype=precision.dtype).cpu(), THRESHOLD)
fig = show_disagreement(
    [val_images[i] for i in ranked],
    [(val_preds[i], twin_preds[i]) for i in ranked],
    [val_masks[i] for i in ranked],
    [f"{val_set.ids[i]}\nDice A {scores[i]:.3f}, B {twin_scores[i]:.3f}" for i in ranked],
)
fig.suptitle("A = seed 0, B = seed 1: the photos whose Dice differ most, and where the predictions differ", fontsize=10)
display(fig)
plt.close(fig)

# %% [markdown]
# **Exercise 6: the interval without resampling.** The bootstrap needs no formula, but for a mean there is
# one: mean ± 1.96 s / sqrt(N), with s the sample standard deviation of the N differences (dividing by
# N − 1; the central limit theorem). Compute it for `twin_scores - scores` and answer `(low, high)`.
# Expected: near the bootstrap interval printed above, but not equal to it: the check computes the
# formula with plain Python and wants it to 6 decimals, so copying the bootstrap's ends is refused (they
# come from resampling, and move a little with the random draws).

# %%
answer = ...  # (low, high)
check_exercise_6(answer, scores, twin_scores, (low, high))

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution to exercise 6.
difference_6 = twin_scores - scores
half_6 = 1.96 * difference_6.std() / len(difference_6) ** 0.5
answer = ((difference_6.mean() - half_6).item(), (difference_6.mean() + half_6).item())
print(f"normal approximation [{answer[0]:+.4f}, {answer[1]:+.4f}]; bootstrap [{low:+.4f}, {high:+.4f}]")
assert check_exercise_6(answer, scores, twin_scores, (low, high))

# %% [markdown]
# ## 7. Photos without masks, and augmented training photos
#
# The test photos come without masks (Kaggle kept them to score submissions), so all we can do is
# look: the predicted car is painted red over the photo, next to the probability.

# %%
if (data_dir / "test").is_dir():
    test_set = CarvanaDataset(data_dir, "test", size=image_size)
    picks = torch.linspace(0, len(test_set) - 1, min(NUM_SHOW, len(test_set))).round().long().tolist()
    images, probs, _ = predict_items(model, test_set, picks, amp_dtype=precision.dtype)
    display(
        show_gallery(
            images,
            probs,
            labels=RowLabels(names=[test_set.ids[i] for i in picks]),
            threshold=THRESHOLD,
            title="Test photos (no masks)",
        )
    )
else:
    print(f"{data_dir / 'test'}: no test photos here")

# %% [markdown]
# The original project also looked at training photos through its own augmentation: random flips and
# turns of up to 35 degrees (`augment="original"`). The turn brings black corners into the picture,
# and the checkpoint's training setting (printed in section 1) says whether it ever saw such corners.
# The cell below measures how much of those corners it calls car.

# %%
torch.manual_seed(0)  # the augmentation is random: the same photos on every run
train_set = CarvanaDataset(data_dir, "train", size=image_size, augment="original", val_fraction=val_fraction)
picks = torch.linspace(0, len(train_set) - 1, min(NUM_SHOW, len(train_set))).round().long().tolist()
images, probs, masks = predict_items(model, train_set, picks, amp_dtype=precision.dtype)
photo_dice = dice_per_image(probs > THRESHOLD, masks)
corners = images.amax(1) == 0  # (K, H, W): pure black, brought in by the turn (a photo is never pure black)
called_car = ((probs[:, 0] > THRESHOLD) & corners).sum() / corners.sum().clamp(min=1)
print(f"trained with augment {config.augment!r}; shown with 'original' (flips and turns up to 35 degrees)")
print(f"black corner pixels called car: {called_car:.0%} of {corners.sum().item()}")
print("Dice of each photo:", [round(d, 3) for d in photo_dice.tolist()])
show_gallery(
    images,
    probs,
    masks,
    labels=RowLabels(names=[train_set.ids[i] for i in picks], scores=photo_dice.tolist()),
    threshold=THRESHOLD,
    title="Training photos through the original project's augmentation",
)

# %% [markdown]
# A network only knows the pictures it was shown. A black corner is darker than anything in a studio
# photo, and a model that never saw one has no reason to call it background: if the share above is
# large, the corners cost those photos much of their Dice. Training with `augment="original"` shows
# the network such corners (and tilted cars) and fixes it; try it (see "More to try" at the end).

# %% [markdown]
# ## 8. Your own photo
#
# Try the model on a picture of your own: press **upload a photo** and pick an image file (JPEG, PNG,
# GIF, BMP, TIFF or WebP), or type the path of one (absolute, or relative to this notebook's folder)
# and press **load**. The tool squeezes the picture to the network's size (printed in section 1),
# predicts (in the precision of section 2), and stretches the prediction back to the picture's own size,
# as Kaggle scored it. The line under the tool gives both sizes as HxW. It shows
# the photo, the predicted car painted red, and the probability of car, `P(car)`, with its colour bar.
# The **threshold** slider only moves the cut: the probability is kept, so the network does not run
# again. The TTA box averages with the mirrored photo (section 5).
#
# Expect it to fail outside the studio. Every training photo shows one car, centred, on the same grey
# turntable under the same lights, so the cheapest rule that fits them all is roughly "whatever is not
# grey studio is car". The network never had to tell a car from a road, a wall, a tree or another car:
# on a street scene it calls buildings and road car, or misses a small car far away. A phone photo in
# portrait is also squeezed into the network's landscape shape. A network only knows the pictures it
# was shown.

# %%
# NBVAL_IGNORE_OUTPUT
tool = PhotoPredictor(model, image_size, threshold=THRESHOLD, amp_dtype=precision.dtype)  # the same precision
# A validation car, by its path relative to this notebook's folder: type the path of your own photo in the box, or upload one.
sample_photo = Path(os.path.relpath(val_set.image_path(0)))
tool.load_path(sample_photo)
display(tool.widget)

# %% [markdown]
# The tool is a plain Python object: `tool.state()` reports what is on screen, and `tool.figure()` draws
# the same view as an ordinary figure, which stays in the notebook for readers without a running kernel.

# %%
state = tool.state()
with Image.open(sample_photo) as opened:
    width, height = opened.size  # read from the file's header, independently of the tool
assert state["name"] == sample_photo.name and state["size"] == (height, width)  # (H, W): the photo's own size
assert state["num_classes"] == 1 and len(state["titles"]) == 3 and state["threshold"] == THRESHOLD
assert 0 < state["car_share"] < 1, state
tool.threshold.value = 0.9  # the slider, moved from code: the kept probability is cut again, without a forward pass
assert tool.state()["car_share"] <= state["car_share"]
tool.threshold.value = THRESHOLD
print(state["label"])
fig = tool.figure()
fig.set_size_inches(fig.get_figwidth() * 0.8, fig.get_figheight() * 0.8)  # a smaller copy keeps the file small
display(fig)
plt.close(fig)

# %% [markdown]
# ### Reading quick-mode numbers
#
# In quick mode the checkpoint is `train_carvana`'s quick run: a small network, 64x96 pictures, five
# epochs on a few drawn sample cars (320x480 photos, not Kaggle's), and only two held-out cars (section 3 prints them), so every average above
# rests on very few cars, and the worst photos are often all views of one car. On the real data the original
# project reported **0.9911 Dice and 99.55 % pixel accuracy** at 320x480 (cited from its README, its
# own split): that is the scale on which a full run is judged, and only there does a gain of a
# thousandth of Dice (TTA, a tuned threshold) start to matter, as it did on Kaggle's leaderboard.
#
# ## Summary
#
# - A checkpoint is a plain dict; the original project's `.h5` files are bare weights that load into
#   the same `UNet`.
# - Per-image Dice spreads: look at the worst photos and their error maps, and note which car they are.
# - Split the wrong pixels into the boundary band and the interior: outline errors are the picture size's
#   fault, interior ones the network's.
# - The threshold trades precision for recall; tune it on other cars than you report on.
# - TTA costs a second pass; judge its gain against the noise of the photo-by-photo differences.
# - Two seeds of one recipe show what noise looks like; a paired bootstrap over the photos says how large
#   a difference must be to mean something, and photos of one car make it larger still.
# - A network fails on what it never saw (black corners, street scenes): augmentation is how you show it.
#
# ## Exercises, and more to try
#
# The six exercises above check themselves (the Dice by hand, outline or interior, the threshold chosen
# on one car, TTA by hand, real or luck, the interval by formula). More to try, without checks:
#
# - Set `THRESHOLD = 0.3` and then `0.7` in the parameters cell: which photos change most, and why?
# - In `train_carvana`, train with `augment="original"`, then point `CHECKPOINT` here at the new
#   `best.pt`: how much of the black corners does it call car now?
# - With the original project's model (see `models/README.md`), set `CHECKPOINT` to its `.h5` file
#   and `ORIGINAL_SIZE = (320, 480)`: how does it do on these photos?
#
# ## Further reading
#
# - O. Ronneberger, P. Fischer, T. Brox, [*U-Net: Convolutional Networks for Biomedical Image
#   Segmentation*](https://arxiv.org/abs/1505.04597) (2015): the network tested here.
# - The [Kaggle Carvana competition](https://www.kaggle.com/competitions/carvana-image-masking-challenge):
#   the metric (mean Dice) and the winners' write-ups (full-resolution training, TTA).
# - PyTorch: [`torch.inference_mode`](https://pytorch.org/docs/stable/generated/torch.inference_mode.html)
#   and [automatic mixed precision](https://pytorch.org/docs/stable/amp.html), which `evaluate` and `predict`
#   use where the processor computes bf16 natively (a CUDA GPU, in fp16 where it has no bf16, or a CPU with
#   bf16 instructions).
#
# **Next:** `inspect_layers` opens the same checkpoint and looks inside it: what each block sees, why
# the skip connections matter, and where the network looks when it says "car".
