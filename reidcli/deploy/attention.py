"""Export timm's ViT attention as onnxruntime's fused `com.microsoft.Attention` operator.

timm's attention calls `F.scaled_dot_product_attention`, which the TorchScript exporter writes
as about twenty nodes per block: the qkv MatMul and bias Add, Reshape, Transpose, Split,
Squeeze, the scale computed from the shape at run time and multiplied into q and k, MatMul,
Softmax, MatMul, Transpose, Reshape. Neither onnxruntime's graph optimiser nor its transformer
optimiser recognises that pattern, so onnxruntime runs those nodes one by one, each a pass over
memory and a synchronisation of its thread pool. Its contrib `Attention` operator takes the
block's input, the packed qkv weight and bias, and computes projection, softmax attention and
the head merge in one kernel, parallel over batch x heads (CPU and CUDA providers).

The cost is portability: `com.microsoft` operators run in onnxruntime only, so
`reid export --portable` keeps the standard operators (TensorRT, OpenVINO, ...).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn import functional as F

DOMAIN = "com.microsoft"
DOMAIN_VERSION = 1


class _FusedAttention(torch.autograd.Function):
    """Packed-qkv multi-head self-attention; exports as one `com.microsoft.Attention` node."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,  # type: ignore[override]
                heads: int, scale: float) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = F.linear(x, weight, bias).reshape(b, n, 3, heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, scale=scale)
        return out.transpose(1, 2).reshape(b, n, -1)

    @staticmethod
    def symbolic(g, x, weight, bias, heads: int, scale: float):  # type: ignore[no-untyped-def]
        # The operator takes the weight as (in, 3 * hidden); torch stores (3 * hidden, in).
        # The Transpose of an initializer is folded away by the exporter's constant folding.
        packed = g.op("Transpose", weight, perm_i=[1, 0])
        out = g.op(f"{DOMAIN}::Attention", x, packed, bias, num_heads_i=heads, scale_f=scale)
        out.setType(x.type())
        return out


def _fusable(module: nn.Module) -> bool:
    """timm's plain `Attention` (no q/k norm, no output norm or gate), whose forward is exactly
    linear -> scaled dot-product attention over heads -> proj."""
    # Where every timm 1.x defines or re-exports the ViT attention class.
    from timm.models.vision_transformer import Attention

    if type(module) is not Attention:
        return False
    plain = all(isinstance(getattr(module, name, nn.Identity()), nn.Identity)
                for name in ("q_norm", "k_norm", "norm"))
    qkv = module.qkv
    return (plain and getattr(module, "gate", None) is None and isinstance(qkv, nn.Linear)
            and qkv.out_features == 3 * module.num_heads * module.head_dim)


def _fused_forward(module: nn.Module, original):  # type: ignore[no-untyped-def]
    def forward(x: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        # A mask or causal flag (newer timm's optional arguments) is not this function.
        if module.training or any(a is not None and a is not False
                                  for a in (*args, *kwargs.values())):
            return original(x, *args, **kwargs)
        qkv = module.qkv
        bias = qkv.bias if qkv.bias is not None else x.new_zeros(qkv.out_features)
        out = _FusedAttention.apply(x, qkv.weight, bias, module.num_heads, float(module.scale))
        return module.proj_drop(module.proj(out))

    return forward


@contextlib.contextmanager
def onnxruntime_attention(model: nn.Module) -> Iterator[int]:
    """While active, the model's fusable attention blocks export as `com.microsoft.Attention`
    (they compute the same function in torch). Yields how many blocks were replaced."""
    patched = [m for m in model.modules() if _fusable(m)]
    for m in patched:
        m.forward = _fused_forward(m, m.forward)
    try:
        yield len(patched)
    finally:
        for m in patched:
            del m.forward  # back to the class's forward
