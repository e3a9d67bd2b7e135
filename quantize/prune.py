"""Structured channel pruning: remove whole conv output channels, and their inputs wherever they are consumed.

The graph comes from torch.export, so every use of a tensor is seen. Channels that must stay aligned form
one group: a conv's outputs, the BatchNorm/PReLU/depthwise conv that follow them, every tensor added to
them (residuals), and the slices of concatenations they end up in. A group is pruned only when every op
touching it is understood; one unknown use (a reshape, pixel_shuffle, a model output, a broadcast
parameter) freezes it. Pruning the same fraction of every free group, the fraction is found by bisection
so that the model's conv MACs fall by the requested share.
"""
from __future__ import annotations

import copy
import operator
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import nn

Layout = list  # [(group id, channels), ...] along dim 1; None when a tensor's channels are not tracked

PASSTHROUGH = {
    "relu", "relu_", "leaky_relu", "leaky_relu_", "elu", "elu_", "sigmoid", "tanh", "hardtanh", "hardtanh_",
    "clamp", "clamp_", "gelu", "silu", "silu_", "hardswish", "hardswish_", "hardsigmoid", "dropout", "clone",
    "contiguous", "alias", "detach", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "upsample_nearest2d",
    "upsample_bilinear2d", "upsample_bicubic2d", "constant_pad_nd", "reflection_pad2d", "replication_pad2d",
    "pad", "neg", "abs", "exp", "sqrt", "rsqrt", "reciprocal", "_to_copy", "to", "type_as",
}
ELEMENTWISE = {"add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "maximum", "minimum", "where"}


# No group loses more than this share of its channels, even when the MACs target asks for it: when
# frozen groups hold most of the MACs, the result says how far it got instead of gutting the free ones.
MIN_KEEP = 0.25
UNIFORM_METHOD = "structured L2-norm channel pruning (no fine-tuning)"


class PruneError(ValueError):
    """The model cannot be pruned as asked; the message says why."""


@dataclass
class Group:
    size: int
    frozen: bool = False
    producers: list[str] = field(default_factory=list)   # conv modules whose outputs are these channels
    members: list[str] = field(default_factory=list)     # BatchNorm / PReLU / depthwise conv over them


@dataclass
class Consumer:
    conv: str
    layout: Layout   # the conv's input channels, segment by segment


@dataclass(frozen=True)
class PruneResult:
    module: nn.Module
    keep_fraction: float
    macs_percent_asked: float
    macs_before: int
    macs_after: int
    channels_before: int
    channels_after: int
    groups_pruned: int
    groups_frozen: int
    kept_outputs: dict[str, torch.Tensor] = field(default_factory=dict)   # conv -> output channels it kept
    method: str = UNIFORM_METHOD

    @property
    def shortfall(self) -> str:
        """'' when the MACs target was met (within 3 points), else what was reached and why."""
        removed = 100 * (1 - self.macs_after / self.macs_before)
        if removed >= self.macs_percent_asked - 3:
            return ""
        return (f"removed {removed:.0f}% of conv MACs, not {self.macs_percent_asked:g}%: the channels it may prune "
                f"({self.groups_pruned} groups, at most {1 - MIN_KEEP:.0%} of each) carry too few of them; "
                f"{self.groups_frozen} groups are fixed by ops that need their width")

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method,
                "macs_percent_asked": self.macs_percent_asked, "keep_fraction": round(self.keep_fraction, 4),
                "conv_macs_before": self.macs_before, "conv_macs_after": self.macs_after,
                "conv_macs_ratio": round(self.macs_after / self.macs_before, 4),
                "prunable_channels_before": self.channels_before, "prunable_channels_after": self.channels_after,
                "groups_pruned": self.groups_pruned, "groups_frozen": self.groups_frozen,
                "shortfall": self.shortfall}


