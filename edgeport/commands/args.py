"""Argument types and groups more than one command shares (as Polygraphy's tools/args groups): the model
source and its options (export, tune), the executor (export, bench), and the one way both build an ExportPlan."""
from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path

from edgeport.errors import UsageError
from edgeport.export.plan import ExportPlan, SettingValue, build_plan
from edgeport.exporters.formats import DEFAULT_FORMATS
from edgeport.models.errors import CheckpointError, ModelError
from edgeport.models.weights import OFFICIAL


def csv_list(text: str) -> tuple[str, ...]:
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def height_width(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 128x128, not {text!r}") from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"height and width must be positive, not {text!r}")
    return h, w


def output_place(text: str) -> Path | str:
    """A folder, or kept as text when it is a URL (only the Ray executor writes to fsspec URLs)."""
    return text if "://" in text else Path(text)


def local_output(args: argparse.Namespace) -> Path:
    if isinstance(args.out, str):
        raise UsageError(f"--out {args.out} is a URL: only `--executor ray` writes to fsspec URLs; give a folder")
    return args.out


def memory_size(text: str) -> int:
    """8G, 512M, 1.5G or a byte count: the bound on a row process's address space."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    body, unit = (text[:-1], units[text[-1].upper()]) if text and text[-1].upper() in units else (text, 1)
    try:
        size = int(float(body) * unit)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: write 8G, 512M or a number of bytes") from None
    if size < 2**30:
        raise argparse.ArgumentTypeError(f"{text} is too small: a row process needs 1G to load PyTorch at all")
    return size


def setting(text: str) -> tuple[str, SettingValue]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected key=value such as num_block=2, not {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        pass
    try:   # Python literals too: dilations=(1,2,2,4); literal_eval evaluates no code
        return key.strip(), ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key.strip(), value


def executor_arguments(p: argparse.ArgumentParser, ray_help: str) -> None:
    p.add_argument("--executor", choices=("serial", "ray"), default="serial",
                   help=f"serial (default): one after another in this process; ray: {ray_help}")
    p.add_argument("--ray-address", metavar="ADDR", help="a running Ray cluster (default: start a local Ray)")
    p.add_argument("--ray-workers", type=int, metavar="N", help="a local Ray's worker processes (default: all cores)")


def source_arguments(p: argparse.ArgumentParser) -> None:
    """What export and tune share: the model, its weights and inputs, the formats, the output."""
    p.add_argument("model", nargs="?", help="zoo model name, or names separated by commas (see `edgeport models`)")
    p.add_argument("--model", dest="custom", metavar="FILE.py:FACTORY",
                   help="any nn.Module: a Python file and the function that builds it (give --input)")
    p.add_argument("--input", dest="inputs", action="append", default=[], metavar="SHAPE",
                   help="a custom model's input shape, e.g. 1x3x256x256 (once per input)")
    p.add_argument("--to", type=csv_list, default=DEFAULT_FORMATS, metavar="FORMATS",
                   help=f"comma-separated formats (default: {','.join(DEFAULT_FORMATS)}; see `edgeport formats`)")
    p.add_argument("--photos", type=Path, metavar="DIR",
                   help="your validation photos (any size), added to the parity samples and task metrics; fitted "
                        "as `edgeport run` feeds them; the manifest records each name and sha256")
    p.add_argument("--calib", type=Path, metavar="DIR",
                   help="calibration photos for w8a8 (default: bundled sample photos, not the parity ones)")
    p.add_argument("--weights", metavar="FILE|official",
                   help="checkpoint (.pth/.pt/.safetensors), ncnn model (.param/.bin), or 'official' for the "
                        "model's upstream release (`edgeport weights`); default: seeded random init")
    p.add_argument("--seed", type=int, default=0, help="seed for random init (default 0)")
    p.add_argument("--input-size", type=height_width, metavar="HxW", help="input height x width (default: the spec's)")
    p.add_argument("--set", type=setting, action="append", default=[], metavar="KEY=VALUE",
                   help="architecture setting, e.g. num_block=2 (repeatable)")
    p.add_argument("--io", choices=("image", "tensor"), default="image",
                   help="image (default): pictures go in and out as 8-bit pixels, the conversion compiled into the "
                        "artifact (uint8 NHWC; Core ML images); tensor: float32 NCHW in the contract's values")
    p.add_argument("--tflite-route", choices=("auto", "litert-torch", "onnx2tf"), default="auto")
    p.add_argument("--converter-timeout", type=float, default=None, metavar="SECONDS",
                   help="a row (each trial of a +auto search) that shows no progress this long is stopped and "
                        "reported timed-out; also bounds onnx2tf (default per format: ONNX 600, others 1200)")
    p.add_argument("--max-memory", type=memory_size, default=None, metavar="SIZE",
                   help="address-space bound of the process that exports each row, e.g. 8G: a conversion that "
                        "needs more fails its row alone (default: none)")
    p.add_argument("--out", type=output_place, default=Path("artifacts"),
                   help="output root (default ./artifacts); `export --executor ray` also takes an fsspec URL "
                        "every node can reach")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def export_targets(args: argparse.Namespace) -> list[str]:
    """The models the arguments name: zoo names, a custom factory, --all, or a bare --weights checkpoint."""
    chosen = [bool(args.model), bool(args.custom), getattr(args, "all", False)]
    if not any(chosen) and args.weights and args.weights != OFFICIAL:
        return [detected_reference(args.weights)]
    if sum(chosen) != 1:
        raise ModelError("name the models: zoo MODEL[,MODEL...], --model FILE.py:FACTORY, --all, or only --weights "
                         "FILE (a checkpoint whose architecture spandrel detects)")
    if getattr(args, "all", False):
        if args.set or args.input_size or args.weights or args.inputs:
            raise ModelError("--all exports every model at its defaults: drop --set, --input-size, --weights, --input")
        from edgeport.models import all_specs   # imports every family module (torch)

        return list(all_specs())
    if args.inputs and not args.custom:
        raise ModelError("--input is for custom models (--model FILE.py:FACTORY); zoo models take --input-size")
    return [args.custom] if args.custom else [m for m in args.model.split(",") if m]


def detected_reference(weights: str) -> str:
    """A checkpoint without a model name: spandrel detects the architecture (ncnn files need a zoo model)."""
    from edgeport.models.ncnn_files import is_ncnn_path
    from edgeport.models.spandrel_models import reference_for   # imports torch and spandrel

    path = Path(weights)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    if is_ncnn_path(path):
        raise CheckpointError(f"{path} is an ncnn model: name the zoo model it belongs to, e.g. "
                              f"`edgeport export realesr-animevideov3 --weights {path}`")
    return reference_for(path)


def plan_from_args(args: argparse.Namespace, model: str, recipes: tuple[str, ...] | None) -> ExportPlan:
    from edgeport.models.custom import parse_shape

    return build_plan(model, inputs=[parse_shape(s) for s in args.inputs], to=args.to, out=args.out,
                      recipes=recipes, weights=args.weights, input_size=args.input_size, config=dict(args.set),
                      seed=args.seed, dynamic_hw=getattr(args, "dynamic_hw", False), io=args.io,
                      photos=args.photos, calib=args.calib, tflite_route=args.tflite_route,
                      converter_timeout=args.converter_timeout, max_memory=args.max_memory)


def require_manifests(path: Path) -> list[Path]:
    """The artifact manifests under a path `check`, `size` and `bench` were given, or one line why none."""
    from edgeport.parity_tests.manifest import find_manifests   # the manifest reader loads the model specs

    if not path.exists():
        raise FileNotFoundError(f"no such artifact folder: {path}")
    manifests = find_manifests(path)
    if not manifests:
        raise FileNotFoundError(f"no manifest.json under {path}: export something first (`edgeport export`)")
    return manifests
