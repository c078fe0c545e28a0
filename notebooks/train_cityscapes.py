# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Street scenes: training a U-Net on Cityscapes
#
# Carvana asks one question per pixel (car or not). Cityscapes asks which of **19 classes** a pixel
# belongs to: road, sidewalk, building, ..., person, car, bicycle. The U-Net is the same; only its last
# layer changes, from 1 output channel to 19, and the loss becomes a cross-entropy over the classes.
#
# This notebook:
# 1. shows the 19 classes with their official colours and how rare some of them are,
# 2. explains why some pixels carry the label 255 and are *ignored*,
# 3. trains with live curves and saves checkpoints under `models/notebooks/cityscapes/run-NNN`,
# 4. scores the model: per-class IoU, mIoU, pixel accuracy and the confusion matrix,
# 5. draws predictions next to the ground truth in the Cityscapes colours.
#
# It is the last of four notebooks (after `train_carvana`, `test_carvana` and `inspect_layers`) and
# runs on its own. Without a GPU it runs the **quick** profile: a small network on 64x128 pictures of
# the sample data, a few minutes on a CPU. With a CUDA GPU it runs the **full** one: the original
# project's recipe (`cityscapes-original`: 160x320, Adam at 1e-4, cross-entropy) on `data/cityscapes`
# (the real data if you put it there, see `data/README.md`). `UNET_QUICK=0` or `1` forces either.
#
# **Precision.** Training runs its convolutions in bf16, a 16-bit number format, where the processor
# computes it directly, and in 32-bit fp32 elsewhere (`Precision.choose`, explained in `train_carvana`;
# the training says which). The committed outputs ran
# in bf16 on a CPU with `avx512_bf16`; the same quick run in fp32 on the same machine reached a best
# validation mIoU of 0.192 instead of 0.188 (cited, measured with `ONEDNN_MAX_CPU_ISA=AVX2`). `make test`
# accepts the mIoU within 0.03 of the committed one.

# %% tags=["parameters"]
from unet_lib import recipe
from unet_lib.cli.profiles import notebook_profile
from unet_lib.cli.workspace import repo_root

QUICK, WHY = notebook_profile()  # UNET_QUICK=1 or 0 decides; unset, quick without a GPU, full with one
# Recipes (unet_lib/config.py): "cityscapes-original" (the original project's: 160x320, Adam at 1e-4, constant lr),
# "cityscapes-recommended" (256x512, AdamW with a one-cycle schedule) and "cityscapes-quick" (quick mode: a small
# network on 64x128 pictures; the one-cycle schedule learns in a few short epochs, where a constant 1e-4 would not).
RECIPE = "cityscapes-quick" if QUICK else "cityscapes-original"
# Change the recipe here, e.g. recipe(RECIPE, block="residual") or recipe(RECIPE, num_epochs=60) (exercises).
config = recipe(RECIPE)  # data_dir: data/cityscapes, or sample data (data/quick/cityscapes in quick mode)
THREADS = 1 if QUICK else None  # CPU threads; one thread gives a tiny network the same run everywhere
MIOU_FLOOR = 0.10 if QUICK else None  # quick mode checks the validation mIoU against this
# On a CPU, keeping freed memory for reuse makes training steps much faster (no fresh pages to zero-fill),
# but this kernel then keeps its peak memory until it is restarted. The command line always does it.
KEEP_FREED_MEMORY = not QUICK
OUT_BASE = repo_root() / "models" / "notebooks" / "cityscapes"  # each run gets a new run-NNN folder here

# %%
import dataclasses
import math
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display

from unet_lib import (
    IGNORE_INDEX,
    CityscapesDataset,
    ConfusionMatrix,
    Scores,
    build_datasets,
    build_loaders,
    evaluate,
    make_loss,
    model_from_checkpoint,
    seed_everything,
    train,
)
from unet_lib.checkpoint import new_run_dir
from unet_lib.cli.cityscapes import OfficialScores, class_frequencies
from unet_lib.cli.full_res import with_full_masks
from unet_lib.cli.original import load_original
from unet_lib.cli.profiles import describe_profile, keep_freed_memory, time_training_step
from unet_lib.cli.workspace import REAL_SIZES, cityscapes_dir, data_sizes, shown
from unet_lib.data.cityscapes import CLASS_NAMES, NUM_CLASSES, TRAIN_CLASSES
from unet_lib.evaluation import predict_labels, predict_logits
from unet_lib.runtime import Precision, pick_device
from unet_lib.viz import (
    LiveHistory,
    plot_class_frequencies,
    plot_class_iou,
    plot_confusion_matrix,
    show_cityscapes_predictions,
    show_class_colors,
    show_label_map,
)