class ChannelGraph:
    """Channel groups of one exported module (union-find over group ids)."""

    def __init__(self, module: nn.Module, example_inputs: Sequence[torch.Tensor]) -> None:
        self.module = module
        self.groups: list[Group] = []
        self.parent: list[int] = []
        self.consumers: list[Consumer] = []
        self.conv_macs: list[tuple[str, Layout, int]] = []    # (conv, input layout, out pixels * kernel area)
        self._conv_group: dict[str, int] = {}
        self._trace(torch.export.export(module, tuple(example_inputs)))

    # ---- union-find ----
    def new_group(self, size: int, frozen: bool = False) -> int:
        self.groups.append(Group(size, frozen))
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a == b:
            return
        ga, gb = self.groups[a], self.groups[b]
        if ga.size != gb.size:
            ga.frozen = True
        self.parent[b] = a
        ga.frozen = ga.frozen or gb.frozen
        ga.producers += gb.producers
        ga.members += gb.members

    def freeze(self, layout: Layout | None) -> None:
        for g, _ in layout or ():
            self.groups[self.find(g)].frozen = True

    def union_layouts(self, layouts: list[Layout]) -> Layout | None:
        first = layouts[0]
        if any([n for _, n in lay] != [n for _, n in first] for lay in layouts):
            for lay in layouts:
                self.freeze(lay)
            return None
        for lay in layouts[1:]:
            for (a, _), (b, _) in zip(first, lay):
                self.union(a, b)
        return first

    # ---- tracing ----
    def _trace(self, ep: torch.export.ExportedProgram) -> None:
        params = dict(ep.graph_signature.inputs_to_parameters)
        user_inputs = set(ep.graph_signature.user_inputs)
        layouts: dict[Any, Layout | None] = {}
        for node in ep.graph.nodes:
            val = node.meta.get("val")
            if node.op == "placeholder":
                layouts[node] = ([(self.new_group(val.shape[1], frozen=True), val.shape[1])]
                                 if node.name in user_inputs and getattr(val, "dim", lambda: 0)() >= 2 else None)
            elif node.op == "output":
                for arg in node.all_input_nodes:
                    self.freeze(layouts.get(arg))
            elif node.op == "call_function":
                layouts[node] = self._visit(node, layouts, params)

    def _module_of(self, node: Any, params: dict[str, str], kind: type) -> tuple[str, nn.Module] | None:
        if not isinstance(node, torch.fx.Node) or node.op != "placeholder" or node.name not in params:
            return None
        owner = params[node.name].rsplit(".", 1)[0]
        module = self.module.get_submodule(owner)
        return (owner, module) if isinstance(module, kind) else None

    def _visit(self, node: torch.fx.Node, layouts: dict, params: dict[str, str]) -> Layout | None:
        name = getattr(node.target, "__name__", str(node.target)).split(".")[0]
        inputs = [layouts.get(a) for a in node.all_input_nodes]
        val = node.meta.get("val")
        channels = val.shape[1] if isinstance(val, torch.Tensor) and val.dim() >= 2 else None
        x = layouts.get(node.args[0]) if node.args and isinstance(node.args[0], torch.fx.Node) else None
        if node.target is operator.getitem:
            return x if node.args[1] == 0 else None
        if name == "conv2d":
            return self._conv(node, x, params, channels)
        if name in ("batch_norm", "_native_batch_norm_legit_no_training", "prelu"):
            kind = nn.PReLU if name == "prelu" else nn.BatchNorm2d
            owner = self._module_of(node.args[1], params, kind)
            if x is not None and len(x) == 1 and owner is not None:
                if kind is nn.PReLU and owner[1].num_parameters == 1:
                    return x
                self.groups[self.find(x[0][0])].members.append(owner[0])
                return x
        elif name in PASSTHROUGH and x is not None:
            others = [lay for a, lay in zip(node.all_input_nodes, inputs) if a is not node.args[0]]
            if not any(others):
                return x
        elif name in ELEMENTWISE and channels is not None:
            tracked, ok = [], True
            for arg in node.all_input_nodes:
                shape = arg.meta["val"].shape if isinstance(arg.meta.get("val"), torch.Tensor) else ()
                if len(shape) >= 2 and shape[1] == channels and layouts.get(arg) is not None:
                    tracked.append(layouts[arg])
                elif len(shape) >= 2 and shape[1] not in (1,):
                    ok = False
                elif 0 < len(shape) < 2 and channels != 1:
                    ok = ok and len(shape) == 0
            if ok and tracked:
                return self.union_layouts(tracked)
        elif name == "cat" and channels is not None:
            dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
            parts = [layouts.get(a) for a in node.args[0]]
            if dim in (1, -3) and all(p is not None for p in parts):
                return [seg for p in parts for seg in p]
        for lay in inputs:   # anything else: its inputs' channels are fixed, its output untracked
            self.freeze(lay)
        return [(self.new_group(channels, frozen=True), channels)] if channels else None

    def _conv(self, node: torch.fx.Node, x: Layout | None, params: dict[str, str], channels: int) -> Layout | None:
        owner = self._module_of(node.args[1], params, nn.Conv2d)
        bias_ok = len(node.args) < 3 or node.args[2] is None or self._module_of(node.args[2], params, nn.Conv2d)
        out_hw = node.meta["val"].shape[2] * node.meta["val"].shape[3]
        if owner is None or x is None or not bias_ok:
            self.freeze(x)
            return [(self.new_group(channels, frozen=True), channels)]
        conv_name, conv = owner
        area = out_hw * conv.kernel_size[0] * conv.kernel_size[1]
        if conv.groups == 1:
            self.consumers.append(Consumer(conv_name, x))
            self.conv_macs.append((conv_name, x, area))
            if conv_name not in self._conv_group:     # a conv applied several times keeps one group
                self._conv_group[conv_name] = self.new_group(channels)
                self.groups[self._conv_group[conv_name]].producers.append(conv_name)
            return [(self._conv_group[conv_name], channels)]
        if conv.groups == conv.in_channels == conv.out_channels and len(x) == 1:   # depthwise: channels pass
            self.groups[self.find(x[0][0])].members.append(conv_name)
            self.conv_macs.append((conv_name, x, -area))      # negative: MACs scale with channels, not in*out
            return x
        self.freeze(x)
        return [(self.new_group(channels, frozen=True), channels)]

    # ---- decisions ----
    def free_roots(self) -> list[int]:
        roots = {self.find(g) for g in range(len(self.groups))}
        return sorted(r for r in roots if not self.groups[r].frozen and self.groups[r].producers
                      and self.groups[r].size > 1)

    def conv_macs_at(self, keep: dict[int, int], only: Sequence[int] | None = None) -> int:
        """Conv MACs with `keep` channels in those groups (others whole); `only` sums just those convs."""
        def kept(layout: Layout) -> int:
            return sum(keep.get(self.find(g), n) for g, n in layout)
        total = 0
        for i in range(len(self.conv_macs)) if only is None else only:
            conv_name, layout, area = self.conv_macs[i]
            conv = self.module.get_submodule(conv_name)
            if area < 0:
                total += -area * kept(layout)
            else:
                out = keep.get(self.find(self._conv_group[conv_name]), conv.out_channels)
                total += area * kept(layout) * out
        return total

    def convs_touching(self) -> dict[int, list[int]]:
        """For each group root, the conv_macs entries whose MACs depend on its width."""
        touching: dict[int, list[int]] = {}
        for i, (conv_name, layout, area) in enumerate(self.conv_macs):
            roots = {self.find(g) for g, _ in layout}
            if area >= 0:
                roots.add(self.find(self._conv_group[conv_name]))
            for r in roots:
                touching.setdefault(r, []).append(i)
        return touching


