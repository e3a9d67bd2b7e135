"""Checkpoint reading that never runs code: weights_only torch.load or safetensors, strict key matching."""
from __future__ import annotations

import pickle
import pickletools
import zipfile
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

from edgeport.models.errors import CheckpointError


def read_checkpoint(path: Path) -> Any:
    """The raw object in a .pth/.pt/.ckpt (weights_only) or .safetensors file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"weights file not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"weights path is not a file: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"weights file is empty: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types for every kind of damage
            raise CheckpointError(f"weights file {path} is not a readable safetensors file ({_short(exc)})") from None
    if not _looks_like_torch_save(path):
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (neither torch.save's zip archive nor a pickle); "
                              "give a .pth/.pt state_dict or a .safetensors file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = _named_globals(path) or _first_line_with(exc, "Unsupported global")
        if unsafe:
            raise CheckpointError(
                f"refused to load {path}: it holds objects that would run code when unpickled ({unsafe}); "
                "save a plain state_dict, or convert it to .safetensors"
            ) from None
        raise CheckpointError(f"weights file {path} is not a readable PyTorch checkpoint: the pickle is corrupt "
                              f"({_first_line_with(exc, 'Unsupported operand') or _short(exc)})") from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CheckpointError(
            f"weights file {path} is truncated or corrupt ({_short(exc)}); download it again"
        ) from None


def _named_globals(path: Path) -> str:
    """The callables a checkpoint's pickle names beyond torch's own rebuild functions, read opcode by opcode
    without running it ('' if none, or if the stream is not a pickle). A zip (torch.save) holds it as
    data.pkl; a plain pickle is the file (torch's weights-only reader stops at protocol 4's first frame)."""
    names, strings = [], []
    try:
        for op, arg, _ in pickletools.genops(_pickle_bytes(path)):
            if op.name == "GLOBAL":
                names.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                names.append(f"{strings[-2]}.{strings[-1]}")
            elif "UNICODE" in op.name:
                strings.append(str(arg))
    except Exception:  # noqa: BLE001  (not a pickle stream: the caller says it is corrupt)
        return ""
    foreign = sorted({n for n in names if not n.startswith(("torch.", "collections.OrderedDict"))})
    return f"it calls {', '.join(foreign[:3])}" if foreign else ""


def _pickle_bytes(path: Path) -> bytes:
    if not zipfile.is_zipfile(path):
        return path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        members = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        return zf.read(members[0]) if members else b""


def _looks_like_torch_save(path: Path) -> bool:
    """torch.save writes a zip archive (since 1.6) or, in the legacy format, a pickle (PROTO opcode first)."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    return head.startswith(b"PK") or head[:1] == b"\x80"


def unwrap_state_dict(obj: Any, prefer: Iterable[str] = ()) -> dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint: the first preferred key present, else the object itself."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint holds a {type(obj).__name__}, not a state dict")
    for key in prefer:
        if key in obj:
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError("checkpoint holds no tensors")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        wrappers = ", ".join(repr(k) for k in bad[:3])
        hint = f" (expected one of {', '.join(prefer)})" if prefer else ""
        raise CheckpointError(f"checkpoint entries {wrappers} are not tensors{hint}")
    return dict(obj)


def load_strict(module: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load with every key and shape matching; name the first mismatches when they don't."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing {_some(missing)}")
    if unexpected:
        problems.append(f"unexpected {_some(unexpected)}")
    if shapes:
        problems.append(f"shape mismatch {_some(shapes)} (checkpoint vs model)")
    if problems:
        raise CheckpointError(f"{source} does not fit this architecture: " + "; ".join(problems))
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)


def load_state_dict_file(module: torch.nn.Module, path: Path, prefer: Iterable[str] = ()) -> None:
    """A saved state_dict, bare or under one of `prefer`; a DataParallel save's 'module.' prefix is dropped."""
    state = unwrap_state_dict(read_checkpoint(path), prefer=prefer)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    load_strict(module, state, source=str(path))


def _some(items: list[str], n: int = 3) -> str:
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


def _first_line_with(exc: BaseException, needle: str) -> str | None:
    for line in str(exc).splitlines():
        if needle in line:
            return line.strip()[:160]
    return None