plt.rcParams["figure.dpi"] = 72  # modest pictures keep the notebook light
device = pick_device(config.device)
seed_everything(config.seed, threads=THREADS)
runs = [data_sizes("cityscapes", QUICK), ("the real Cityscapes fine annotations (cited)", *REAL_SIZES["cityscapes"])]
print(describe_profile(RECIPE, config, WHY, time_training_step(config, device), runs, QUICK))
# Sample data is written now if absent; training runs on THREADS CPU threads.
config = dataclasses.replace(config, data_dir=str(cityscapes_dir()), threads=THREADS)
print(f"{shown(config.data_dir)}: {config.image_size[0]}x{config.image_size[1]} pictures, widths {config.features}")
print(f"{config.num_epochs} epochs, batch {config.batch_size}, {config.optimizer} lr {config.lr}, on {device}")

# %% [markdown]
# ## The 19 classes
#
# The label files hold 34 *labelIds*; the benchmark scores 19 of them, renumbered 0..18 as
# *trainIds*. Every other id (unlabeled, ego vehicle, parking, rail track, ...) becomes 255. The
# official colours are the ones every Cityscapes paper uses, so a learner can read any figure.

# %%
# NBVAL_CHECK_OUTPUT
print(f"{'trainId':>7}  {'class':14s} {'labelId':>7}  {'category':12s} colour (RGB)")
for c in TRAIN_CLASSES:
    print(f"{c.train_id:>7}  {c.name:14s} {c.id:>7}  {c.category:12s} {c.color}")

# %%
show_class_colors(CLASS_NAMES)

# %% [markdown]
# ## The data
#
# `build_datasets` reads the Cityscapes layout with `torchvision.datasets.Cityscapes`, maps labelIds
# to trainIds and resizes each picture and its labels together (labels with nearest neighbour, so no
# class is invented at the edges). Black pixels in the label map are the ignored ones.

# %%
train_set, val_set = build_datasets(config)
train_loader, val_loader = build_loaders(config, train_set, val_set)
print(f"{len(train_set)} training and {len(val_set)} validation pictures")
image, labels = val_set[0]  # (3, H, W) in [0, 1], (H, W) trainIds with 255 = ignored
show_label_map(image, labels, title=f"Validation picture {val_set.ids[0]}")

# %% [markdown]
# ### How often each class appears
#
# In real street scenes road, building and vegetation cover most pixels; poles, traffic lights, riders
# and bicycles only a tiny share. The figure counts the data this notebook reads: on the sample data
# (the committed outputs) the shares are the generator's, not a real city's, but just as unequal. The
# scale is logarithmic: each step up is ten times more pixels. A network that ignored the rare
# classes would still get most pixels right, which is why pixel accuracy flatters and the *mean IoU
# over classes* is the score that counts.

# %%
frequencies = class_frequencies(train_set)  # (19,) share of labelled pixels, at the files' resolution
title = f"Class frequencies in {shown(config.data_dir)}, training split"
display(plot_class_frequencies(frequencies, CLASS_NAMES, title=title))
order = np.argsort(frequencies)[::-1]
print("most pixels:", ", ".join(f"{CLASS_NAMES[i]} {frequencies[i]:.1%}" for i in order[:3]))
print("fewest:", ", ".join(f"{CLASS_NAMES[i]} {frequencies[i]:.2%}" for i in order[::-1][:3] if frequencies[i] > 0))
print("absent from the training set:", [n for n, f in zip(CLASS_NAMES, frequencies, strict=True) if f == 0] or "none")

# %% [markdown]
# ## Ignoring pixels: `ignore_index=255`
#
# Some pixels have no class we want to learn: unlabelled regions, the car's own bonnet, classes the
# benchmark leaves out. They carry 255, and so does the border that augmentation pads in when it
# shifts or turns a picture (the label map is padded with 255, the photo with black).
# `nn.CrossEntropyLoss(ignore_index=255)` skips these pixels: they add nothing to the loss, nothing
# to the gradient, and the mean is taken over the remaining pixels. The metrics skip them the same way.
# Without it, the network would have to predict a 20th "don't know" class, or be punished for any
# answer on pixels nobody labelled.
#
# The check below builds random logits and labels with some pixels set to 255: the loss with
# `ignore_index` equals the plain cross-entropy over the labelled pixels only.

