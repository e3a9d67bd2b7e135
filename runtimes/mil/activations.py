"""MIL activations, comparisons, logic and normalisations, one function an op; semantics follow coremltools'
op definitions (mil/ops/defs/iOS15: activation.py, elementwise_binary.py, elementwise_unary.py,
control_flow.py's select, normalization.py)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from edgeport.runtimes.mil.registry import MilEvalError, OpArgs, register_mil_op

_GELU_MODES = {"EXACT": "none", "TANH_APPROXIMATION": "tanh"}


@register_mil_op("gelu")
def gelu(a: OpArgs) -> torch.Tensor:
    mode = a.value("mode", "EXACT")
    x = a.tensor("x")
    if mode == "SIGMOID_APPROXIMATION":
        return x * torch.sigmoid(1.702 * x)
    if mode not in _GELU_MODES:
        raise MilEvalError(f"gelu mode {mode!r} is not implemented")
    return F.gelu(x, approximate=_GELU_MODES[mode])


@register_mil_op("sigmoid_hard")
def sigmoid_hard(a: OpArgs) -> torch.Tensor:
    """min(max(alpha * x + beta, 0), 1); coremltools' defaults alpha 0.2, beta 0.5."""
    return torch.clamp(a.value("alpha", 0.2) * a.tensor("x") + a.value("beta", 0.5), 0.0, 1.0)


@register_mil_op("thresholded_relu")
def thresholded_relu(a: OpArgs) -> torch.Tensor:
    x = a.tensor("x")
    return torch.where(x > a.value("alpha", 1.0), x, torch.zeros_like(x))


_COMPARE = {"equal": torch.eq, "not_equal": torch.ne, "greater": torch.gt, "greater_equal": torch.ge,
            "less": torch.lt, "less_equal": torch.le}
for _name, _fn in _COMPARE.items():
    register_mil_op(_name)(lambda a, fn=_fn: fn(a.tensor("x"), a.tensor("y")))

_LOGIC = {"logical_and": torch.logical_and, "logical_or": torch.logical_or, "logical_xor": torch.logical_xor}
for _name, _fn in _LOGIC.items():
    register_mil_op(_name)(lambda a, fn=_fn: fn(a.tensor("x").bool(), a.tensor("y").bool()))
register_mil_op("logical_not")(lambda a: torch.logical_not(a.tensor("x").bool()))


@register_mil_op("select")
def select(a: OpArgs) -> torch.Tensor:
    """cond ? a : b, broadcast; the result takes the type of a and b."""
    return torch.where(a.tensor("cond").bool(), a.tensor("a"), a.tensor("b"))


def _normalised(x: torch.Tensor, axes: list[int], epsilon: float) -> torch.Tensor:
    """(x - mean) / sqrt(var + epsilon) over axes, with the biased variance, as Core ML's norms compute it."""
    mean = x.mean(dim=axes, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=axes, keepdim=True)
    return (x - mean) / torch.sqrt(var + epsilon)


@register_mil_op("layer_norm")
def layer_norm(a: OpArgs) -> torch.Tensor:
    """(x - mean) / sqrt(var + epsilon) over `axes` (biased variance), then gamma and beta (shaped as those axes)."""
    x = a.tensor("x")
    axes = [ax % x.dim() for ax in (a.value("axes") or list(range(x.dim())))]
    y = _normalised(x, axes, a.value("epsilon", 1e-5))
    if a.has("gamma"):
        y = y * a.tensor("gamma")
    if a.has("beta"):
        y = y + a.tensor("beta")
    return y


@register_mil_op("instance_norm")
def instance_norm(a: OpArgs) -> torch.Tensor:
    """Per sample and channel over the spatial axes of an NCHW (or NC...) tensor; gamma and beta per channel."""
    x = a.tensor("x")
    shape = (1, -1) + (1,) * (x.dim() - 2)
    gamma = a.tensor("gamma").reshape(shape) if a.has("gamma") else None
    beta = a.tensor("beta").reshape(shape) if a.has("beta") else None
    y = _normalised(x, list(range(2, x.dim())), a.value("epsilon", 1e-5))
    return y * gamma + beta if gamma is not None and beta is not None else y


@register_mil_op("linear_activation")
def linear_activation(a: OpArgs) -> torch.Tensor:
    return a.value("alpha") * a.tensor("x") + a.value("beta", 0.0)


@register_mil_op("threshold")
def threshold(a: OpArgs) -> torch.Tensor:
    """max(x, alpha): Core ML's threshold is a floor, not PyTorch's F.threshold."""
    return torch.clamp(a.tensor("x"), min=a.value("alpha"))


def _per_channel(a: OpArgs, key: str, x: torch.Tensor) -> torch.Tensor:
    return a.tensor(key).reshape((1, -1) + (1,) * (x.dim() - 2))


@register_mil_op("softplus_parametric")
def softplus_parametric(a: OpArgs) -> torch.Tensor:
    """alpha_c * log(1 + exp(beta_c * x)) per channel (axis 1)."""
    x = a.tensor("x")
    return _per_channel(a, "alpha", x) * F.softplus(_per_channel(a, "beta", x) * x)


@register_mil_op("clamped_relu")
def clamped_relu(a: OpArgs) -> torch.Tensor:
    """min(beta, x) for x >= 0, min(beta, alpha * x) below."""
    x, alpha, beta = a.tensor("x"), a.value("alpha", 0.0), a.value("beta", 6.0)
    return torch.clamp(torch.where(x >= 0, x, alpha * x), max=beta)


@register_mil_op("scaled_tanh")
def scaled_tanh(a: OpArgs) -> torch.Tensor:
    return a.value("alpha", 1.0) * torch.tanh(a.value("beta", 1.0) * a.tensor("x"))
