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
# 2. explains why some pixels carry the label 255 and are *ignored*, in the loss and in the scores,
# 3. asks the learning-rate finder which rate to train with,
# 4. trains with live curves and the *training doctor* watching, saving checkpoints under
#    `models/notebooks/cityscapes/run-NNN`,
# 5. scores the model: per-class IoU, mIoU, pixel accuracy and the confusion matrix, which we also
#    count by hand once,
# 6. draws predictions next to the ground truth in the Cityscapes colours.
#
# Six exercises check themselves along the way: write your answer in the cell under an exercise, run it,
# and it tells you "right" or gives a hint. The solution is the collapsed cell after it; open it when you
# are done (or stuck).
#
# It is the last of four notebooks (after `train_carvana`, `test_carvana` and `inspect_layers`) and
# runs on its own. Without a GPU it runs the **quick** profile: a small network on 64x128 pictures of
# the sample data, a few minutes on a CPU. With a CUDA GPU it runs the **full** one: the original
# project's recipe (`cityscapes-original`: 160x320, Adam at 1e-4, cross-entropy) on `data/cityscapes`
# (the real data if you put it there, see `data/README.md`). `UNET_QUICK=0` or `1` forces either.
#
# **Precision and repeatability.** Training runs its convolutions in bf16, a 16-bit number format,
# where the processor computes it directly, and in 32-bit fp32 elsewhere (`Precision.choose`, explained
# in `train_carvana`; the training says which). The committed outputs ran in bf16 on a CPU with
# `avx512_bf16`. A run repeats bit for bit on the same CPU with the same number of threads (quick mode
# fixes one); another CPU rounds differently and ends a little elsewhere. Measured (cited): the same
# quick run in fp32 on the committed machine (`ONEDNN_MAX_CPU_ISA=AVX2`) reached a best validation mIoU
# of 0.192 instead of bf16's 0.188, and a re-run on another machine reached 0.184. `make test` runs this
# notebook again and accepts the mIoU within 0.03 of the committed one.

# %% tags=["parameters"]
from unet_lib import recipe
from unet_lib.cli.profiles import notebook_profile
from unet_lib.cli.workspace import repo_root

QUICK, WHY = notebook_profile()  # UNET_QUICK=1 or 0 decides; unset, quick without a GPU, full with one
# Recipes (unet_lib/config.py): "cityscapes-original" (the original project's: 160x320, Adam at 1e-4, constant lr),
# "cityscapes-recommended" (256x512, AdamW with a one-cycle schedule) and "cityscapes-quick" (quick mode: a small
# network on 64x128 pictures; the one-cycle schedule learns in a few short epochs, where a constant 1e-4 would not).
RECIPE = "cityscapes-quick" if QUICK else "cityscapes-original"
# Change the recipe here, e.g. recipe(RECIPE, block="residual"), recipe(RECIPE, num_epochs=60) or
# recipe(RECIPE, class_weights="median-frequency") (rare classes weigh more in the loss).
config = recipe(RECIPE)  # data_dir: data/cityscapes, or sample data (data/quick/cityscapes in quick mode)
THREADS = 1 if QUICK else None  # CPU threads; the same CPU with the same thread count repeats the same run
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
from exercises.train_cityscapes import (
    check_exercise_1,
    check_exercise_2,
    check_exercise_3,
    check_exercise_4,
    check_exercise_5,
    check_exercise_6,
)
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
from unet_lib.cli.cityscapes import CATEGORY_NAMES, OfficialScores, class_frequencies
from unet_lib.cli.full_res import with_full_masks
from unet_lib.cli.original import load_original
from unet_lib.cli.profiles import describe_profile, keep_freed_memory, time_training_step
from unet_lib.cli.workspace import cityscapes_dir, data_sizes, real_sizes, shown
from unet_lib.data.check import DataReport, loss_weights
from unet_lib.data.cityscapes import CLASS_COLORS, CLASS_NAMES, NUM_CLASSES, TRAIN_CLASSES, label_to_train_lut
from unet_lib.evaluation import predict_labels, predict_logits
from unet_lib.inspect.doctor import Doctor, diagnose
from unet_lib.inspect.lr_find import lr_find
from unet_lib.runtime import Precision, pick_device
from unet_lib.viz import (
    LiveHistory,
    plot_class_frequencies,
    plot_class_iou,
    plot_confusion_matrix,
    plot_lr_find,
    show_cityscapes_predictions,
    show_class_colors,
    show_label_map,
)

plt.rcParams["figure.dpi"] = 100  # 8 pt text is 11 pixels tall: readable at 100 % zoom
device = pick_device(config.device)
seed_everything(config.seed, threads=THREADS)
runs = [data_sizes("cityscapes", QUICK), real_sizes(config)]
print(describe_profile(RECIPE, config, WHY, time_training_step(config, device), runs, QUICK))
# Sample data is written now if absent; training runs on THREADS CPU threads.
config = dataclasses.replace(config, data_dir=str(cityscapes_dir()), threads=THREADS)
print(f"{shown(config.data_dir)}: {config.image_size[0]}x{config.image_size[1]} pictures, widths {config.features}")
print(f"{config.num_epochs} epochs, batch {config.batch_size}, {config.optimizer} lr {config.lr}, on {device}")