# %%
loss_fn = make_loss(config.loss, NUM_CLASSES)  # cross-entropy with ignore_index=IGNORE_INDEX
logits = torch.randn(2, NUM_CLASSES, 4, 6)  # (B, C, H, W)
target = torch.randint(0, NUM_CLASSES, (2, 4, 6))  # (B, H, W)
target[:, 0] = IGNORE_INDEX  # the top row is "not labelled"
labelled = target != IGNORE_INDEX
by_hand = F.cross_entropy(logits.permute(0, 2, 3, 1)[labelled], target[labelled])  # (pixels, C) vs (pixels,)
print(f"with ignore_index: {loss_fn(logits, target):.6f}, over labelled pixels only: {by_hand:.6f}")
assert torch.allclose(loss_fn(logits, target), by_hand)

some = range(min(len(train_set), 100))  # the first 100 label maps are plenty for a share
ignored = np.mean([(train_set.read_labels(i) == IGNORE_INDEX).float().mean().item() for i in some])
print(f"ignored pixels in the training pictures: {ignored:.1%}")

# %% [markdown]
# **Forget `ignore_index` and it fails loudly.** A plain cross-entropy is handed a label 255 where it
# expects a class between 0 and 18, and refuses:

# %%
try:
    F.cross_entropy(logits, target)  # no ignore_index: 255 is not a class
except (IndexError, RuntimeError) as err:
    print(f"{type(err).__name__}: {str(err).splitlines()[0]}")

# %% [markdown]
# **What a loss of 3 means.** A network that knows nothing gives every class the same probability,
# 1/19, and its cross-entropy is $-\ln(1/19) = \ln 19 \approx 2.94$ on every pixel. That is the number
# to compare the first epochs' losses with. The random logits above are not uniform: confidently wrong
# answers cost more than a shrug, so their loss is above $\ln 19$.

# %%
uniform = F.cross_entropy(torch.zeros_like(logits), target, ignore_index=IGNORE_INDEX)
print(f"ln 19 = {math.log(NUM_CLASSES):.4f}; cross-entropy of a uniform guess: {uniform:.4f}")
print(f"random logits: {loss_fn(logits, target):.4f}")
assert abs(uniform.item() - math.log(NUM_CLASSES)) < 1e-6

# %% [markdown]
# ## Training
#
# `train` (the same entry as Carvana's, and the command line's) builds the model and the loss from
# `config` and runs `fit`: `train_one_epoch` and `evaluate` once per epoch, keeping `best.pt` (best
# validation mIoU) and `last.pt`, printing one line per epoch (the training loss, the validation loss,
# mIoU and pixel accuracy, the seconds), and calling us back after each epoch so the curves below
# redraw as it goes. The run folder is new every time: nothing already there is overwritten.

# %%
if KEEP_FREED_MEMORY and device.type == "cpu":
    keep_freed_memory()
out_dir = Path(os.path.relpath(new_run_dir(OUT_BASE)))  # as seen from this notebook's folder; train prints it
history = train(
    config,
    out_dir,
    datasets=(train_set, val_set),
    on_epoch_end=LiveHistory("Cityscapes training", config.num_epochs),
)
best = max(history, key=lambda row: row["val_miou"])
print(
    f"best epoch {best['epoch']}: validation mIoU {best['val_miou']:.3f}, pixel accuracy {best['val_pixel_accuracy']:.3f}"
)

# %% [markdown]
# **Reading the curves**, computed from the history: the first loss against the $\ln 19$ of a uniform
# guess, and whether the validation loss kept falling with the training loss. When the training loss
# falls and the validation loss does not, the network is learning its few training pictures by heart
# (*overfitting*): more data, or more augmentation, is the cure.

# %%
half = len(history) // 2
train_drop = history[half]["train_loss"] - history[-1]["train_loss"]
val_drop = history[half]["val_loss"] - history[-1]["val_loss"]
display(
    Markdown(
        f"- Epoch 1: training loss {history[0]['train_loss']:.2f}, against ln 19 = {math.log(NUM_CLASSES):.2f}.\n"
        f"- From epoch {history[half]['epoch']} to {history[-1]['epoch']}: the training loss fell by {train_drop:.3f},"
        f" the validation loss by {val_drop:.3f}"
        + (
            f": training learns its {len(train_set)} pictures by heart faster than it generalises."
            if val_drop < 0.25 * train_drop
            else "."
        )
        + f"\n- The best validation mIoU, {best['val_miou']:.3f}, came at epoch {best['epoch']} of {len(history)}"
        + (
            ": the later epochs lowered the training loss without improving it."
            if best["epoch"] < len(history) - 2
            else "."
        )
    )
)

