"""A small convolutional encoder for image sources: ``(n, C, H, W) -> (n, d)``."""

from __future__ import annotations

import torch
from torch import nn

from multitask.nn._mlp import ACTIVATIONS, check_activation, norm_layer


class ConvEncoder(nn.Module):
    """Three ``3x3 conv -> activation`` layers (32, 64, 64 channels), 2x2 max-pooling after the first two,
    a 4x4 adaptive average pool, then ``Linear(64 * 16, d) -> norm -> activation -> dropout``.

    Works on any image size (the adaptive pool fixes the flattened size) and on an empty batch.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        d: int,
        activation: str = "relu",
        norm: str = "none",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_activation(activation)
        channels = image_shape[0]
        act = ACTIVATIONS[activation]
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, kernel_size=3, padding=1),
            act(),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(32, 64, kernel_size=3, padding=1),
            act(),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(64, 64, kernel_size=3, padding=1),
            act(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
        )
        self.project = nn.Sequential(nn.Linear(64 * 16, d), norm_layer(norm, d), act(), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.features(x))
