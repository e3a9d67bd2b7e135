"""Data-aware pruning for prune<N>+recover: channel choice from activations and the least-squares refit."""
from __future__ import annotations

import torch
from torch import nn

from edgeport.quantize.prune import prune_channels
from edgeport.quantize.reconstruct import activation_keep, pivoted_order, refit_convs


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    span = float(a.max() - a.min())
    return float(10 * torch.log10(span ** 2 / ((a - b) ** 2).mean()))


def _photos(n: int = 4, size: int = 24) -> list[tuple[torch.Tensor]]:
    g = torch.Generator().manual_seed(3)
    ramp = torch.linspace(0, 1, size).view(1, 1, 1, size).expand(1, 3, size, size)
    return [((ramp + 0.4 * torch.rand(1, 3, size, size, generator=g)).clamp(0, 1),) for _ in range(n)]


def _redundant_net() -> nn.Module:
    """16 hidden channels of which 6 are dead after ReLU (bias far below zero, weights as large as any)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(16, 3, 3, padding=1)).eval()
    with torch.no_grad():
        first = net[0]
        first.bias[10:] = -100.0                          # dead on every photo
    return net


def test_pivoted_order_finds_the_dependent_and_dead_channels_last():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 500, generator=g, dtype=torch.float64)
    channels = torch.cat([x, x[:1] + x[1:2], torch.zeros(1, 500, dtype=torch.float64)])   # 5 channels, rank 3
    order, unexplained = pivoted_order(torch.cov(channels))
    assert set(order[:3].tolist()) in ({0, 1, 2}, {0, 2, 3}, {1, 2, 3})   # any three spanning the rank-3 space
    assert order[-1].item() == 4                                            # the dead channel comes last
    assert float(unexplained[3]) < 1e-9 * float(unexplained[0]) and len(unexplained) == 6


def test_activation_pruning_removes_the_dead_channels_that_l2_norms_keep():
    net, photos = _redundant_net(), _photos()
    uniform = prune_channels(net, photos[0], 30)
    aware = prune_channels(net, photos[0], 30, activation_keep(photos))
    assert aware.macs_after <= aware.macs_before * 0.73 and aware.kept_outputs
    assert aware.kept_outputs["0"].tolist() == list(range(10))    # exactly the six dead channels go
    with torch.no_grad():
        want = net(*photos[1])
        assert _psnr(want, aware.module(*photos[1])) > _psnr(want, uniform.module(*photos[1])) + 10


def test_refit_recovers_what_pruning_lost_and_leaves_an_unpruned_net_as_it_is():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 3, 3, padding=1)).eval()
    photos = _photos(6)
    pruned = prune_channels(net, photos[0], 40)
    with torch.no_grad():
        want, before = net(*photos[5]), pruned.module(*photos[5])
    refit = refit_convs(net, pruned.module, pruned.kept_outputs, photos[:5])   # photo 5 is held out
    with torch.no_grad():
        after = refit(*photos[5])
    assert _psnr(want, after) > _psnr(want, before) + 6, (_psnr(want, before), _psnr(want, after))
    same = refit_convs(net, __import__("copy").deepcopy(net), {}, photos[:5])
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(same.parameters(), net.parameters()))
