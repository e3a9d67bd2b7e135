"""Data-aware structured pruning for prune<N>+recover: what the activations say to keep, and a closed-form refit.

Uniform L2-norm pruning treats a 256-channel block whose activations span 30 dimensions like an 8-channel head
where every channel carries information; on the segmenter the second costs 17 dB. Here the calibration photos
decide instead:
- which channels: a greedy subset that best explains the rest linearly (pivoted Cholesky of the activations'
  covariance, each channel weighted by how strongly its consumers read it);
- how many per group: channels are removed where the share of the group's (weighted) variance left unexplained
  grows least per conv MAC saved, so redundant wide groups give way before narrow informative ones;
- then each conv is refit by least squares, in forward order, so its output from the pruned model's inputs
  matches the unpruned conv's output (He et al. 2017, "Channel Pruning for Accelerating Very Deep Neural
  Networks"), which distillation only has to polish.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgeport.quantize.prune import MIN_KEEP, ChannelGraph, filter_importance

SAMPLES_PER_BATCH = 4096      # activation positions drawn per photo (covariances and least squares)
STEPS_PER_GROUP = 32          # allocation granularity: a group loses at most 1/32 of its channels per step
RIDGE = 1e-4                  # least-squares regularisation, relative to the mean input energy
METHOD = ("structured channel pruning chosen from the calibration activations (pivoted-Cholesky subset, "
          "allocation by unexplained variance per MAC), each conv refit by least squares")


def _hooked_forward(model: nn.Module, handles: list, batches: Sequence[tuple]) -> None:
    """Forward passes without gradients with the hooks in `handles`, removed afterwards whatever happens."""
    try:
        with torch.no_grad():
            for batch in batches:
                model(*batch)
    finally:
        for h in handles:
            h.remove()


def _positions(count: int, wanted: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, count, (min(wanted, count),), generator=generator)


def _consumer_weights(module: nn.Module, conv: str) -> torch.Tensor:
    """How strongly a conv reads each input channel (norm of its weights over outputs and kernel)."""
    w = module.get_submodule(conv).weight.detach()
    return w.transpose(0, 1).flatten(1).norm(dim=1)


def channel_covariances(module: nn.Module, graph: ChannelGraph, roots: list[int],
                        batches: Sequence[tuple]) -> dict[int, torch.Tensor]:
    """Per free group, the covariance of its channels where convs read them, scaled by the readers' weights."""
    wanted = set(roots)
    calls: dict[str, list] = {}
    for consumer in graph.consumers:
        calls.setdefault(consumer.conv, []).append(consumer.layout)
    sums: dict[int, list] = {}
    generator = torch.Generator().manual_seed(0)
    seen: dict[str, int] = {}

    def pre_hook(name: str) -> Callable:
        def hook(_: nn.Module, args: tuple) -> None:
            layouts = calls[name]
            layout = layouts[seen.get(name, 0) % len(layouts)]
            seen[name] = seen.get(name, 0) + 1
            x = args[0].detach().flatten(2)[0]                       # (channels, positions)
            x = x[:, _positions(x.shape[1], SAMPLES_PER_BATCH, generator)].double()
            scale = _consumer_weights(module, name).double()
            offset = 0
            for g, n in layout:
                root = graph.find(g)
                if root in wanted:
                    part = x[offset:offset + n] * scale[offset:offset + n, None]
                    acc = sums.setdefault(root, [torch.zeros(n, n, dtype=torch.float64),
                                                 torch.zeros(n, dtype=torch.float64), 0])
                    acc[0] += part @ part.T
                    acc[1] += part.sum(1)
                    acc[2] += part.shape[1]
                offset += n
        return hook

    handles = [module.get_submodule(name).register_forward_pre_hook(pre_hook(name)) for name in calls]
    _hooked_forward(module, handles, batches)
    return {r: (s / n - torch.outer(m / n, m / n)) for r, (s, m, n) in sums.items() if n}