# %% [markdown]
# The times above are estimates from one training step timed on random pictures already in memory: the
# training below also reads and decodes the pictures, validates after every epoch and shares the CPU
# with whatever else runs, so its own time line (printed as it starts) is the one to trust, and it may
# be a few times longer. The line for the real
# Cityscapes data keeps *this* profile's network, picture size and number of epochs and only changes the
# number of pictures: in quick mode it is the small network at 64x128, not the full recipe, whose larger
# network at 160x320 takes far longer per step.

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
# The dataset turns labelIds into trainIds with a lookup table: `label_to_train_lut()` is a tensor of
# 256 entries whose entry `i` is the trainId of labelId `i` (255 where `i` is not evaluated), so
# `lut[label_map]` converts a whole label map in one indexing step.

# %%
lut = label_to_train_lut()  # (256,) uint8
print(
    "labelId 7 (road) ->", int(lut[7]), "; labelId 26 (car) ->", int(lut[26]), "; labelId 0 (unlabeled) ->", int(lut[0])
)
example = torch.tensor([[7, 7, 26], [0, 11, 26]])  # a 2x3 label map of labelIds
print(lut[example])

# %% [markdown]
# **Exercise 1: labelIds to trainIds.** Without the lookup table: use the table printed above to convert
# the labelIds in `pixels` (7, 11, 26, 1, 24, 33, 9) to trainIds by hand. A labelId that is not in the
# table is not evaluated. Expected: 7 numbers, among them two 255s (labelId 1 is "ego vehicle", 9 is
# "parking").

# %%
pixels = [7, 11, 26, 1, 24, 33, 9]
answer = ...  # a list of 7 trainIds
check_exercise_1(answer, pixels)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution to exercise 1.
answer = [0, 2, 13, 255, 11, 18, 255]  # road, building, car, ignored, person, bicycle, ignored
print("the lookup table agrees:", lut[torch.tensor(pixels)].tolist())
assert check_exercise_1(answer, pixels)

# %% [markdown]
# ## The data
#
# `build_datasets` builds the project's own `CityscapesDataset` (in `unet_lib/data/cityscapes.py`, a
# `PairDataset` like Carvana's), which reads the Cityscapes folder layout (`leftImg8bit/` photos,
# `gtFine/` labels), maps labelIds to trainIds with the lookup table above and resizes each picture and
# its labels together (labels with nearest neighbour, so no class is invented at the edges). From
# torchvision it takes only the class table (`torchvision.datasets.Cityscapes.classes`: ids, trainIds,
# colours). Black pixels in the label map are the ignored ones.

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
# First on four pixels and three classes, small enough to follow: the loss of one pixel is
# $-\ln$ of the softmax probability of its true class; pixel 3 is labelled 255, so it gets no loss, and
# the mean is over the three others.

# %%
tiny_logits = torch.tensor([[2.0, 0.5, -1.0, 0.0], [0.0, 1.5, 0.5, 3.0], [-1.0, 0.0, 2.0, 0.0]])[None, :, None]
tiny_target = torch.tensor([0, 1, 2, IGNORE_INDEX])[None, None]  # (1, 1, 4): pixel 3 is ignored
print("logits", tuple(tiny_logits.shape), "(B, C, H, W); target", tuple(tiny_target.shape), "(B, H, W)")
probs = tiny_logits.softmax(dim=1)[0, :, 0]  # (3 classes, 4 pixels)
per_pixel = F.cross_entropy(tiny_logits, tiny_target, ignore_index=IGNORE_INDEX, reduction="none")[0, 0]  # (4,)
for p in range(4):
    truth = int(tiny_target[0, 0, p])
    prob = f"p(true class) {probs[truth, p]:.3f}" if truth != IGNORE_INDEX else "ignored        "
    print(f"pixel {p}: label {truth:3d}  {prob}  loss {per_pixel[p]:.4f}")
tiny_loss = F.cross_entropy(tiny_logits, tiny_target, ignore_index=IGNORE_INDEX)
by_hand = -torch.log(probs[tiny_target[0, 0, :3], torch.arange(3)]).mean()  # the three labelled pixels only
print(f"loss with ignore_index: {tiny_loss:.4f}; mean of the three labelled pixels' losses: {by_hand:.4f}")
torch.testing.assert_close(tiny_loss, by_hand)

# %% [markdown]
# **Exercise 2: what ignoring one more pixel does to the loss.** Before you run the cell: suppose
# pixel 1 is labelled 255 too (`[0, 255, 2, 255]`). Is the loss then larger or smaller than the
# one printed above, and what is it? Work it out from the per-pixel losses printed above, then write the
# number. Expected: the mean of pixels 0 and 2's losses alone; smaller, since pixel 1 had the largest loss.

# %%
tiny_target_2 = torch.tensor([0, IGNORE_INDEX, 2, IGNORE_INDEX])[None, None]
answer = ...  # the loss with ignore_index, a number
check_exercise_2(answer, tiny_logits, tiny_target_2)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution to exercise 2.
answer = (per_pixel[0] + per_pixel[2]).item() / 2  # the two labelled pixels' losses, averaged over those two
print(f"{answer:.4f}, down from {tiny_loss:.4f}")
assert check_exercise_2(answer, tiny_logits, tiny_target_2)

# %% [markdown]
# The same check on a whole batch of random logits and labels, with the top row of every picture
# ignored: the loss with `ignore_index` equals the plain cross-entropy over the labelled pixels only.

# %%
loss_fn = make_loss(config.loss, NUM_CLASSES)  # cross-entropy with ignore_index=IGNORE_INDEX
logits = torch.randn(2, NUM_CLASSES, 4, 6)  # (B, C, H, W)
target = torch.randint(0, NUM_CLASSES, (2, 4, 6))  # (B, H, W)
target[:, 0] = IGNORE_INDEX  # the top row is "not labelled"
labelled = target != IGNORE_INDEX
by_hand = F.cross_entropy(logits.permute(0, 2, 3, 1)[labelled], target[labelled])  # (pixels, C) vs (pixels,)
print(f"with ignore_index: {loss_fn(logits, target):.6f}, over labelled pixels only: {by_hand:.6f}")
torch.testing.assert_close(loss_fn(logits, target), by_hand)

