"""Recovery after structured pruning (prune<N>+recover): distil the pruned model from the unpruned one.

A short CPU fine-tune: the pruned student learns to reproduce the teacher's outputs on the calibration photos
(and the team's --photos), taken as random crops with flips, with BatchNorm statistics frozen (a handful of
photos would make them noise). It stops at a target PSNR against the teacher on the full-size photos, a step
budget or a time budget, whichever comes first, and says which. Only training-free parity samples judge the
result: the export's parity photos are never trained on.
"""
from __future__ import annotations

from edgeport.runtimes.json_numbers import db_for_json

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import nn

TARGET_DB = 35.0        # stop when the worst training photo is this close to the teacher
MAX_STEPS = 600
MAX_SECONDS = 480.0
CROP = 192              # training crop (fully convolutional nets train on crops; smaller inputs are used whole)
LEARNING_RATE = 1e-4     # the student starts close (least-squares refit); 1e-3 undid a 27 dB start in 25 steps
CHECK_EVERY = 25


@dataclass(frozen=True)
class RecoveryResult:
    module: nn.Module
    steps: int
    seconds: float
    stopped_because: str
    train_db_before: float
    train_db_after: float
    photos: int
    history: tuple[tuple[int, float], ...] = field(default_factory=tuple)
    teacher: str = "the unpruned model"
    crop: bool = True

    def to_dict(self) -> dict[str, Any]:
        views = "random crops and flips" if self.crop else "flips"
        return {"method": f"distillation from {self.teacher} (MSE on its outputs), Adam with cosine decay, "
                          f"BatchNorm statistics frozen, {views} of the training photos",
                "steps": self.steps, "seconds": round(self.seconds, 1), "stopped_because": self.stopped_because,
                "train_photos": self.photos, "train_db_before": db_for_json(self.train_db_before),
                "train_db_after": db_for_json(self.train_db_after),
                "history": [[s, db_for_json(d)] for s, d in self.history]}



def _outputs(module: nn.Module, batch: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    out = module(*batch)
    return list(out) if isinstance(out, (tuple, list)) else [out]


def worst_db(student: nn.Module, teacher_outputs: list[list[torch.Tensor]], batches: list[tuple]) -> float:
    """Worst PSNR over the photos and outputs, each over the teacher's range."""
    worst = math.inf
    with torch.no_grad():
        for batch, wanted in zip(batches, teacher_outputs):
            for got, ref in zip(_outputs(student, batch), wanted):
                span = float(ref.max() - ref.min()) or 1.0
                mse = float(((got - ref) ** 2).mean())
                worst = min(worst, 10 * math.log10(span ** 2 / mse) if mse > 0 else math.inf)
    return worst


def _crop(batch: tuple, generator: torch.Generator) -> tuple:
    """One random crop (the same window in every 4-D input) and a random horizontal flip."""
    sizes = {tuple(t.shape[-2:]) for t in batch if t.dim() == 4}
    h, w = min(s[0] for s in sizes), min(s[1] for s in sizes)
    ch, cw = min(h, CROP), min(w, CROP)
    top = int(torch.randint(0, h - ch + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - cw + 1, (1,), generator=generator))
    flip = bool(torch.randint(0, 2, (1,), generator=generator))
    out = []
    for t in batch:
        if t.dim() == 4:
            t = t[..., top:top + ch, left:left + cw]
            t = t.flip(-1) if flip else t
        out.append(t.contiguous())
    return tuple(out)


def frozen_norms(module: nn.Module, training: bool) -> None:
    """Train mode with every BatchNorm in eval mode (its statistics frozen); or eval mode."""
    module.train(training)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def _flip(batch: tuple, generator: torch.Generator) -> tuple:
    """A random horizontal flip of the whole input (a fixed-shape program cannot take crops)."""
    if bool(torch.randint(0, 2, (1,), generator=generator)):
        return tuple(t.flip(-1).contiguous() if t.dim() == 4 else t for t in batch)
    return batch


def distil(student: nn.Module, teacher: nn.Module, batches: list[tuple], target_db: float = TARGET_DB,
           max_steps: int = MAX_STEPS, max_seconds: float = MAX_SECONDS,
           report: Callable[[str], None] = lambda _: None, seed: int = 0, crop: bool = True,
           set_mode: Callable[[nn.Module, bool], None] = frozen_norms,
           learning_rate: float = LEARNING_RATE, teacher_name: str = "the unpruned model") -> RecoveryResult:
    """The student fine-tuned towards the teacher (its best check is kept); the teacher is not changed.
    crop=False trains on the whole inputs (flipped), for programs exported at one shape; set_mode switches the
    student between training and evaluation (a PT2E program needs torchao's own switch)."""
    if not batches:
        raise ValueError("recovery needs training photos (the calibration set)")
    student = copy.deepcopy(student)
    teacher = teacher.eval()
    with torch.no_grad():
        wanted = [[o.detach() for o in _outputs(teacher, b)] for b in batches]
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam([p for p in student.parameters() if p.requires_grad], lr=learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max_steps)
    set_mode(student, False)
    before = worst_db(student, wanted, batches)
    history, current, started, step, why = [(0, before)], before, time.perf_counter(), 0, ""
    best = (before, copy.deepcopy(student.state_dict()))
    while not why:
        if current >= target_db:
            why = f"reached {target_db:g} dB"
            break
        set_mode(student, True)
        crops = [_crop(b, generator) if crop else _flip(b, generator) for b in batches]
        with torch.no_grad():
            targets = [_outputs(teacher, c) for c in crops]
        optimizer.zero_grad()
        loss = sum(sum(nn.functional.mse_loss(g, t) for g, t in zip(_outputs(student, c), ts))
                   for c, ts in zip(crops, targets)) / len(crops)
        loss.backward()
        optimizer.step()
        schedule.step()
        step += 1
        elapsed = time.perf_counter() - started
        if step % CHECK_EVERY == 0 or step == max_steps or elapsed > max_seconds:
            set_mode(student, False)
            current = worst_db(student, wanted, batches)
            history.append((step, current))
            if current > best[0]:
                best = (current, copy.deepcopy(student.state_dict()))
            report(f"fine-tune: step {step}/{max_steps}, {current:.1f} dB against the teacher "
                   f"(target {target_db:g}), {elapsed:.0f} s")
        if step >= max_steps:
            why = why or f"step budget ({max_steps})"
        elif elapsed > max_seconds:
            why = why or f"time budget ({max_seconds:.0f} s)"
    student.load_state_dict(best[1])     # the best check, not the last step
    set_mode(student, False)
    return RecoveryResult(student, step, time.perf_counter() - started, why, before, best[0], len(batches),
                          tuple(history), teacher_name, crop)