def filter_importance(module: nn.Module, group: Group) -> torch.Tensor:
    """L2 norm of each output channel's filters, summed over the convs that write the group, scaled by a
    following BatchNorm's gain (a small filter behind a large gain still matters)."""
    score = torch.zeros(group.size)
    for name in dict.fromkeys(group.producers):
        w = module.get_submodule(name).weight.detach()
        score += w.flatten(1).norm(dim=1)
    for name in dict.fromkeys(group.members):
        m = module.get_submodule(name)
        if isinstance(m, nn.BatchNorm2d) and m.affine and m.running_var is not None:
            score *= (m.weight.detach().abs() / torch.sqrt(m.running_var + m.eps))
    return score


def _slice_param(module: nn.Module, attr: str, index: torch.Tensor, dim: int = 0) -> None:
    tensor = getattr(module, attr, None)
    if tensor is None:
        return
    new = tensor.detach().index_select(dim, index).clone()
    if isinstance(tensor, nn.Parameter):
        setattr(module, attr, nn.Parameter(new, requires_grad=tensor.requires_grad))
    else:
        setattr(module, attr, new)


def _apply(module: nn.Module, graph: ChannelGraph, kept: dict[int, torch.Tensor]) -> None:
    for root, index in kept.items():
        group = graph.groups[root]
        for name in dict.fromkeys(group.producers):   # a conv applied several times is listed once per use
            conv = module.get_submodule(name)
            _slice_param(conv, "weight", index)
            _slice_param(conv, "bias", index)
            conv.out_channels = len(index)
        for name in dict.fromkeys(group.members):
            m = module.get_submodule(name)
            if isinstance(m, nn.BatchNorm2d):
                for attr in ("weight", "bias", "running_mean", "running_var"):
                    _slice_param(m, attr, index)
                m.num_features = len(index)
            elif isinstance(m, nn.PReLU):
                _slice_param(m, "weight", index)
                m.num_parameters = len(index)
            elif isinstance(m, nn.Conv2d):   # depthwise
                _slice_param(m, "weight", index)
                _slice_param(m, "bias", index)
                m.in_channels = m.out_channels = m.groups = len(index)
    done: set[str] = set()
    for consumer in graph.consumers:
        if consumer.conv in done:
            continue
        done.add(consumer.conv)
        parts, offset = [], 0
        for g, n in consumer.layout:
            idx = kept.get(graph.find(g))
            parts.append((idx if idx is not None else torch.arange(n)) + offset)
            offset += n
        index = torch.cat(parts)
        if len(index) != offset:
            conv = module.get_submodule(consumer.conv)
            _slice_param(conv, "weight", index, dim=1)
            conv.in_channels = len(index)