some = range(min(len(train_set), 100))  # the first 100 label maps are plenty for a share
ignored = np.mean([(train_set.read_labels(i) == IGNORE_INDEX).float().mean().item() for i in some])
print(f"ignored pixels in the training pictures: {ignored:.1%}")

# %% [markdown]
# The ignored share printed last is large: these are the pixels whose labelId is not one of the 19
# evaluated classes (unlabelled, ego vehicle, parking, rail track, ..., the 255s of the lookup table).
# Ignoring them means the loss is the mean over the *other* pixels only, the network gets no gradient
# from them (whatever it predicts there is neither rewarded nor punished), and every score below, pixel
# accuracy included, is a share of the labelled pixels: a pixel accuracy of 0.8 means 80 % of the
# labelled pixels, not of the whole picture.

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
# to compare the first epochs' losses with. Random logits are not uniform: the cell prints whether
# their loss lies above $\ln 19$ (confidently wrong answers cost more than a shrug).

# %%
uniform = F.cross_entropy(torch.zeros_like(logits), target, ignore_index=IGNORE_INDEX)
print(f"ln 19 = {math.log(NUM_CLASSES):.4f}; cross-entropy of a uniform guess: {uniform:.4f}")
random_loss = loss_fn(logits, target).item()
print(f"random logits: {random_loss:.4f}, {'above' if random_loss > math.log(NUM_CLASSES) else 'below'} ln 19")
assert abs(uniform.item() - math.log(NUM_CLASSES)) < 1e-6

# %% [markdown]
# ## Which learning rate? The learning-rate finder
#
# Before a long run it pays to ask the data which learning rate suits it. `lr_find` (in
# `unet_lib.inspect.lr_find`, the command line's `lr-find`) trains a *copy* of the fresh model for
# 100 steps while the rate grows exponentially from $10^{-6}$ to 10, and records each step's loss
# (and an exponential moving average of it, since one batch's loss is noisy). At tiny rates nothing
# moves; then the loss falls, faster and faster; past some rate the steps overshoot: the loss jumps
# up and swings, and the sweep stops early if the smoothed loss passes 4 times its lowest (the cell
# prints whether it did).
# The rule it suggests by is fastai's: **a tenth of the rate where the smoothed loss was lowest**, a
# rate that still learns fast but is well clear of the cliff.
#
# `train(config, probe=lr_find)` builds the model, the loss and the (non-augmented) data exactly as a
# real run would, hands them to `lr_find` instead of training, and returns what it found; nothing is
# written, and the random state is put back, so the run below draws what it would have drawn without it.

# %%
found = train(config, probe=lr_find)
print(f"{len(found['lrs'])} steps taken; why the sweep ended: {found['stopped']}")
print(f"lowest smoothed loss {min(found['smoothed']):.3f} at lr {found['lowest_loss_lr']:.1e}")
print(f"suggested ({found['rule']}): {found['suggested_lr']:.1e}; the recipe's lr: {found['config_lr']:.1e}")
display(plot_lr_find(found))

# %% [markdown]
# **Reading the sweep.** The grey line is each step's loss, the blue one the smoothed loss; the green
# dashed line is the suggestion, the orange dotted one the recipe's `lr`. The flat stretch on the left
# is where the rate is too small to move the weights in 100 steps; the end on the right is where it is
# too large. While the loss falls, the smoothed line sits *above* the grey one: a moving average mixes
# in the older, higher losses, so it lags behind a falling loss (and behind a jump up, below it). The
# cell below prints how the sweep ended at the largest rates. The recipe's `lr` is not a constant rate but the *peak* of a one-cycle schedule: training
# warms up from a 25th of it, reaches it after 15 % of the steps (`WARMUP_SHARE` in
# `unet_lib/training.py`) and then decays, so it need not equal a rate meant to be used constantly.
# The finder is a guide, not an oracle: 100 steps on pictures without augmentation show how fast the
# loss falls at first, not where a 30-epoch run ends (try its suggestion: "More to try" at the end).
# The cell below compares the two rates.

