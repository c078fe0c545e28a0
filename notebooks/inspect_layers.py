# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Inside a U-Net: layer outputs and filters
#
# A trained U-Net turns a photo into a mask, but what happens in between? This notebook opens the
# network up:
#
# 1. **Forward hooks** record what each block outputs, without changing the model's code.
# 2. A table of every block's output shape shows the U shape: the encoder halves the picture and
#    widens the channels, the decoder does the reverse.
# 3. The original project's figure: prediction, down block 1, bottleneck, up block 1, reference.
# 4. An interactive **explorer** to browse any layer and channel of any sample.
# 5. The **filters** the first and a deeper convolution have learned.
#
# It uses a Carvana checkpoint: the newest one under `models/`, or a small one trained right now
# if there is none (about a minute in quick mode).

# %% tags=["parameters"]
import dataclasses

from unet_lib.workspace import carvana_checkpoint, carvana_dir, quick_mode

QUICK = quick_mode()  # UNET_QUICK=1: sample data and a small checkpoint trained in about a minute
CHECKPOINT = None  # a path to a best.pt, or None for the newest Carvana checkpoint under models/
NUM_SAMPLES = 4  # validation pictures to look at
SHAPE_INPUT = (1, 3, 160, 240)  # (B, C, H, W) of the dummy input in the shape table: the original's picture size

# %%
import matplotlib.pyplot as plt
import torch
from IPython.display import display

from unet_lib import TrainConfig, build_datasets, capture, layer_names, model_from_checkpoint
from unet_lib.model import UNet, count_parameters
from unet_lib.predict import predict_labels
from unet_lib.viz import show_filters, show_layer_figure, show_predictions
from unet_lib.widgets import LayerExplorer
from unet_lib.workspace import shown

plt.rcParams["figure.dpi"] = 80  # modest pictures keep the notebook light

# %% [markdown]
# ## The model and a few validation pictures
#
# `model_from_checkpoint` rebuilds the U-Net from the widths stored in the checkpoint and loads its
# weights; the training settings come back as a `TrainConfig`, so the pictures are resized exactly
# as during training.

# %%
checkpoint_path = CHECKPOINT or carvana_checkpoint()
model, state = model_from_checkpoint(checkpoint_path, num_classes=1)
config = TrainConfig.from_dict(state["config"])
config = dataclasses.replace(config, data_dir=str(carvana_dir()), limit=NUM_SAMPLES)
_, val_set = build_datasets(config)
images = torch.stack([val_set[i][0] for i in range(len(val_set))])  # (N, 3, H, W) in [0, 1]
masks = torch.stack([val_set[i][1] for i in range(len(val_set))])  # (N, H, W) in {0, 1}
print(f"checkpoint: {shown(checkpoint_path)}")
print(
    f"widths {state['arch']['features']}, {count_parameters(model):,} parameters, validation Dice {state['metrics'].get('val_dice', float('nan')):.3f}"
)
print(f"images {tuple(images.shape)}, masks {tuple(masks.shape)}")

# %% [markdown]
# ## Forward hooks
#
# A *forward hook* is a function PyTorch calls right after a module's `forward`, with the module,
# its inputs and its output. Registering one returns a *handle*; `handle.remove()` takes it off again.
# Here is the bare mechanism on the first down block:

# %%
seen = {}
handle = model.downs[0].register_forward_hook(lambda module, args, output: seen.update(downs0=output.detach()))
with torch.inference_mode():
    model(images[:1])
handle.remove()  # forget this and every later forward keeps calling the hook
print("downs.0 output:", tuple(seen["downs0"].shape), "| hooks left on downs.0:", len(model.downs[0]._forward_hooks))

# %% [markdown]
# `unet_lib.activations.capture` does the same for several layers at once. It is a *context
# manager*: the hooks exist only inside the `with` block and are removed when it ends, even when the
# forward pass raises an error. The layer names are the ones `model.named_modules()` uses;
# `layer_names(model)` lists the U-Net's blocks in the order the data flows through them.
#
# Below, the second forward pass gets a 1-channel picture, which the first convolution rejects.
# The error propagates, and still no hook is left behind.

# %%
print(layer_names(model))
with torch.inference_mode(), capture(model, ["downs.0", "bottleneck"]) as acts:
    print("hooks on downs.0 inside the block:", len(model.downs[0]._forward_hooks))
    model(images[:1])
print({name: tuple(act.shape) for name, act in acts.items()})
print("after the block:", dict(model.downs[0]._forward_hooks))

try:
    with capture(model, "downs.0"):
        model(images[:1, :1])  # (1, 1, H, W): the wrong number of channels
except RuntimeError as err:
    print("forward failed:", str(err).splitlines()[0][:70], "...")
print("after the failed block:", dict(model.downs[0]._forward_hooks))
assert not model.downs[0]._forward_hooks

