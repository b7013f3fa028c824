"""Pixel (un)shuffles folded into the convolution beside them, before a generator is exported.

onnxruntime's CPU provider runs a PixelUnshuffle as a 6-D Transpose and a PixelShuffle as a
DepthToSpace, both slow copies: in the real-time generator at 640x360 they took 40% of the
time, while a strided (or transposed) convolution that computes the same function costs one
GEMM. The folded module gives the same output (to float rounding), so a model trains in the
readable form and exports in the fast one.

    PixelUnshuffle(r), Conv2d(k)  ->  Conv2d(k*r, stride r)   (reflect padding: BlockReflectPad)
    Conv2d(1x1), PixelShuffle(r)  ->  ConvTranspose2d(r, stride r)
"""

from __future__ import annotations

import torch
from torch import nn


def fold_shuffles(module: nn.Module) -> nn.Module:
    """Fold every shuffle that sits next to a foldable convolution in an nn.Sequential, in
    place; the rest is left as it is. Returns `module`."""
    for child in module.children():
        fold_shuffles(child)
    if isinstance(module, nn.Sequential):
        layers = _folded(list(module))
        module._modules.clear()
        for index, layer in enumerate(layers):
            module.add_module(str(index), layer)
    return module


def _folded(layers: list[nn.Module]) -> list[nn.Module]:
    out = []
    while layers:
        first, second = layers[0], layers[1] if len(layers) > 1 else None
        if isinstance(first, nn.PixelUnshuffle) and _unshuffle_foldable(second):
            out.append(unshuffled_conv(second, first.downscale_factor))
            layers = layers[2:]
        elif isinstance(second, nn.PixelShuffle) and _shuffle_foldable(first):
            out.append(ShuffledConv(first, second.upscale_factor))
            layers = layers[2:]
        else:
            out.append(first)
            layers = layers[1:]
    return out


def _plain(conv) -> bool:
    return (isinstance(conv, nn.Conv2d) and conv.groups == 1 and conv.stride == (1, 1)
            and conv.dilation == (1, 1) and isinstance(conv.padding, tuple))


def _unshuffle_foldable(conv) -> bool:
    return (_plain(conv) and conv.kernel_size[0] == conv.kernel_size[1]
            and conv.padding[0] == conv.padding[1]
            and conv.padding_mode in ("zeros", "reflect"))


def _shuffle_foldable(conv) -> bool:
    return _plain(conv) and conv.kernel_size == (1, 1)


def unshuffled_conv(conv: nn.Conv2d, r: int) -> nn.Module:
    """PixelUnshuffle(r) then `conv` as one convolution of stride r on the full-size input."""
    out, channels, k = conv.out_channels, conv.in_channels // (r * r), conv.kernel_size[0]
    # unshuffled channel c*r*r + i*r + j at tap (ky, kx) reads input pixel (ky*r + i, kx*r + j)
    weight = conv.weight.detach().reshape(out, channels, r, r, k, k)
    weight = weight.permute(0, 1, 4, 2, 5, 3).reshape(out, channels, k * r, k * r)
    pad = conv.padding[0]
    reflect = conv.padding_mode == "reflect" and pad > 0
    folded = nn.Conv2d(channels, out, k * r, stride=r, padding=0 if reflect else pad * r,
                       bias=conv.bias is not None)
    folded.weight.data = weight.contiguous()
    if conv.bias is not None:
        folded.bias.data = conv.bias.detach().clone()
    return nn.Sequential(BlockReflectPad(r, pad), folded) if reflect else folded


class BlockReflectPad(nn.Module):
    """The reflection padding that PixelUnshuffle(r) then a reflect-padded convolution apply,
    done before the unshuffle: `pad` blocks of r rows (and columns), each mirrored whole."""

    def __init__(self, r: int, pad: int):
        super().__init__()
        self.r, self.pad = r, pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for dim in (2, 3):
            before = self._blocks(x, dim, range(self.pad, 0, -1))
            after = self._blocks(x, dim, range(-2, -2 - self.pad, -1))
            x = torch.cat([*before, x, *after], dim)
        return x

    def _blocks(self, x: torch.Tensor, dim: int, blocks: range) -> list[torch.Tensor]:
        count = x.shape[dim] // self.r
        return [x.narrow(dim, (block % count) * self.r, self.r) for block in blocks]


class ShuffledConv(nn.Module):
    """A 1x1 convolution then PixelShuffle(r) as one transposed convolution of stride r.

    ConvTranspose2d has one bias per output channel, but after the shuffle each of the r*r
    positions has its own; they are the weights of an extra input channel of ones.
    """

    def __init__(self, conv: nn.Conv2d, r: int):
        super().__init__()
        channels, out = conv.in_channels, conv.out_channels // (r * r)
        weight = conv.weight.detach().reshape(out, r, r, channels).permute(3, 0, 1, 2)
        bias = (conv.bias.detach() if conv.bias is not None
                else torch.zeros(conv.out_channels)).reshape(1, out, r, r)
        self.up = nn.ConvTranspose2d(channels + 1, out, r, stride=r, bias=False)
        self.up.weight.data = torch.cat([weight, bias]).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(torch.cat([x, torch.ones_like(x[:, :1])], 1))
