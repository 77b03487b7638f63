"""The image encoder of image-input policies: a small CNN whose last layer is read out as spatial-softmax
keypoints (the expected image position of each of K feature maps), then a linear layer. Plain torch.

Images enter as uint8 RGB [B, H, W, 3] (what the twin's renders and the datasets' videos hold). In
training a random crop of ``crop_fraction`` of each side is taken (augmentation); at run time the
centred crop, so both see images of one size.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ImageEncoder", "SpatialSoftmax", "crop_images"]


class SpatialSoftmax(nn.Module):
    """Feature maps [B, K, h, w] -> expected (x, y) of each map's softmax [B, K, 2], in [-1, 1] (image
    left/top = -1)."""

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        b, k, h, w = maps.shape
        attention = F.softmax(maps.reshape(b, k, h * w), dim=-1)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h, device=maps.device), torch.linspace(-1, 1, w, device=maps.device),
                                indexing="ij")
        grid = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)  # [h*w, 2]
        return attention @ grid


def crop_images(images: torch.Tensor, fraction: float, generator: torch.Generator | None = None,
                random: bool = False) -> torch.Tensor:
    """Crop [B, H, W, C] to ``round(fraction * H) x round(fraction * W)``: centred, or at a random
    position per image when ``random`` (training augmentation)."""
    b, h, w, _ = images.shape
    ch, cw = max(1, round(fraction * h)), max(1, round(fraction * w))
    if not random:
        top, left = (h - ch) // 2, (w - cw) // 2
        return images[:, top:top + ch, left:left + cw]
    dev = generator.device if generator is not None else images.device
    tops = torch.randint(0, h - ch + 1, (b,), generator=generator, device=dev).cpu()
    lefts = torch.randint(0, w - cw + 1, (b,), generator=generator, device=dev).cpu()
    rows = (tops[:, None] + torch.arange(ch)[None]).to(images.device)  # [B, ch]
    cols = (lefts[:, None] + torch.arange(cw)[None]).to(images.device)  # [B, cw]
    idx_b = torch.arange(b, device=images.device)[:, None, None]
    return images[idx_b, rows[:, :, None], cols[:, None, :]]


class ImageEncoder(nn.Module):
    """uint8 RGB [B, H, W, 3] -> features [B, feature_dim].

    Args:
        channels: output channels of the conv layers (the first two halve the resolution).
        keypoints: K, feature maps read out by the spatial softmax.
        feature_dim: size of the output.
    """

    def __init__(self, channels: tuple[int, ...] = (32, 64, 64), keypoints: int = 32, feature_dim: int = 64) -> None:
        super().__init__()
        layers, c_in = [], 3
        for i, c in enumerate(channels):
            layers += [nn.Conv2d(c_in, c, 5 if i == 0 else 3, stride=2 if i < 2 else 1, padding=2 if i == 0 else 1),
                       nn.GroupNorm(min(8, c), c), nn.ReLU()]
            c_in = c
        layers.append(nn.Conv2d(c_in, keypoints, 1))
        self.cnn = nn.Sequential(*layers)
        self.softmax = SpatialSoftmax()
        self.out = nn.Linear(2 * keypoints, feature_dim)
        self.feature_dim = feature_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0
        return self.out(self.softmax(self.cnn(x)).flatten(1))