# %%
lrs, smoothed = np.array(found["lrs"]), np.array(found["smoothed"])
at_recipe = smoothed[np.abs(np.log(lrs / found["config_lr"])).argmin()]  # the smoothed loss nearest the recipe's lr
falling = at_recipe < 0.95 * smoothed[0]  # already 5 % below where the sweep started
print(f"smoothed loss: {smoothed[0]:.3f} at the start, {at_recipe:.3f} at the recipe's lr, {smoothed.min():.3f} lowest")
raw = np.array(found["losses"])
lowest = int(smoothed.argmin())
above = int((smoothed[1 : lowest + 1] > raw[1 : lowest + 1]).sum())
print(f"up to the lowest point the smoothed loss lies above the step's loss at {above} of {lowest} steps")
labelled_shares = frequencies[frequencies > 0]
prior_loss = float(-(labelled_shares * np.log(labelled_shares)).sum())  # cost of predicting the class shares everywhere
end_loss, peak_loss = smoothed[-1], raw[lowest:].max()
print(
    f"after the lowest point: the step's loss peaks at {peak_loss:.2f}; the sweep ends at {end_loss:.2f} (smoothed, lr"
    f" {lrs[-1]:.0e}), against {smoothed[0]:.2f} at the start; the class shares everywhere would cost {prior_loss:.2f}"
)
display(
    Markdown(
        f"- The suggestion, {found['suggested_lr']:.1e}, is {found['suggested_lr'] / found['config_lr']:.1f} times the"
        f" recipe's peak rate {found['config_lr']:.1e}; the loss was lowest at {found['lowest_loss_lr']:.1e}.\n"
        + (
            "- At the recipe's rate the sweep's loss was already falling, well before its lowest point: a safe peak."
            if falling and found["config_lr"] < found["lowest_loss_lr"]
            else "- The recipe's rate lies outside the stretch where the sweep's loss fell: worth trying the suggestion."
        )
        + f"\n- Past the lowest point the loss jumps (to {peak_loss:.2f} at one step) and swings; "
        + (
            f"then it settles at about {end_loss:.2f}, below where the sweep started but well above its lowest:"
            " the huge steps wreck what the network had learnt"
            + (
                ", and it ends close to what an answer that ignores the picture costs, the class shares predicted"
                f" on every pixel ({prior_loss:.2f})."
                if abs(end_loss - prior_loss) < 0.15 * prior_loss
                else "."
            )
            if end_loss < smoothed[0]
            else f"it ends at {end_loss:.2f}, above where it started ({smoothed[0]:.2f}): the steps diverge."
        )
    )
)

# %% [markdown]
# ## Training, with the doctor watching
#
# `train` (the same entry as Carvana's, and the command line's) builds the model and the loss from
# `config` and runs `fit`: `train_one_epoch` and `evaluate` once per epoch, keeping `best.pt` (best
# validation mIoU) and `last.pt`, printing one line per epoch (the training loss, the validation loss,
# mIoU and pixel accuracy, the seconds), and calling us back after each epoch. The run folder is new
# every time: nothing already there is overwritten.
#
# Our callback does two things: `LiveHistory` redraws the curves, and the **training doctor**
# (`unet_lib.inspect.doctor.Doctor`) reads the history after the first epoch and after the last, and
# prints a line starting with `doctor:` for each thing that looks wrong, with what to try: a loss that
# jumps, rises or stays flat in the first steps (the rate), a validation loss many times the training
# loss, predictions that are all one class, overfitting, a run that never moved. When nothing went
# wrong it prints nothing. At the end, `train` itself names the classes never predicted right.

# %%
if KEEP_FREED_MEMORY and device.type == "cpu":
    keep_freed_memory()
out_dir = Path(os.path.relpath(new_run_dir(OUT_BASE)))  # as seen from this notebook's folder; train prints it
live = LiveHistory("Cityscapes training", config.num_epochs)
told = []  # what the doctor printed during training
doctor = Doctor(
    config.num_epochs,
    CLASS_NAMES,
    weighted=bool(config.loss_weights),
    write=lambda line: told.append(line) or print(line),
)


def after_epoch(history):
    """Redraw the curves, then let the doctor read the history (it speaks after the first and last epoch)."""
    live(history)
    doctor(history)


history = train(config, out_dir, datasets=(train_set, val_set), on_epoch_end=after_epoch)
best = max(history, key=lambda row: row["val_miou"])
print(
    f"best epoch {best['epoch']}: validation mIoU {best['val_miou']:.3f}, pixel accuracy {best['val_pixel_accuracy']:.3f}"
)

# %% [markdown]
# **What the doctor says about the whole run.** During training it kept quiet about the classes,
# because `train` names them itself; `diagnose` (the function behind the doctor and behind
# `python -m unet_lib doctor RUN_DIR`) gives every finding on the finished history, those included:

# %%
print(f"during training the doctor printed {len(told)} line(s)" + (": nothing looked wrong then" if not told else ""))
findings = diagnose(history, CLASS_NAMES, weighted=bool(config.loss_weights))
for line in findings:
    print("doctor:", line)
print(f"{len(findings)} finding(s)" if findings else "doctor: nothing to report")

# %% [markdown]
# **"Never predicted right"** means: not one validation pixel of that class was given that class, so
# its IoU is 0; `train`'s line reads the best epoch, the doctor's the last (when the best epoch is not
# the last, the two lists may differ). The network may still *say* the class somewhere, but only on
# other classes' pixels. It happens to the rare and thin classes: the rarest are a fraction of a
# percent of the labelled training pixels (printed under the frequency figure), so getting them right
# lowers the summed loss far less than getting road and building right, and a short run on a few small pictures never gets there. Two cures, besides more
# epochs and more pictures:
#
# - **class weights.** `recipe(RECIPE, class_weights="median-frequency")` (`--class-weights
#   median-frequency` on the command line) has `train` ask check-data for each class's share of the
#   labelled pixels, $f_c$, and multiply class $c$'s term in the cross-entropy by
#   $w_c = \mathrm{median}(f) / f_c$: a class at the median share keeps weight 1, a class ten times
#   rarer counts ten times more per pixel, and the common classes count less. The mistakes on rare
#   classes then cost about as much, in total, as those on common ones. (The doctor then suggests
#   more epochs or pictures instead.)
# - **larger pictures**: at 64x128 a pole is a pixel wide; the full profile trains at 160x320.

# %% [markdown]
# **Exercise 3: median-frequency weights.** Five classes have these pixel counts in a training set:
# `pixels = [600, 300, 80, 20, 0]` (the last never appears). Compute the median-frequency weights by
# hand (numpy is fine): the shares $f_c$ of the total, the median of the shares of the classes that
# appear, and $w_c = \mathrm{median}/f_c$, with weight 0 for a class that never appears. Expected: 5
# weights, the largest for the class with 20 pixels (about 9.5), the last one 0.