def pivoted_order(covariance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Channels in greedy order (each the one least explained by those before it) and, for k = 0..C, the
    variance the first k leave unexplained."""
    c = covariance.shape[0]
    residual = covariance.diagonal().clone().clamp(min=0)
    factor = torch.zeros(c, c, dtype=covariance.dtype)
    order: list[int] = []
    left = [float(residual.sum())]
    free = torch.ones(c, dtype=torch.bool)
    for k in range(c):
        j = int(torch.where(free, residual, torch.full_like(residual, -1.0)).argmax())
        pivot = float(residual[j])
        order.append(j)
        free[j] = False
        if pivot > 1e-12 * max(left[0], 1e-30):
            column = (covariance[:, j] - factor[:, :k] @ factor[j, :k]) / pivot ** 0.5
            factor[:, k] = column
            residual = (residual - column ** 2).clamp(min=0)
        residual[j] = 0.0
        left.append(float(residual[free].sum()))
    return torch.tensor(order), torch.tensor(left)


def _allocate(graph: ChannelGraph, roots: list[int], unexplained: dict[int, torch.Tensor],
              target: float) -> dict[int, int]:
    """Keep counts: repeatedly take a step of channels from the group whose unexplained share grows least per
    MAC saved, until the MACs reach the target (no group below MIN_KEEP of its channels)."""
    counts = {r: graph.groups[r].size for r in roots}
    floor = {r: max(1, round(graph.groups[r].size * MIN_KEEP)) for r in roots}
    touching = graph.convs_touching()
    macs = graph.conv_macs_at(counts)
    while macs > target:
        best, best_cost = None, float("inf")
        for r in roots:
            step = min(max(1, graph.groups[r].size // STEPS_PER_GROUP), counts[r] - floor[r])
            if step <= 0:
                continue
            curve = unexplained[r]
            share = float((curve[counts[r] - step] - curve[counts[r]]) / max(float(curve[0]), 1e-30))
            near = touching.get(r, [])
            saved = graph.conv_macs_at(counts, near) - graph.conv_macs_at({**counts, r: counts[r] - step}, near)
            cost = share / max(saved, 1)
            if cost < best_cost:
                best, best_cost = (r, step, saved), cost
        if best is None:
            break
        counts[best[0]] -= best[1]
        macs -= best[2]
    return counts


def _by_filter_norm(module: nn.Module, graph: ChannelGraph, root: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A group no conv reads (so no activations to judge): filters by norm, each channel an equal share."""
    size = graph.groups[root].size
    order = torch.argsort(filter_importance(module, graph.groups[root]), descending=True)
    return order, torch.linspace(1.0, 0.0, size + 1, dtype=torch.float64)


def activation_keep(batches: Sequence[tuple]) -> Callable:
    """A prune_channels chooser driven by the activations on `batches`."""
    def choose(module: nn.Module, graph: ChannelGraph, roots: list[int], target: float) -> dict[int, torch.Tensor]:
        covariances = channel_covariances(module, graph, roots, batches)
        ranked = {r: pivoted_order(covariances[r]) if r in covariances else _by_filter_norm(module, graph, r)
                  for r in roots}
        counts = _allocate(graph, roots, {r: curve for r, (_, curve) in ranked.items()}, target)
        return {r: torch.sort(ranked[r][0][:counts[r]]).values for r in roots}
    return choose


def _stacked(batches: Sequence[tuple]) -> tuple:
    """The batches as one (those shaped like the first), so one forward pass sees every photo."""
    first = [t.shape for t in batches[0]]
    same = [b for b in batches if [t.shape for t in b] == first]
    return tuple(torch.cat(parts, 0) for parts in zip(*same))


def _rows(x: torch.Tensor, conv: nn.Conv2d, pick: torch.Tensor) -> torch.Tensor:
    """The conv's input patches at the picked output positions (over batch x positions), one row each."""
    cols = F.unfold(x, conv.kernel_size, conv.dilation, conv.padding, conv.stride)   # (N, C*k*k, L)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])[pick].double()


def _targets(original: nn.Module, names: list[str], stacked: tuple,
             generator: torch.Generator) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per conv, sampled output positions and the unpruned conv's outputs there (first call of each)."""
    found: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def hook(name: str) -> Callable:
        def keep(_: nn.Module, __: tuple, out: torch.Tensor) -> None:
            if name not in found:
                flat = out.flatten(2).transpose(1, 2).reshape(-1, out.shape[1])
                pick = _positions(flat.shape[0], SAMPLES_PER_BATCH * out.shape[0], generator)
                found[name] = (pick, flat[pick].double())
        return keep

    handles = [original.get_submodule(n).register_forward_hook(hook(n)) for n in names]
    _hooked_forward(original, handles, [stacked])
    return found


def _solve(conv: nn.Conv2d, rows: torch.Tensor, target: torch.Tensor) -> None:
    """Ridge least squares for the change to the conv's weights (and bias) that maps rows closest to target:
    the ridge pulls towards the current weights, so a conv whose inputs lost nothing stays as it is."""
    with_bias = conv.bias is not None
    a = torch.cat([rows, torch.ones(len(rows), 1, dtype=rows.dtype)], 1) if with_bias else rows
    current = conv.weight.detach().flatten(1).double()
    if with_bias:
        current = torch.cat([current, conv.bias.detach().double()[:, None]], 1)
    gram = a.T @ a
    ridge = RIDGE * float(gram.diagonal().mean()) + 1e-12
    change = torch.linalg.solve(gram + ridge * torch.eye(len(gram), dtype=gram.dtype),
                                a.T @ (target - a @ current.T)).T
    solution = (current + change).float()
    with torch.no_grad():
        conv.weight.copy_(solution[:, :conv.weight[0].numel()].reshape(conv.weight.shape))
        if with_bias:
            conv.bias.copy_(solution[:, -1])


def refit_convs(original: nn.Module, pruned: nn.Module, kept_outputs: dict[str, torch.Tensor],
                batches: Sequence[tuple], report: Callable[[str], None] = lambda _: None) -> nn.Module:
    """`pruned` with each dense conv's weights and bias solved so that on the batches its output, from the
    pruned model's own inputs, is closest to the unpruned conv's kept outputs. One forward pass: each conv is
    solved as the pass reaches it, so it also absorbs what the convs before it could not recover. Changes and
    returns `pruned`."""
    names = [n for n, m in pruned.named_modules() if isinstance(m, nn.Conv2d) and m.groups == 1]
    stacked = _stacked(batches)
    targets = _targets(original, names, stacked, torch.Generator().manual_seed(0))
    done: list[str] = []

    def hook(name: str) -> Callable:
        def solve(conv: nn.Module, args: tuple) -> None:
            if name in done or name not in targets:
                return
            pick, target = targets[name]
            if name in kept_outputs:
                target = target[:, kept_outputs[name]]
            _solve(conv, _rows(args[0], conv, pick), target)
            done.append(name)
            if len(done) % 10 == 0 or len(done) == len(targets):
                report(f"least-squares refit: {len(done)}/{len(targets)} convs")
        return solve

    handles = [pruned.get_submodule(n).register_forward_pre_hook(hook(n)) for n in names]
    _hooked_forward(pruned, handles, [stacked])
    return pruned
