"""Building blocks: 3×3 convs, dense and residual blocks (no batch norm), up-sampling."""

from __future__ import annotations

import torch
from torch import nn


def conv3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class DenseBlock(nn.Module):
    """Three sub-blocks of 3, 2 and 2 convs, each reading all earlier outputs (seed 004 §3.1.1).

    A 1×1 conv fuses the concatenation back to ``ch`` channels, added to the input.
    """

    def __init__(self, ch: int, growth: int) -> None:
        super().__init__()
        self.subs = nn.ModuleList()
        cin = ch
        for n_convs in (3, 2, 2):
            layers: list[nn.Module] = [conv3(cin, growth), nn.ReLU(inplace=True)]
            for _ in range(n_convs - 1):
                layers += [conv3(growth, growth), nn.ReLU(inplace=True)]
            self.subs.append(nn.Sequential(*layers))
            cin += growth
        self.fuse = nn.Conv2d(cin, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for sub in self.subs:
            feats.append(sub(torch.cat(feats, 1)))
        return x + self.fuse(torch.cat(feats, 1))


class ResBlock(nn.Module):
    """Two 3×3 convs with a skip connection."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3(ch, ch), nn.ReLU(inplace=True), conv3(ch, ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Up(nn.Module):
    """Conv to 4× the channels, then depth-to-space (the decoder's mirror of a stride-2 conv)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = conv3(cin, 4 * cout)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.shuffle(self.conv(x)))
