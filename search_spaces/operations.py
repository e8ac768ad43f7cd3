"""Candidate operations of the DARTS and NAS-Bench-201 spaces, as registries `name -> factory(C, stride, affine)`.

Definitions follow the DARTS reference (quark0/darts) and NAS-Bench-201 exactly, because parameter counts and
published results depend on them. One deliberate difference: `FactorizedReduce` pads its shifted branch so that odd
feature-map sizes work; for even sizes (every published setting) the output is identical to the reference.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

OpFactory = Callable[[int, int, bool], nn.Module]


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv (bias-free) -> BN: DARTS cell preprocessing and NAS-Bench-201's `nor_conv`."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True,
                 dilation: int = 1):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    @property
    def opening(self) -> nn.Module:
        """The ReLU the op opens with: edges reading one state share its output (supernet/model.py: SharedSource)."""
        return self[0]

    def after_relu(self, r: torch.Tensor) -> torch.Tensor:
        """The op on r = opening(x)."""
        return self[2](self[1](r))


class DepthwiseConv2d(nn.Conv2d):
    """A depthwise convolution (groups = channels) that computes "same"-padded convolutions whose stride equals
    their dilation as what they are: an undilated stride-1 convolution of the pixels they read.

    With stride = dilation = s and padding p = s (k - 1) / 2, out[h] = sum_i w[i] x[s h + s i - p]
    = sum_i w[i] x_s[h + i - p / s] with x_s = x[::s, ::s]: the same products and sums in the same order, and
    oneDNN runs the undilated form many times faster on CPU (backward above all: measured 7-16x at DARTS
    reduction-cell shapes). Same parameters, state dict and initialisation as nn.Conv2d. Off the CPU (cuDNN has
    its own dilated kernels) it runs as the plain convolution.
    """

    def __init__(self, channels: int, kernel_size: int, stride: int, padding: int, dilation: int):
        super().__init__(channels, channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
                         groups=channels, bias=False)
        s, p = stride, padding
        self.reads_every_sth = s > 1 and dilation == s and p == s * (kernel_size - 1) // 2 and p % s == 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.reads_every_sth or x.device.type != "cpu":
            return super().forward(x)
        s = self.stride[0]
        return F.conv2d(x[:, :, ::s, ::s], self.weight, None, 1, self.padding[0] // s, 1, self.groups)


class DilConv(nn.Sequential):
    """ReLU -> depthwise k x k dilated conv -> 1x1 conv -> BN (DARTS `dil_conv_kxk`, applied once)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, dilation: int,
                 affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            DepthwiseConv2d(c_in, kernel_size, stride, padding, dilation),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    @property
    def opening(self) -> nn.Module:
        return self[0]

    def after_relu(self, r: torch.Tensor) -> torch.Tensor:
        return self[3](self[2](self[1](r)))


class SepConv(nn.Sequential):
    """The dilation-1 `DilConv` block applied twice, stride only in the first (DARTS `sep_conv_kxk`)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True):
        super().__init__(
            DilConv(c_in, c_in, kernel_size, stride, padding, dilation=1, affine=affine),
            DilConv(c_in, c_out, kernel_size, 1, padding, dilation=1, affine=affine),
        )

    @property
    def opening(self) -> nn.Module:
        return self[0].opening

    def after_relu(self, r: torch.Tensor) -> torch.Tensor:
        return self[1](self[0].after_relu(r))


class Identity(nn.Module):
    """Identity that drop-path recognises (the reference skips drop-path on identities)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """The `none` op: zeros with the spatial size the edge's stride implies."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Stride-2 skip: ReLU, two stride-2 1x1 convs (the second on the input shifted by one pixel), concat, BN.

    out = BN([conv_1(relu(x)), conv_2(relu(x)[:, :, 1:, 1:])])
    """

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.after_relu(self.relu(x))

    @property
    def opening(self) -> nn.Module:
        return self.relu

    def after_relu(self, r: torch.Tensor) -> torch.Tensor:
        shifted = F.pad(r, (0, 1, 0, 1))[:, :, 1:, 1:]  # same size as r, so odd sizes line up too
        return self.bn(torch.cat([self.conv_1(r), self.conv_2(shifted)], dim=1))


def _avg_pool(stride: int) -> nn.Module:
    return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)


DARTS_OPS: dict[str, OpFactory] = {
    "none": lambda C, stride, affine: Zero(stride),
    "max_pool_3x3": lambda C, stride, affine: nn.MaxPool2d(3, stride=stride, padding=1),
    "avg_pool_3x3": lambda C, stride, affine: _avg_pool(stride),
    "skip_connect": lambda C, stride, affine: Identity() if stride == 1 else FactorizedReduce(C, C, affine),
    "sep_conv_3x3": lambda C, stride, affine: SepConv(C, C, 3, stride, 1, affine),
    "sep_conv_5x5": lambda C, stride, affine: SepConv(C, C, 5, stride, 2, affine),
    "dil_conv_3x3": lambda C, stride, affine: DilConv(C, C, 3, stride, 2, 2, affine),
    "dil_conv_5x5": lambda C, stride, affine: DilConv(C, C, 5, stride, 4, 2, affine),
}
"""The DARTS primitives, in the reference's order (the order fixes the columns of the logits)."""

NB201_OPS: dict[str, OpFactory] = {
    "none": lambda C, stride, affine: Zero(stride),
    "skip_connect": lambda C, stride, affine: Identity() if stride == 1 else FactorizedReduce(C, C, affine),
    "nor_conv_1x1": lambda C, stride, affine: ReLUConvBN(C, C, 1, stride, 0, affine),
    "nor_conv_3x3": lambda C, stride, affine: ReLUConvBN(C, C, 3, stride, 1, affine),
    "avg_pool_3x3": lambda C, stride, affine: _avg_pool(stride),
}
"""The NAS-Bench-201 ops, in the benchmark's order. Pools carry no BN there, in search or evaluation."""

RELU_FIRST = (ReLUConvBN, DilConv, SepConv, FactorizedReduce)
"""Ops that open with a ReLU (`opening`) and offer `after_relu(opening(x))`."""

POOL_OPS = frozenset({"max_pool_3x3", "avg_pool_3x3"})
PARAMETER_FREE_OPS = frozenset({"none", "skip_connect", *POOL_OPS})
"""The ops a collapsing DARTS search drifts to (skip above all); `skip_connect` at stride 2 has the weights of a
FactorizedReduce, but it is chosen for the same reason."""