# %% [markdown]
# ## Scores of the best checkpoint
#
# We load `best.pt` back from disk, as any later user would, and `evaluate` it as training did: it
# counts every labelled validation pixel in a **confusion matrix** (`unet_lib.metrics.ConfusionMatrix`):
# row = true class, column = predicted class. Everything follows from it:
#
# - **IoU** of a class = overlap / union of its predicted and true pixels;
# - **mIoU** = mean IoU over the classes that appear (in the prediction or the ground truth);
# - **pixel accuracy** = share of labelled pixels with the right class.
#
# For scale, a "model" that answers the training set's most common class everywhere is scored too.

# %%
model, state = model_from_checkpoint(out_dir / "best.pt", num_classes=NUM_CLASSES)
precision = Precision.choose(device, config.amp, config.channels_last)  # as training ran: bf16 where native
model = precision.prepare(model.to(device))
scores = evaluate(model, val_loader, [Scores(NUM_CLASSES)], loss_fn, precision.dtype)
print(precision)
baseline, most_common = ConfusionMatrix(NUM_CLASSES), int(frequencies.argmax())
for _, masks in val_loader:
    baseline.update(torch.full_like(masks, most_common), masks)  # the same class on every pixel
baseline_scores = baseline.compute()
print(f"mIoU {scores['miou']:.3f}, pixel accuracy {scores['pixel_accuracy']:.3f}")
print(
    f"'{CLASS_NAMES[most_common]}' everywhere: mIoU {baseline_scores['miou']:.3f}, pixel accuracy {baseline_scores['pixel_accuracy']:.3f}"
)
assert abs(scores["miou"] - state["metrics"]["val_miou"]) < 1e-6  # the reloaded model scores as during training
if MIOU_FLOOR is not None:
    assert scores["miou"] > MIOU_FLOOR, (
        f"validation mIoU {scores['miou']:.3f} is below the quick-mode floor {MIOU_FLOOR}"
    )
    assert scores["miou"] > 3 * baseline_scores["miou"]

# %%
display(plot_class_iou(scores["iou"], CLASS_NAMES, title=f"IoU per class on the validation set ({out_dir.name})"))
# %% [markdown]
# ### At the labels' own resolution
#
# The numbers above are taken at the training size. The official Cityscapes evaluation scores at the
# labels' full resolution: `evaluate` with the metric `OfficialScores` (from `unet_lib.cli.cityscapes`)
# upsamples the logits to each label file's size before the argmax (`with_full_masks` adds those labels
# to the batches), counts the pixels in the same `ConfusionMatrix`, and also reports the mIoU over the 7
# categories (flat, construction, object, nature, sky, human, vehicle), an easier score.

# %%
official = evaluate(model, with_full_masks(val_set, config.batch_size), [OfficialScores()])
print(
    f"full resolution: mIoU {official['miou']:.3f}, category mIoU {official['category_miou']:.3f}, pixel accuracy {official['pixel_accuracy']:.3f}"
)

# %% [markdown]
# Read the confusion matrix row by row: each row is one true class, divided by its pixel count, so the
# diagonal is the share found (recall) and the rest of the row shows what it was mistaken for. The
# cell below names, for each class the network rarely gets right, what it takes that class for.

# %%
display(plot_confusion_matrix(official["mat"], CLASS_NAMES, title="Confusion matrix at full resolution"))
mat = torch.as_tensor(official["mat"]).double()
present = mat.sum(1) > 0  # (19,) classes in the validation labels
zero = [CLASS_NAMES[c] for c in range(NUM_CLASSES) if present[c] and not official["iou"][CLASS_NAMES[c]] > 0]
print(f"{int(present.sum())} classes appear in the validation labels; {len(zero)} have IoU 0: {', '.join(zero)}")
rows = mat / mat.sum(1, keepdim=True).clamp(min=1)  # (19, 19): share of each true class's pixels
for c in torch.argsort(mat.sum(1), descending=True).tolist():
    if mat[c].sum() == 0 or rows[c, c] >= 0.5:
        continue  # absent, or found more often than not
    other = int(torch.argmax(torch.cat([rows[c, :c], torch.tensor([-1.0]), rows[c, c + 1 :]])))
    print(
        f"{CLASS_NAMES[c]:14s} found {rows[c, c]:4.0%}; most often taken for {CLASS_NAMES[other]} ({rows[c, other]:.0%})"
    )

# %% [markdown]
# Small and thin classes are taken for the big classes around them: at 64x128 a pole or a sign is a
# pixel or two wide, and a network that has seen a class on a few pictures guesses its neighbour
# instead. Similar-looking classes swap too (car, truck, bus are all boxes on wheels).