# %%
pixels = [600, 300, 80, 20, 0]
answer = ...  # a list of 5 weights
check_exercise_3(answer, pixels)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution to exercise 3.
counts = np.array(pixels, dtype=float)
shares = counts / counts.sum()  # (5,) f_c
median = np.median(shares[shares > 0])  # the median of the classes that appear: (0.3 + 0.08) / 2
answer = np.where(shares > 0, median / np.where(shares > 0, shares, 1), 0.0)
print("weights:", np.round(answer, 3))
assert check_exercise_3(answer, pixels)

# %% [markdown]
# The weights this notebook's training set would get, from its class shares (computed with the same
# `loss_weights` function that `train` uses):

# %%
weights = np.array(loss_weights(DataReport(root=Path(config.data_dir), dataset="cityscapes", class_pixels=frequencies)))
by_weight = np.argsort(weights)
print("weighed least:", ", ".join(f"{CLASS_NAMES[i]} {weights[i]:.2f}" for i in by_weight[:3]))
print("weighed most:", ", ".join(f"{CLASS_NAMES[i]} {weights[i]:.1f}" for i in by_weight[::-1][:3]))

# %% [markdown]
# **Reading the curves**, computed from the history: the first loss against the $\ln 19$ of a uniform
# guess, whether the validation loss kept falling with the training loss, and which score got close to
# its best first. When the training loss falls and the validation loss does not, the network is
# learning its few training pictures by heart (*overfitting*): more data, or more augmentation, is the
# cure.
#
# The validation loss and the mIoU need not move together. The loss is the mean cross-entropy over all
# labelled pixels, so the big classes (road, building, vegetation) make most of it, and it also falls
# when the network grows more *confident* where it is already right. The mIoU gives each class the same
# weight, whatever its size, and only counts which class wins on each pixel. A network that gets surer
# about road while losing the few pixels it had right of a small class lowers the loss and the mIoU at
# once.

# %%
half = len(history) // 2
train_drop = history[half]["train_loss"] - history[-1]["train_loss"]
val_drop = history[half]["val_loss"] - history[-1]["val_loss"]


def first_epoch_near_best(key: str, share: float = 0.9) -> int:
    """The first epoch whose ``key`` reached ``share`` of its best value in the run."""
    top = max(row[key] for row in history)
    return next(row["epoch"] for row in history if row[key] >= share * top)


near = {key: first_epoch_near_best(key) for key in ("val_pixel_accuracy", "val_miou")}
for key, epoch in near.items():
    print(f"{key}: 90 % of its best ({max(row[key] for row in history):.3f}) first reached at epoch {epoch}")
if near["val_pixel_accuracy"] < near["val_miou"]:
    order_text = "pixel accuracy got close to its best before the mIoU did: the big classes were learnt first"
elif near["val_pixel_accuracy"] > near["val_miou"]:
    order_text = "the mIoU got close to its best before pixel accuracy did"
else:
    order_text = (
        "both scores got close to their best in the same epoch: here the big classes and the mean rose together"
    )
display(
    Markdown(
        f"- Epoch 1: training loss {history[0]['train_loss']:.2f}, against ln 19 = {math.log(NUM_CLASSES):.2f}"
        + (
            ": a little worse than a uniform guess. It is the average over the epoch's steps, and those start"
            " from random weights, whose answers are not uniform and cost more than ln 19 (like the random logits"
            " above), while the warm-up starts at a 25th of the peak rate, so the first steps barely move them.\n"
            if history[0]["train_loss"] > math.log(NUM_CLASSES)
            else ": already below a uniform guess, so the network learnt something within its first epoch.\n"
        )
        + f"- From epoch {history[half]['epoch']} to {history[-1]['epoch']}: the training loss fell by {train_drop:.3f},"
        f" the validation loss by {val_drop:.3f}"
        + (
            f": training learns its {len(train_set)} pictures by heart faster than it generalises."
            if val_drop < 0.25 * train_drop
            else "."
        )
        + f"\n- The best validation mIoU, {best['val_miou']:.3f}, came at epoch {best['epoch']} of {len(history)}"
        + (
            (
                f"; after it the validation loss still fell (from {best['val_loss']:.3f} to"
                f" {history[-1]['val_loss']:.3f}) while the mIoU ended at {history[-1]['val_miou']:.3f}: the loss,"
                " made mostly by the big classes and by confidence, kept improving, the mean over classes did not."
                if history[-1]["val_loss"] < best["val_loss"]
                else f"; after it the validation loss rose too (from {best['val_loss']:.3f} to"
                f" {history[-1]['val_loss']:.3f}): the later epochs fitted the training pictures, not the validation ones."
            )
            if best["epoch"] < len(history) - 2
            else "."
        )
        + f"\n- Reaching 90 % of the best: pixel accuracy at epoch {near['val_pixel_accuracy']},"
        f" mIoU at epoch {near['val_miou']}; {order_text}."
    )
)

# %% [markdown]
# ## Scores of the best checkpoint
#
# We load `best.pt` back from disk, as any later user would, and `evaluate` it as training did: it
# counts every labelled validation pixel in a **confusion matrix** (`unet_lib.metrics.ConfusionMatrix`):
# row = true class, column = predicted class. Everything follows from it:
#
# - **IoU** of a class = overlap / union of its predicted and true pixels, TP / (TP + FP + FN);
# - **mIoU** = mean IoU over the classes that appear (in the prediction or the ground truth);
# - **pixel accuracy** = share of labelled pixels with the right class.
#
# For scale, a "model" that answers the training set's most common class everywhere is scored too.

