"""The U-Net of Ronneberger et al. (2015), as the original project built it: blocks first, then the network,
whose ``forward`` reads like the paper's figure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

import torch
import torch.nn.functional as F
from torch import nn

from unet_lib.config import BlockKind, UpsampleKind


class DoubleConv(nn.Module):
    """(conv3x3 => BN => ReLU) * 2"""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        # Key names (conv.0 .. conv.5) match the original project's checkpoints.
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=True),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class ResidualBlock(nn.Module):
    """(conv3x3 => BN => ReLU => conv3x3 => BN) + 1x1 shortcut => ReLU"""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut = nn.Identity()
        if in_channels != out_channels:  # a 1x1 projection to the new width
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x) + self.shortcut(x))


BLOCKS: dict[str, type[nn.Module]] = {"double": DoubleConv, "residual": ResidualBlock}


def make_upsample(in_channels: int, out_channels: int, kind: UpsampleKind) -> nn.Module:
    """upsample x2 halving the channels: ConvTranspose2d(k=2, s=2), or bilinear => conv1x1"""
    if kind == "transpose":
        return nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        nn.Conv2d(in_channels, out_channels, kernel_size=1),
    )


def pad_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Zero-pad x (B, C, h, w) to the H and W of ``like``, evenly on both sides (a no-op when they match)."""
    dh, dw = like.shape[-2] - x.shape[-2], like.shape[-1] - x.shape[-1]
    # An exported graph (ONNX) must pad for every input size, not only for the size it was traced with.
    if torch.jit.is_tracing() or torch.compiler.is_exporting() or dh or dw:
        x = F.pad(x, [dw // 2, dw - dw // 2, dh // 2, dh - dh // 2])  # (B, C, H, W)
    return x


# torch.fx (and so torchvision's feature extractor) records pad_to as one call instead of tracing
# into its `if`, which depends on sizes a symbolic trace does not know.
torch.fx.wrap("pad_to")


class UNet(nn.Module):
    """U-Net: an encoder of ``len(features)`` down blocks, a bottleneck, a mirrored decoder.

    Any input size works: when H or W is not divisible by ``2 ** len(features)`` the decoder
    pads its upsampled maps to the skip's size, so the output always has the input's H and W.

    Args:
        num_classes: Output channels: 1 for a binary mask (logits for BCE), C for C classes.
        features: Width of each encoder level; the bottleneck is twice the last.
        block: ``"double"`` (DoubleConv, the original) or ``"residual"`` (ResidualBlock).
        upsample: ``"transpose"`` (ConvTranspose2d, the original) or ``"bilinear"``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 1,
        features: Sequence[int] = (64, 128, 256, 512),
        block: BlockKind = "double",
        upsample: UpsampleKind = "transpose",
    ):
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"block: expected one of {sorted(BLOCKS)}, got {block!r}")
        if upsample not in get_args(UpsampleKind):
            raise ValueError(f"upsample: expected one of {get_args(UpsampleKind)}, got {upsample!r}")
        Block = BLOCKS[block]
        features = tuple(int(f) for f in features)
        self.arch = dict(
            in_channels=in_channels, num_classes=num_classes, features=list(features), block=block, upsample=upsample
        )

        # Each down block widens the previous level's channels to its own: 3 -> 64 -> 128 -> ...
        self.downs = nn.ModuleList(Block(c, f) for c, f in zip((in_channels, *features[:-1]), features, strict=True))
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.bottleneck = Block(features[-1], features[-1] * 2)
        self.upconvs = nn.ModuleList(make_upsample(f * 2, f, upsample) for f in reversed(features))
        self.ups = nn.ModuleList(Block(f * 2, f) for f in reversed(features))
        self.final_conv = nn.Conv2d(features[0], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for down in self.downs:
            x = down(x)  # (B, f, H/2^i, W/2^i)
            skips.append(x)
            x = self.pool(x)  # (B, f, H/2^(i+1), W/2^(i+1)), odd sizes round down
        x = self.bottleneck(x)  # (B, 2*f_last, H/2^depth, W/2^depth)
        for upconv, up, skip in zip(self.upconvs, self.ups, reversed(skips), strict=True):
            x = pad_to(upconv(x), skip)  # (B, f, 2h, 2w), padded to (B, f, H_skip, W_skip) for odd sizes
            x = torch.cat([skip, x], dim=1)  # (B, 2f, H_skip, W_skip): skip first, as the original
            x = up(x)  # (B, f, H_skip, W_skip)
        return self.final_conv(x)  # (B, num_classes, H, W)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
