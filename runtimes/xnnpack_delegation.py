"""Which ops of a .tflite XNNPACK takes, read from the interpreter after it applied the delegate.

The interpreter lists every original op plus one DELEGATE node per partition. An op outside every
partition is found from the tensors: nothing a partition computes leaves it except as that DELEGATE node's
output, so an op whose outputs are not delegate outputs but feed a partition (or the model's outputs, or
another such op) ran on the interpreter's own kernels, splitting the graph.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ai_edge_litert.interpreter import Interpreter


@dataclass(frozen=True)
class Delegation:
    partitions: int
    ops: int
    undelegated: dict[str, int] = field(default_factory=dict)   # op type -> count

    @property
    def split(self) -> bool:
        return self.partitions != 1

    def to_dict(self) -> dict[str, Any]:
        return {"xnnpack_partitions": self.partitions, "ops": self.ops, "undelegated_ops": dict(self.undelegated)}

    def describe(self) -> str:
        if not self.partitions:
            return "XNNPACK took no op: the whole graph runs on TFLite's reference kernels"
        ops = ", ".join(f"{name} x{n}" for name, n in sorted(self.undelegated.items(), key=lambda kv: -kv[1]))
        if self.partitions == 1:
            return "XNNPACK runs the graph in one partition" + (f"; left on TFLite's own kernels: {ops}" if ops else "")
        return (f"graph split into {self.partitions} XNNPACK partitions by ops it does not take: "
                f"{ops or 'unknown ops'} (each split costs a copy and runs those ops on slower reference kernels)")


def undelegated_ops(ops: list[dict[str, Any]], model_outputs: set[int]) -> Counter:
    delegates = [o for o in ops if o["op_name"] == "DELEGATE"]
    originals = [o for o in ops if o["op_name"] != "DELEGATE"]
    made_by_delegate = {int(t) for d in delegates for t in d["outputs"]}
    fed_to_delegate = {int(t) for d in delegates for t in d["inputs"]}
    if not delegates:
        return Counter(o["op_name"] for o in originals)
    outside: set[int] = set()
    consumers: dict[int, list[int]] = {}
    for i, op in enumerate(originals):
        for t in op["inputs"]:
            consumers.setdefault(int(t), []).append(i)
    changed = True
    while changed:
        changed = False
        for i, op in enumerate(originals):
            outs = {int(t) for t in op["outputs"]}
            if i in outside or outs & made_by_delegate:
                continue
            if outs & (fed_to_delegate | model_outputs) or any(c in outside for t in outs for c in consumers.get(t, ())):
                outside.add(i)
                changed = True
    return Counter(originals[i]["op_name"] for i in outside)


def delegation_of(interp: Interpreter) -> Delegation:
    """For an interpreter that has applied its delegates (allocate_tensors done)."""
    ops = interp._get_ops_details()
    outputs = {int(d["index"]) for d in interp.get_output_details()}
    partitions = sum(o["op_name"] == "DELEGATE" for o in ops)
    return Delegation(partitions, len(ops) - partitions, dict(undelegated_ops(ops, outputs)))