# %%
model, state = model_from_checkpoint(out_dir / "best.pt", num_classes=NUM_CLASSES)
precision = Precision.choose(device, config.amp, config.channels_last)  # as training ran: bf16 where native
model = precision.prepare(model.to(device))
most_common = int(frequencies.argmax())
val_masks = torch.cat([masks for _, masks in val_loader])  # (N, H, W) every validation label map
val_preds = torch.cat(  # (N, H, W) the model's trainIds for every validation picture
    [
        predict_labels(predict_logits(model, images.to(device), amp_dtype=precision.dtype)).cpu()
        for images, _ in val_loader
    ]
)
print(precision)
print(f"the training set's most common class: {CLASS_NAMES[most_common]}; {len(val_masks)} validation label maps")

# %% [markdown]
# **Exercise 4: one class everywhere.** Before the scores cell below prints it: what pixel accuracy and mIoU
# does a "model" get that answers `most_common` on every pixel of the validation pictures? Count in
# `val_masks` (255 is ignored) and think about which classes are "present". Expected: a pair
# `(pixel_accuracy, miou)`; the pixel accuracy is the class's share of the labelled validation
# pixels, and the mIoU is far smaller, because every other class present scores IoU 0.

# %%
answer = ...  # (pixel_accuracy, miou)
check_exercise_4(answer, val_masks, most_common, NUM_CLASSES)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution to exercise 4.
truth = val_masks[val_masks != IGNORE_INDEX]  # (labelled pixels,)
per_class = torch.bincount(truth, minlength=NUM_CLASSES)  # (19,) true pixels of each class
share = (per_class[most_common] / per_class.sum()).item()
# The class's IoU: TP = its pixels, FP = every other labelled pixel, FN = 0, so IoU = its share.
# Every other class in the labels has TP = 0: IoU 0. Classes in neither labels nor prediction are left out.
present = int(((per_class > 0) | (torch.arange(NUM_CLASSES) == most_common)).sum())
answer = (share, share / present)
print(f"pixel accuracy {answer[0]:.3g}, mIoU {answer[1]:.3g} ({present} classes present)")
assert check_exercise_4(answer, val_masks, most_common, NUM_CLASSES)

# %%
scores = evaluate(model, val_loader, [Scores(NUM_CLASSES)], loss_fn, precision.dtype)
baseline = ConfusionMatrix(NUM_CLASSES)
baseline.update(torch.full_like(val_masks, most_common), val_masks)  # the same class on every pixel
baseline_scores = baseline.compute()
val_matrix = ConfusionMatrix(NUM_CLASSES)  # the same count by hand: evaluate's matrix, from val_preds
val_matrix.update(val_preds, val_masks)
print(f"mIoU {scores['miou']:.3f}, pixel accuracy {scores['pixel_accuracy']:.3f}")
print(
    f"'{CLASS_NAMES[most_common]}' everywhere: mIoU {baseline_scores['miou']:.3f}, pixel accuracy {baseline_scores['pixel_accuracy']:.3f}"
)
ratios = (scores["miou"] / baseline_scores["miou"], scores["pixel_accuracy"] / baseline_scores["pixel_accuracy"])
print(
    f"the model against the one-class answer: {ratios[0]:.1f} times the mIoU, {ratios[1]:.1f} times the pixel accuracy"
)
assert abs(scores["miou"] - state["metrics"]["val_miou"]) < 1e-6  # the reloaded model scores as during training
assert abs(scores["miou"] - val_matrix.compute()["miou"]) < 1e-6  # evaluate counted the same pixels
if MIOU_FLOOR is not None:
    assert scores["miou"] > MIOU_FLOOR, (
        f"validation mIoU {scores['miou']:.3f} is below the quick-mode floor {MIOU_FLOOR}"
    )
    assert scores["miou"] > 3 * baseline_scores["miou"]

# %% [markdown]
# Compare the two ratios the cell prints: pixel accuracy rewards the big classes, which even the
# one-class answer partly gets right; the mIoU counts every class alike.

# %% [markdown]
# **Exercise 5: which classes get IoU 0?** Before the next cell draws the per-class IoU: which classes
# does the model never predict right on the validation set? Use what you know (the class frequencies,
# the end of the training log), or count it from the validation confusion matrix `val_matrix.mat` (rows: true class). Expected: a
# list of class names, mostly small or rare ones (poles, traffic lights and signs, people, bicycles).

# %%
answer = ...  # a list of class names, e.g. ["pole", "rider"]
check_exercise_5(answer, scores["iou"], CLASS_NAMES)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution to exercise 5.
# IoU = TP / (TP + FP + FN) is 0 exactly when TP, the diagonal entry, is 0 and the class is in the
# labels or the predictions (else 0 / 0, not a number).
counted = val_matrix.mat  # (19, 19) [true, predicted]
seen = (counted.sum(0) + counted.sum(1)) > 0
answer = [CLASS_NAMES[c] for c in range(NUM_CLASSES) if counted[c, c] == 0 and seen[c]]
print(answer)
assert check_exercise_5(answer, scores["iou"], CLASS_NAMES)

# %%
display(plot_class_iou(scores["iou"], CLASS_NAMES, title=f"IoU per class on the validation set ({out_dir.name})"))
val_iou = torch.tensor(scores["iou"])  # (19,) NaN for a class in neither truth nor prediction
zero = [n for n, v in zip(CLASS_NAMES, val_iou.tolist(), strict=True) if v == 0]
top = int(val_iou.nan_to_num().argmax())
print(f"{len(zero)} of {NUM_CLASSES} classes at IoU 0; the highest IoU: {CLASS_NAMES[top]} {val_iou[top]:.3f}")

