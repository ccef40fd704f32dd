"""The peel network: image (+ what was already peeled) -> the topmost elements' alpha, kind and separation maps.

A small fully convolutional U-Net, written as a diffusers `ModelMixin` + `ConfigMixin` so that
`save_pretrained` / `from_pretrained`, safetensors, dtype and device work as for the project's other models.
It works at a quarter of the input's pixels (a stride-2 stem) and returns to full size through a light head
that sees the input again, so the decoder's cost stays small; refinement restores the edges at the user's size.

Input (N, 4, H, W), H and W multiples of 16: RGB in [-1, 1] and the mask of what earlier rounds removed (0/1).
Output (N, 7, H, W) logits, channels in `OUTPUTS` order.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from torch.nn import functional as F

# Output channels: the top elements' alpha; the kind of the top element at each pixel (none + 3 kinds);
# the filled boxes of top text elements (one box = one element: a line or a paragraph of words);
# the pixels where two top elements touch (cut there to tell them apart).
OUTPUTS = ("alpha", "kind_none", "kind_panel", "kind_object", "kind_text", "text_box", "touch")
TOP_KINDS = ("panel", "object", "text")  # the kinds a peeled (non-background) element can have
INPUT_CHANNELS = 4
MULTIPLE = 16  # input sides must be multiples of this (a stem and three halvings)


def _block(cin: int, cout: int) -> nn.Sequential:
    """Two 3x3 convolutions, each with batch norm (folded away at inference by eval mode) and ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class _Context(nn.Module):
    """Global context at the bottleneck: the pooled features gate every position (squeeze-and-excitation)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(channels, channels // 4), nn.ReLU(inplace=True))
        self.out = nn.Linear(channels // 4, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=(2, 3))
        return x * torch.sigmoid(self.out(self.gate(pooled)))[:, :, None, None]


class _Residual(nn.Module):
    """x + f(x), f two 3x3 convolutions; f's last batch norm starts at zero, so a new block starts as the identity
    and a trained network grown by one computes what it did before."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = _block(channels, channels)[:-1]  # no ReLU after the last batch norm
        nn.init.zeros_(self.body[-1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class PeelNet(ModelMixin, ConfigMixin):
    """The top-elements predictor of `layered.peel`; `channels` are the widths at 1/2, 1/4, 1/8 and 1/16 size,
    `bottleneck_blocks` residual blocks at 1/16 size (where a position sees the whole image: which element lies on
    top is a question about all of it).

    `sample_size` is the long side it was trained at: `layered.peel` works at that size.
    """

    @register_to_config
    def __init__(
        self,
        channels: tuple[int, ...] = (24, 48, 96, 160),
        head_channels: int = 16,
        sample_size: int = 128,  # noqa: ARG002
        bottleneck_blocks: int = 0,
    ) -> None:
        super().__init__()
        c = list(channels)
        self.stem = nn.Sequential(
            nn.Conv2d(INPUT_CHANNELS, c[0], 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c[0]),
            nn.ReLU(inplace=True),
        )
        self.enc = nn.ModuleList([_block(c[0], c[0])])
        self.down = nn.ModuleList()
        for i in range(1, len(c)):
            self.down.append(nn.Conv2d(c[i - 1], c[i - 1], 3, stride=2, padding=1))
            self.enc.append(_block(c[i - 1], c[i]))
        self.bottleneck = nn.Sequential(*(_Residual(c[-1]) for _ in range(bottleneck_blocks)))
        self.context = _Context(c[-1])
        self.dec = nn.ModuleList(_block(c[i + 1] + c[i], c[i]) for i in reversed(range(len(c) - 1)))
        self.head = nn.Sequential(
            nn.Conv2d(c[0] + INPUT_CHANNELS, head_channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(head_channels, len(OUTPUTS), 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 4, H, W) -> (N, 7, H, W) logits."""
        skips = []
        h = self.enc[0](self.stem(x))
        for down, enc in zip(self.down, self.enc[1:], strict=True):
            skips.append(h)
            h = enc(down(h))
        h = self.context(self.bottleneck(h))
        for dec in self.dec:
            skip = skips.pop()
            h = dec(torch.cat([F.interpolate(h, size=skip.shape[2:], mode="nearest"), skip], dim=1))
        h = F.interpolate(h, size=x.shape[2:], mode="bilinear", align_corners=False)
        return self.head(torch.cat([h, x], dim=1))
