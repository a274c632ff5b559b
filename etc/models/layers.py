"""Layers shared by every architecture family: conv-BN-ReLU, the auxiliary training head and the
bilinear upsampling of scores to the frame."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class _BilinearUp(torch.autograd.Function):
    """``F.interpolate(x, size, "bilinear", align_corners=False)`` whose gradient runs torch's own
    backward kernel on a channels-last copy of the incoming gradient. On a CPU the NCHW backward
    kernel scatters one plane at a time and is several times slower than the channels-last one,
    which sums the same terms in the same order per element: the gradient is bitwise the same
    (tests/test_models.py), so training gives the same weights, only sooner."""

    @staticmethod
    def forward(ctx, x, size):
        ctx.shapes = (list(size), list(x.shape))
        return F.interpolate(x, size, mode="bilinear", align_corners=False)

    @staticmethod
    def backward(ctx, grad):
        size, shape = ctx.shapes
        grad = grad.contiguous(memory_format=torch.channels_last)
        dx = torch.ops.aten.upsample_bilinear2d_backward(grad, size, shape, False, None, None)
        return dx.contiguous(), None


def _capturing() -> bool:
    """A graph is being captured (TorchScript, ONNX export, torch.compile/export): they see
    torch's own operator, never the custom gradient."""
    return (torch.jit.is_scripting() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()
            or torch.compiler.is_compiling())


def upsample_bilinear(x: torch.Tensor, size) -> torch.Tensor:
    """Bilinear resize of B×C×h×w scores to ``size`` (align_corners=False), as ``F.interpolate``
    computes it; where the gradient of an NCHW tensor is needed on a CPU (and no graph is being
    captured), through :class:`_BilinearUp`."""
    if x.requires_grad and torch.is_grad_enabled() and x.device.type == "cpu" and x.dim() == 4 and x.is_contiguous() \
            and not _capturing():
        return _BilinearUp.apply(x, tuple(int(v) for v in size))
    return F.interpolate(x, size, mode="bilinear", align_corners=False)


def conv_bn_relu(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def aux_head(cin: int, head_channels: int, num_classes: int, dropout: float) -> nn.Sequential:
    """The deep-supervision head of PSPNet (3×3 conv-BN-ReLU, dropout, 1×1 classifier), used in
    training only; 256 channels at most, as in the reference code for PSPNet-18 and -101."""
    channels = min(head_channels, 256)
    return nn.Sequential(
        conv_bn_relu(cin, channels, 3),
        nn.Dropout2d(dropout),
        nn.Conv2d(channels, num_classes, 1),
    )


class SingleValueBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm that, in training, normalises an input of one value per channel (a batch of one
    through a 1×1 pooling bin: PSPNet's pyramid, DeepLabV3+'s image pooling, UPerNet's PPM) with
    its running statistics, unchanged, instead of raising: such an input has no batch
    statistics. Training at batch size 1 then treats that layer as evaluation does (a learned
    affine over the initial statistics, which batch-1 training never moves), so training and
    inference agree; every input of two values or more per channel is normalised exactly as by
    nn.BatchNorm2d, so nothing trained at a batch of two or more changes. GroupNorm or no norm
    in the bin (other PSPNet ports) would change every network, its checkpoints and figures."""

    def forward(self, x):
        if self.training and x.numel() == x.shape[1]:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


def batchnorm_without_single_values(model: nn.Module) -> nn.Module:
    """``model`` with each nn.BatchNorm2d a :class:`SingleValueBatchNorm2d` (same parameters and
    buffers, so checkpoints load as before)."""
    for module in model.modules():
        if type(module) is nn.BatchNorm2d:
            module.__class__ = SingleValueBatchNorm2d
    return model