# (module, graph, free roots, target conv MACs) -> output channels each root keeps
ChannelChooser = Callable[[nn.Module, "ChannelGraph", list[int], float], dict[int, torch.Tensor]]


def uniform_keep(module: nn.Module, graph: ChannelGraph, roots: list[int], target: float) -> dict[int, torch.Tensor]:
    """The same fraction of every free group (found by bisection on the MACs), the filters of largest norm."""
    def keep_counts(fraction: float) -> dict[int, int]:
        return {r: max(1, round(graph.groups[r].size * fraction)) for r in roots}

    lo, hi = MIN_KEEP, 1.0
    for _ in range(30):
        mid = (lo + hi) / 2
        if graph.conv_macs_at(keep_counts(mid)) > target:
            hi = mid
        else:
            lo = mid
    counts = keep_counts(hi if abs(graph.conv_macs_at(keep_counts(hi)) - target)
                         < abs(graph.conv_macs_at(keep_counts(lo)) - target) else lo)
    return {r: torch.sort(torch.topk(filter_importance(module, graph.groups[r]), counts[r]).indices).values
            for r in roots}


def prune_channels(module: nn.Module, example_inputs: Sequence[torch.Tensor], macs_percent: float,
                   choose: ChannelChooser = uniform_keep, method: str = UNIFORM_METHOD) -> PruneResult:
    """A pruned copy with about macs_percent % fewer conv MACs; the original is left untouched. `choose`
    decides how many channels each group keeps and which (quantize.reconstruct has a data-aware chooser)."""
    pruned = copy.deepcopy(module).eval()
    graph = ChannelGraph(pruned, example_inputs)
    roots = graph.free_roots()
    if not roots:
        raise PruneError("no conv channels can be pruned: every group feeds an op that fixes its width "
                         "(reshape, pixel_shuffle, a model output)")
    before = graph.conv_macs_at({})
    kept = choose(pruned, graph, roots, before * (1 - macs_percent / 100))
    counts = {r: len(index) for r, index in kept.items()}
    with torch.no_grad():
        reference = [o.shape for o in _as_tuple(module(*example_inputs))]
        _apply(pruned, graph, kept)
        shapes = [o.shape for o in _as_tuple(pruned(*example_inputs))]
    if shapes != reference:
        raise PruneError(f"pruning changed the output shapes {reference} -> {shapes}")
    sizes = sum(graph.groups[r].size for r in roots)
    return PruneResult(pruned, sum(counts.values()) / sizes, macs_percent, before, graph.conv_macs_at(counts),
                       sizes, sum(counts.values()), len(roots),
                       sum(1 for g in range(len(graph.groups)) if graph.find(g) == g and graph.groups[g].frozen),
                       {name: index for root, index in kept.items() for name in graph.groups[root].producers},
                       method)


def _as_tuple(out: Any) -> tuple:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)