# %% [markdown]
# ### The confusion matrix, by hand
#
# `ConfusionMatrix.update` is a few lines on `torch.bincount`: each labelled pixel becomes one number,
# `true * 19 + predicted`, and counting how often each of the $19^2$ numbers occurs fills the matrix
# at once. Here it is written out for one validation picture and checked against the library; then one
# class's IoU is computed from the matrix by hand.

# %%
image, labels = val_set[0]  # (3, H, W), (H, W)
picture_logits = predict_logits(model, image[None].to(device), amp_dtype=precision.dtype)  # (1, 19, H, W)
pred = predict_labels(picture_logits)[0].cpu()  # (H, W) trainIds
keep = labels != IGNORE_INDEX  # (H, W): the labelled pixels
codes = labels[keep].long() * NUM_CLASSES + pred[keep]  # (labelled pixels,) one number per (true, predicted)
by_hand = torch.bincount(codes, minlength=NUM_CLASSES**2).reshape(NUM_CLASSES, NUM_CLASSES)  # [true, predicted]
library = ConfusionMatrix(NUM_CLASSES)
library.update(pred, labels)
torch.testing.assert_close(by_hand, library.mat)
print(f"picture {val_set.ids[0]}: {int(keep.sum())} labelled of {labels.numel()} pixels; the two matrices agree")

c = int(by_hand.sum(1).argmax())  # the class with the most true pixels in this picture
tp = by_hand[c, c]  # pixels of class c predicted as c
fn = by_hand[c].sum() - tp  # class c's pixels predicted as something else (the rest of its row)
fp = by_hand[:, c].sum() - tp  # other classes' pixels predicted as c (the rest of its column)
iou_c = tp.double() / (tp + fp + fn)
print(f"{CLASS_NAMES[c]}: TP {int(tp)}, FP {int(fp)}, FN {int(fn)} -> IoU {iou_c:.4f}")
torch.testing.assert_close(iou_c.float(), library.compute()["iou"][c])
accuracy = by_hand.diag().sum() / by_hand.sum()
torch.testing.assert_close(accuracy.double(), torch.tensor(library.compute()["pixel_accuracy"], dtype=torch.float64))
print(f"pixel accuracy of this picture: {accuracy:.4f} (the diagonal over all the counts)")

# %% [markdown]
# **The ignored pixels in the scores.** Like the loss, the confusion matrix skips every pixel whose
# *label* is 255, whatever was predicted there. Four pixels, the third one ignored: the matrix counts
# three.

# %%
toy_pred = torch.tensor([[0, 1, 1, 2]])  # (1, 4) what a model said
toy_true = torch.tensor([[0, 1, IGNORE_INDEX, 2]])  # (1, 4) pixel 2 is not labelled
toy = ConfusionMatrix(3)
toy.update(toy_pred, toy_true)
print(toy.mat)
assert int(toy.mat.sum()) == 3 and toy.compute()["pixel_accuracy"] == 1.0  # the 1 on the ignored pixel: not counted

# %% [markdown]
# **Exercise 6: mIoU from a confusion matrix.** Here is a small confusion matrix of four classes, rows
# the truth and columns the prediction. Class 2 appears nowhere (neither in the truth nor in the
# prediction). Compute the mIoU by hand. Expected: a number between the worst and the best class's
# IoU; class 2's IoU is 0/0, not a number, and is left out of the mean (`np.nanmean`), as the
# library and the official evaluation do.

# %%
small = torch.tensor([[50, 5, 0, 0], [10, 20, 0, 5], [0, 0, 0, 0], [5, 0, 0, 10]])  # [true, predicted]
answer = ...  # the mIoU, a number
check_exercise_6(answer, small)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution to exercise 6.
m = small.double()
iou = m.diag() / (m.sum(0) + m.sum(1) - m.diag())  # (4,): class 2 is 0 / 0 = nan
answer = iou.nanmean().item()
print("IoU per class:", [round(v, 4) for v in iou.tolist()], "-> mIoU", round(answer, 4))
assert check_exercise_6(answer, small)

# %% [markdown]
# ### At the labels' own resolution
#
# The numbers above are taken at the training size. The official Cityscapes evaluation scores at the
# labels' full resolution: `evaluate` with the metric `OfficialScores` (from `unet_lib.cli.cityscapes`)
# upsamples the logits to each label file's size before the argmax (`with_full_masks` adds those labels
# to the batches), counts the pixels in the same `ConfusionMatrix`, and also reports the mIoU over the 7
# categories (flat, construction, object, nature, sky, human, vehicle), an easier score: the cell
# below says why.

