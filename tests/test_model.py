"""The U-Net: sizes, gradients, the residual/bilinear options, and that it can learn."""

import pytest
import torch

from unet_lib import UNet, count_parameters


def test_default_matches_the_original_size():
    # conv-BN-ReLU x2 blocks of 64..512, bottleneck 1024, transposed convs: the original's 31.04 M.
    assert count_parameters(UNet()) == 31_040_577


@pytest.mark.parametrize("height,width", [(64, 96), (161, 243), (33, 17), (1280 // 8, 1918 // 8)])
def test_output_keeps_any_input_size(height, width):
    model = UNet(features=(8, 16, 32, 64)).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, height, width))
    assert out.shape == (2, 1, height, width)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("block", ["double", "residual"])
@pytest.mark.parametrize("upsample", ["transpose", "bilinear"])
def test_every_parameter_gets_a_gradient(block, upsample):
    model = UNet(num_classes=5, features=(4, 8, 16), block=block, upsample=upsample)
    out = model(torch.randn(2, 3, 40, 56))
    assert out.shape == (2, 5, 40, 56)
    out.square().mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="block"):
        UNet(block="dense")
    with pytest.raises(ValueError, match="upsample"):
        UNet(upsample="nearest")


def test_a_tiny_batch_overfits(one_thread):
    # One thread: the result is then the same on every run of this CPU (float sums split across threads
    # differ). 60 Adam steps: on seeds 0-5 the loss falls 5.5 to 32 times and the accuracy ends above 0.996.
    torch.manual_seed(0)
    images = torch.rand(2, 3, 32, 48)
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(48), indexing="ij")
    masks = torch.stack([(yy - 16) ** 2 + (xx - 20) ** 2 < 80, (yy > 10) & (xx > 30)]).float()[:, None]
    assert 0.1 < masks.mean() < 0.3  # a disc and a corner block: all background would score only 0.81
    model = UNet(features=(8, 16, 32))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    losses = []
    for _ in range(60):
        loss = loss_fn(model(images), masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()  # scored with BatchNorm's running statistics, as the model will be used
    with torch.no_grad():
        accuracy = ((model(images) > 0).float() == masks).float().mean().item()
    assert losses[-1] < losses[0] / 5
    assert accuracy > 0.98