# %% [markdown]
# ## Predictions in colour
#
# Each row: the picture, the predicted classes, the ground truth, in the official colours. Black in
# the ground truth is ignored; the prediction always names a class, even there. (Two official colours
# are dark: truck is (0, 0, 70), nearly black; the legend names them.)

# %%
images, masks = next(iter(val_loader))
preds = predict_labels(predict_logits(model, images.to(device))).cpu()  # (B, H, W) trainIds
show_cityscapes_predictions(images, preds, masks, class_names=CLASS_NAMES, max_samples=2)

# %% [markdown]
# ## Full mode: the original project's model
#
# With the original project's Cityscapes model in `models/sem_segmentation/` (see `models/README.md`),
# this cell scores it with the same official evaluation. It predicts the 34 labelIds directly, which
# the evaluation maps to the 19 trainIds.

# %% tags=["nbval-skip", "skip-execution"]
originals = sorted((repo_root() / "models" / "sem_segmentation").glob("*cityscapes*/*.h5"))
if originals:
    original_model = load_original(originals[-1]).to(device)
    original_val = CityscapesDataset(config.data_dir, "val", size=(160, 320))  # the original's picture size
    original_scores = evaluate(original_model, with_full_masks(original_val, config.batch_size), [OfficialScores()])
    print(
        f"{originals[-1].name}: mIoU {original_scores['miou']:.3f}, pixel accuracy {original_scores['pixel_accuracy']:.3f}"
    )
else:
    print("no original model under models/sem_segmentation/: see models/README.md to download it")

# %% [markdown]
# ### Reading quick-mode numbers
#
# Quick mode trains a small network for a few minutes on 8 sample pictures at 64x128; on the real data
# the full profile trains the original's 31 M-parameter network at 160x320 on 2,975 pictures (cited).
# The original project reported **86.7 % pixel accuracy** on Cityscapes (cited from its README; its
# mIoU code was lost). The quick run's many classes at IoU 0 are what a few pictures at 64x128 give:
# the big classes (road, building, sky, vegetation) are learnt first, which is why pixel accuracy
# climbs long before the mIoU does. Judge a full run by its mIoU and per-class IoU.
#
# ## Summary
#
# - Multi-class segmentation is the same U-Net with `num_classes` output channels and a cross-entropy
#   over them; `argmax` over channels gives the class map.
# - One value, 255, marks pixels without a class: unlabelled regions and the padding augmentation adds.
#   The loss (`ignore_index`) and the confusion matrix skip them; forget it and the loss fails.
# - A uniform guess costs ln 19 ≈ 2.94 per pixel: the first epochs' losses are read against it.
# - Classes are very unbalanced: judge a model by mIoU and per-class IoU, not by pixel accuracy, and
#   read the confusion matrix to see what each class is taken for.
#
# ## Exercises
#
# 1. Train longer: `recipe(RECIPE, num_epochs=60)` in the parameters cell. Which classes leave IoU 0,
#    and does the validation loss follow the training loss?
# 2. `recipe(RECIPE, augment="none")`: does the gap between training and validation loss grow?
# 3. `recipe(RECIPE, block="residual")` or `upsample="bilinear"`: compare the per-class IoU bars.
# 4. Class-weighted cross-entropy: rare classes count more. Compute weights from `frequencies`
#    (e.g. `w = np.median(frequencies[frequencies > 0]) / frequencies`, the *median frequency* rule),
#    then score `torch.nn.CrossEntropyLoss(weight=torch.tensor(w, dtype=torch.float32), ignore_index=255)`
#    on the random logits above: which pixels now dominate the loss?
# 5. With the original project's Cityscapes model (see `models/README.md`), run the full-mode cell
#    above and compare its per-class IoU with yours.
#
# ## Further reading
#
# - [The Cityscapes dataset](https://www.cityscapes-dataset.com/) and its benchmark scripts,
#   [cityscapesScripts](https://github.com/mcordts/cityscapesScripts) (the label definitions and the
#   official evaluation this notebook's `OfficialScores` follows).
# - PyTorch: [`nn.CrossEntropyLoss`](https://pytorch.org/docs/stable/generated/torch.nn.CrossEntropyLoss.html)
#   (`ignore_index`, `weight`) and [`torchvision.datasets.Cityscapes`](https://pytorch.org/vision/stable/generated/torchvision.datasets.Cityscapes.html).
#
# **Next:** your own data. The end of `train_carvana` shows the `folder` layout for pictures and
# masks of your own, and `python -m unet_lib check-data DIR` checks them before a long run.