# %% [markdown]
# ## The U shape, block by block
#
# The shapes do not depend on the weights, so this table uses a fresh U-Net with the original
# project's widths (64, 128, 256, 512) on a 160x240 picture. Read it top to bottom: each down block
# halves H and W (through the pooling after it) and doubles the channels; the bottleneck is the
# smallest and widest; each `upconvs` doubles H and W again and the `ups` block after it merges the
# skip connection; `final_conv` maps 64 channels to one logit per pixel.

# %%
# NBVAL_CHECK_OUTPUT
original = UNet(3, 1, features=(64, 128, 256, 512)).eval()
with torch.inference_mode(), capture(original, layer_names(original)) as shapes:
    original(torch.zeros(SHAPE_INPUT))
print(f"original U-Net: {count_parameters(original):,} parameters, input {SHAPE_INPUT}")
for name in layer_names(original):
    print(f"  {name:12s} -> {tuple(shapes[name].shape)}")

# %% [markdown]
# ## The original project's figure
#
# The original project showed, for one car: the prediction, the output of down block 1
# (`downs.0`), of the bottleneck, of up block 1 (`ups.0`, the first decoder block, right after the
# bottleneck) and the reference mask. Each activation has many channels; the figure shows their mean.
# Early layers still look like the photo (edges, colours); the bottleneck is a coarse 1/16-size map
# of "where the car is"; the decoder sharpens it back to full size.

# %%
with torch.inference_mode(), capture(model, ["downs.0", "bottleneck", "ups.0"]) as acts:
    logits = model(images)  # (N, 1, H, W)
preds = predict_labels(logits, config.threshold)  # (N, H, W) in {0, 1}
show_layer_figure(images[0], preds[0], {name: act[0] for name, act in acts.items()}, reference=masks[0])

# %%
show_predictions(images, preds.unsqueeze(1), masks, title="All validation pictures: prediction (top), reference")

# %% [markdown]
# ## Explore every layer
#
# The explorer runs one forward pass per sample (with `capture`) and shows the picked layer next to
# the input, whose reference mask is painted in red. Pick a **sample**, a **layer** and a
# **channel**, or switch to the **grid view** to see the first 16 channels side by side (each scaled
# to its own range). The line above the picture gives the shape and the range of what is shown.

# %%
explorer = LayerExplorer(model, images, masks)
display(explorer.widget)

# %% [markdown]
# The widgets are plain Python objects: setting their values from code redraws the picture, and
# `explorer.state()` reports what is on screen. The bottleneck has `2 * widths[-1]` channels at 1/16
# of the picture size.

# %%
# NBVAL_IGNORE_OUTPUT
explorer.layer.value = "bottleneck"
explorer.channel.value = 5
state = explorer.state()
h, w = images.shape[-2:]
widths = model.arch["features"]
assert state["activation_shape"] == (2 * widths[-1], h // 2 ** len(widths), w // 2 ** len(widths))
assert state["channel"] == 5 and state["shape"] == state["activation_shape"][1:]
assert state["label"].startswith("bottleneck, shape (C, H, W)") and "channel 5:" in state["label"]
print(state)

# %% [markdown]
# Switching to a layer with fewer channels clamps the channel slider; the grid view tiles channels.

# %%
# NBVAL_IGNORE_OUTPUT
explorer.layer.value = "final_conv"  # one logit per pixel: a single channel
assert (explorer.state()["channel"], explorer.state()["channel_max"]) == (0, 0)
explorer.layer.value = "downs.0"
explorer.grid.value = True
explorer.sample.value = len(images) - 1
state = explorer.state()
assert state["grid"] and state["sample"] == len(images) - 1 and "all channels" in state["label"]
assert state["shape"][0] > h and state["shape"][1] > w  # 16 tiles of H x W with borders
print(state)

# %% [markdown]
# ## What the filters look for
#
# A convolution's weight has shape `(out channels, in channels, k, k)`. The first layer reads the RGB
# picture directly, so each of its 3x3 filters can be drawn as a tiny colour picture: a uniform tile
# responds to a colour, a tile with a light and a dark side to an edge in that direction. How tidy
# they look depends on how long the model trained: after the short quick-mode run they are still
# close to their random start, while the activations above already separate car from background.

# %%
show_filters(model.downs[0].conv[0], title="downs.0, first convolution: 3x3 RGB filters")

# %% [markdown]
# Deeper filters read the previous layer's channels, not colours, so each is a grid of grey 3x3
# kernels: one row per output filter, one column per input channel. They are much harder to read,
# which is why looking at activations (above) is usually more telling.

# %%
show_filters(model.bottleneck.conv[0], title="bottleneck, first convolution (grey: one kernel per input channel)")

# %% [markdown]
# ## Takeaways
#
# - Forward hooks let you read any layer's output without touching `forward`; `capture` removes them
#   reliably, so a model is never left slowed down or leaking memory.
# - The encoder trades resolution for channels; the skip connections bring the fine detail back in
#   the decoder, which is why the `ups` outputs are sharp while the bottleneck is blurry.
# - First-layer filters are colour and edge detectors; deeper ones combine features and are best
#   understood through the activations they produce.