# %%
official = evaluate(model, with_full_masks(val_set, config.batch_size), [OfficialScores()])
print(
    f"full resolution: mIoU {official['miou']:.3f}, category mIoU {official['category_miou']:.3f}, pixel accuracy {official['pixel_accuracy']:.3f}"
)
category_of = torch.tensor([CATEGORY_NAMES.index(c.category) for c in TRAIN_CLASSES])  # (19,) trainId -> category
counts = torch.as_tensor(official["mat"]).double()  # (19, 19) [true, predicted]
wrong = counts.sum() - counts.diag().sum()  # labelled pixels given a wrong class
same = category_of[:, None] == category_of[None, :]  # (19, 19) True where both classes share a category
within = (counts * same).sum() - counts.diag().sum()  # wrong class, right category
print(f"{within / wrong:.0%} of the wrongly classed pixels got another class of the right category")
print("category IoU:", ", ".join(f"{name} {v:.2f}" for name, v in official["category_iou"].items()))
scored = {
    "categories": sum(v > 0 for v in official["category_iou"].values()),
    "classes": sum(v > 0 for v in official["iou"].values()),
}
display(
    Markdown(
        f"The category mIoU ({official['category_miou']:.3f}) is "
        + ("higher than" if official["category_miou"] > official["miou"] else "not above")
        + f" the class mIoU ({official['miou']:.3f}). It scores 7 groups instead of 19 classes, and a confusion"
        " inside a category (a car taken for a truck or bus, a pole for a traffic sign, a person for a rider)"
        f" counts as right: here {within / wrong:.0%} of the wrongly classed pixels. A category also scores above"
        " 0 as soon as its pixels are given any of its classes: here"
        f" {scored['categories']} of 7 categories score above 0, against {scored['classes']} of 19 classes."
    )
)

# %% [markdown]
# Read the confusion matrix row by row: each row is one true class, divided by its pixel count, so the
# diagonal is the share found (recall) and the rest of the row shows what it was mistaken for. With 19
# classes, only the cells holding at least 0.5 % of their row carry a number (in %); the empty cells
# are (nearly) 0. The cell below names, for each class the network rarely gets right, what it takes
# that class for.

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
# the ground truth is ignored; the prediction always names a class, even there. Some official colours
# are dark and easy to mistake for that black; the cell names those whose luminance,
# $0.299R + 0.587G + 0.114B$ (out of 255: how bright a colour looks), is below 20, and the legend names
# every colour.

# %%
luminance = np.array(CLASS_COLORS) @ np.array([0.299, 0.587, 0.114])  # (19,)
DARK = 20  # out of 255: nearly black on a screen
print(
    f"official colours with luminance below {DARK}:",
    ", ".join(
        f"{CLASS_NAMES[i]} {CLASS_COLORS[i]} ({luminance[i]:.0f})" for i in np.argsort(luminance) if luminance[i] < DARK
    ),
)
images, masks = next(iter(val_loader))
preds = predict_labels(predict_logits(model, images.to(device), amp_dtype=precision.dtype)).cpu()  # (B, H, W) trainIds
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
# Quick mode trains a small network for well under a minute (the training cell prints how long) on 8
# sample pictures at 64x128; on the real data the full profile trains the original's 31 M-parameter network at 160x320 on 2,975 pictures (cited).
# The original project reported **86.7 % pixel accuracy** on Cityscapes (cited from its README; its
# mIoU code was lost). The quick run's many classes at IoU 0 are what a few pictures at 64x128 give:
# the big classes (road, building, sky, vegetation) carry the pixel accuracy, and the mean over 19
# classes stays low while the small ones score 0. Judge a full run by its mIoU and per-class IoU.
#
# ## Summary
#
# - Multi-class segmentation is the same U-Net with `num_classes` output channels and a cross-entropy
#   over them; `argmax` over channels gives the class map.
# - One value, 255, marks pixels without a class: unlabelled regions and the padding augmentation adds.
#   The loss (`ignore_index`) and the confusion matrix skip them; forget it and the loss fails.
# - A uniform guess costs ln 19 ≈ 2.94 per pixel: the first epochs' losses are read against it.
# - The learning-rate finder sweeps the rate on a copy of the model; the doctor reads a run's history
#   and says what went wrong, and nothing when nothing did.
# - Classes are very unbalanced: judge a model by mIoU and per-class IoU, not by pixel accuracy, and
#   read the confusion matrix (a `torch.bincount` of `true * C + predicted`) to see what each class is
#   taken for. Median-frequency class weights make the rare classes count more.
#
# ## More to try
#
# The six exercises above check themselves. Open questions for longer runs (change the parameters
# cell, then run the notebook again):
#
# 1. Train longer: `recipe(RECIPE, num_epochs=60)`. Which classes leave IoU 0, and does the
#    validation loss follow the training loss?
# 2. `recipe(RECIPE, class_weights="median-frequency")`: `train` prints the weights it uses; compare
#    the per-class IoU bars and the pixel accuracy with this run's.
# 3. `recipe(RECIPE, augment="none")`: does the gap between training and validation loss grow?
# 4. `recipe(RECIPE, lr=...)` at the learning-rate finder's suggestion, and at ten times the recipe's:
#    what does the doctor say about each?
# 5. With the original project's Cityscapes model (see `models/README.md`), run the full-mode cell
#    above and compare its per-class IoU with yours.
#
# ## Further reading
#
# - [The Cityscapes dataset](https://www.cityscapes-dataset.com/) and its benchmark scripts,
#   [cityscapesScripts](https://github.com/mcordts/cityscapesScripts) (the label definitions and the
#   official evaluation this notebook's `OfficialScores` follows).
# - PyTorch: [`nn.CrossEntropyLoss`](https://pytorch.org/docs/stable/generated/torch.nn.CrossEntropyLoss.html)
#   (`ignore_index`, `weight`), and [`torchvision.datasets.Cityscapes`](https://pytorch.org/vision/stable/generated/torchvision.datasets.Cityscapes.html),
#   whose class table (ids, trainIds, colours) `unet_lib` uses.
# - Leslie Smith, [Cyclical Learning Rates for Training Neural Networks](https://arxiv.org/abs/1506.01186)
#   (the learning-rate range test that `lr_find` runs).
#
# **Next:** your own data. The end of `train_carvana` shows the `folder` layout for pictures and
# masks of your own, and `python -m unet_lib check-data DIR` checks them before a long run.
