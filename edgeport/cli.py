"""`edgeport`: models, export, check. Heavy libraries load inside the commands, so --help is instant."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from edgeport.errors import USER_ERROR, UsageError
from edgeport.report_commands import cmd_bench, cmd_size, require_manifests
from edgeport.run_command import add_run_parser, cmd_run
from edgeport.tune_command import add_tune_parser, cmd_tune
from edgeport.weights_command import add_weights_parser, cmd_weights
from exporters.formats import DEFAULT_FORMATS


def _csv(text: str) -> tuple[str, ...]:
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def _hw(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 128x128, not {text!r}") from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"height and width must be positive, not {text!r}")
    return h, w


def _output(text: str) -> Path | str:
    """A folder, or kept as text when it is a URL (only the Ray executor writes to fsspec URLs)."""
    return text if "://" in text else Path(text)


def local_output(args: argparse.Namespace) -> Path:
    if isinstance(args.out, str):
        raise UsageError(f"--out {args.out} is a URL: only `--executor ray` writes to fsspec URLs; give a folder")
    return args.out


def _setting(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected key=value such as num_block=2, not {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        pass
    try:   # Python literals too: dilations=(1,2,2,4); literal_eval evaluates no code
        import ast

        return key.strip(), ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key.strip(), value


def _add_export(sub: Any) -> None:
    p = sub.add_parser("export", help="export a model and check parity in each runtime")
    source_arguments(p)
    p.add_argument("--all", action="store_true", help="export every zoo model at its default size")
    p.add_argument("--recipe", "--precision", dest="recipes", type=_csv, default=None, metavar="LIST",
                   help="comma-separated recipes, e.g. fp32,fp16,w8,w8a8,prune50+w8a8 (default: each format's own; "
                        "`edgeport formats` lists them); a format without a recipe gets a 'not supported' row")
    p.add_argument("--dynamic-hw", action="store_true", help="dynamic height/width (ONNX, Core ML)")
    executor_arguments(p, "each model x format x recipe as one Ray task (pip install edgeport[ray])")


def executor_arguments(p: Any, ray_help: str) -> None:
    p.add_argument("--executor", choices=("serial", "ray"), default="serial",
                   help=f"serial (default): one after another in this process; ray: {ray_help}")
    p.add_argument("--ray-address", metavar="ADDR", help="a running Ray cluster (default: start a local Ray)")
    p.add_argument("--ray-workers", type=int, metavar="N", help="a local Ray's worker processes (default: all cores)")


def source_arguments(p: Any) -> None:
    """What export and tune share: the model, its weights and inputs, the formats, the output."""
    p.add_argument("model", nargs="?", help="zoo model name, or names separated by commas (see `edgeport models`)")
    p.add_argument("--model", dest="custom", metavar="FILE.py:FACTORY",
                   help="any nn.Module: a Python file and the function that builds it (give --input)")
    p.add_argument("--input", dest="inputs", action="append", default=[], metavar="SHAPE",
                   help="a custom model's input shape, e.g. 1x3x256x256 (once per input)")
    p.add_argument("--to", type=_csv, default=DEFAULT_FORMATS, metavar="FORMATS",
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
    p.add_argument("--input-size", type=_hw, metavar="HxW", help="input height x width (default: the spec's)")
    p.add_argument("--set", type=_setting, action="append", default=[], metavar="KEY=VALUE",
                   help="architecture setting, e.g. num_block=2 (repeatable)")
    p.add_argument("--io", choices=("image", "tensor"), default="image",
                   help="image (default): pictures go in and out as 8-bit pixels, the conversion compiled into the "
                        "artifact (uint8 NHWC; Core ML images); tensor: float32 NCHW in the contract's values")
    p.add_argument("--tflite-route", choices=("auto", "litert-torch", "onnx2tf"), default="auto")
    p.add_argument("--converter-timeout", type=float, default=None, metavar="SECONDS",
                   help="bound on a converter that runs in its own process, such as onnx2tf (default 900)")
    p.add_argument("--out", type=_output, default=Path("artifacts"),
                   help="output root (default ./artifacts); `export --executor ray` also takes an fsspec URL "
                        "every node can reach")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress lines")



def _add_reports(sub: Any) -> None:
    p = sub.add_parser("size", help="size report: each artifact against fp32 weights, largest layers, PNG chart")
    p.add_argument("path", nargs="?", type=Path, default=Path("artifacts"), help="artifact root (default ./artifacts)")
    p.add_argument("--out", type=Path, help="where to write size-report.{md,json,png} (default: the artifact root)")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p = sub.add_parser("bench", help="latency, cold start and memory of each artifact in its runtime, beside "
                                     "PyTorch eager; --compare gates regressions")
    p.add_argument("path", nargs="?", type=Path, default=Path("artifacts"),
                   help="an artifact folder, a model's folder, or the root (default ./artifacts)")
    p.add_argument("--all", action="store_true", help="every model under the artifact root (./artifacts)")
    p.add_argument("--threads", type=_csv, default=("1", "2"), metavar="LIST", help="thread counts (default 1,2)")
    p.add_argument("--runs", type=int, default=20, help="timed runs after warm-up (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch eager baseline")
    p.add_argument("--no-peaks", action="store_true", help="skip the runtimes' kernel-peak probes (no efficiency)")
    p.add_argument("--strict", action="store_true", help="refuse to measure when another process is busy")
    p.add_argument("--out", type=Path, help="where to write bench.{json,md,png} (default: the artifact folder)")
    executor_arguments(p, "one task per model folder, one at a time on each node (the folder must be on a "
                          "filesystem every node mounts)")
    p.add_argument("--compare", type=Path, metavar="BASELINE.json", help="an earlier bench.json to gate against")
    p.add_argument("--max-regression", default="10%", metavar="PCT",
                   help="fail when an artifact's p50/torch ratio grows past this (default 10%%)")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeport", description="Export PyTorch image models to ONNX, TFLite, Core ML and ExecuTorch, checked in the real "
                    "runtimes.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list the zoo with params and MACs")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser("formats", help="list the formats, their runtimes and the recipes each one applies")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    _add_export(sub)
    p = sub.add_parser("check", help="re-run parity on existing artifacts; non-zero exit when a gate fails")
    p.add_argument("path", nargs="?", type=Path, default=Path("artifacts"), help="artifact folder or root")
    p.add_argument("--junit", type=Path, metavar="FILE", help="also write a JUnit XML report for CI")
    p.add_argument("--no-figures", action="store_true",
                   help="skip the worst-sample pictures (check-parity.png per artifact, check-report.md)")
    p.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    _add_reports(sub)
    add_weights_parser(sub)
    add_run_parser(sub)
    add_tune_parser(sub)
    return parser


def cmd_models(args: argparse.Namespace) -> int:
    from edgeport.report import table
    from models import all_specs
    from models.profile import profile_model

    rows = []
    for spec in all_specs().values():
        prof = profile_model(spec.build, [c.shape for c in spec.inputs])
        rows.append({"name": spec.name, "summary": spec.summary, "params": prof.params, "macs": prof.macs,
                     "input": [list(c.shape) for c in spec.inputs], "upstream": spec.metadata.upstream})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(table(("model", "params", "GMAC", "input", "summary"),
                [(r["name"], f"{r['params'] / 1e6:.2f} M", f"{r['macs'] / 1e9:.2f}",
                  " ".join("x".join(map(str, s)) for s in r["input"]), r["summary"]) for r in rows]))
    return 0


def _export_targets(args: argparse.Namespace) -> list[str]:
    from models import ModelError

    chosen = [bool(args.model), bool(args.custom), args.all]
    from models.weights import OFFICIAL

    if not any(chosen) and args.weights and args.weights != OFFICIAL:
        return [_detected_reference(args.weights)]
    if sum(chosen) != 1:
        raise ModelError("name the models: zoo MODEL[,MODEL...], --model FILE.py:FACTORY, --all, or only --weights "
                         "FILE (a checkpoint whose architecture spandrel detects)")
    if args.all:
        if args.set or args.input_size or args.weights or args.inputs:
            raise ModelError("--all exports every model at its defaults: drop --set, --input-size, --weights, --input")
        from models import all_specs

        return list(all_specs())
    if args.inputs and not args.custom:
        raise ModelError("--input is for custom models (--model FILE.py:FACTORY); zoo models take --input-size")
    return [args.custom] if args.custom else [m for m in args.model.split(",") if m]


def _detected_reference(weights: str) -> str:
    """A checkpoint without a model name: spandrel detects the architecture (ncnn files need a zoo model)."""
    from models import CheckpointError
    from models.ncnn_files import is_ncnn_path
    from models.spandrel_models import reference_for

    path = Path(weights)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    if is_ncnn_path(path):
        raise CheckpointError(f"{path} is an ncnn model: name the zoo model it belongs to, e.g. "
                              f"`edgeport export realesr-animevideov3 --weights {path}`")
    return reference_for(path)


def export_plan(args: argparse.Namespace, model: str, recipes: tuple[str, ...] | None) -> Any:
    from edgeport.pipeline import ExportPlan
    from models.custom import parse_shape

    return ExportPlan(model=model, formats=args.to, out_root=args.out, recipes=recipes, calib_dir=args.calib,
                      weights=args.weights, seed=args.seed, input_hw=args.input_size, config=dict(args.set),
                      dynamic_hw=getattr(args, "dynamic_hw", False), io=args.io, photos_dir=args.photos,
                      options={"tflite_route": args.tflite_route, "converter_timeout": args.converter_timeout},
                      input_shapes=tuple(parse_shape(s) for s in args.inputs))


def cmd_export(args: argparse.Namespace) -> int:
    from edgeport.report import export_table, human_bytes, problems

    started = time.perf_counter()
    if args.executor == "ray":
        from edgeport.ray_commands import export_on_ray

        summaries = export_on_ray(args)
    else:
        from edgeport.pipeline import run_export
        from edgeport.progress import Progress

        local_output(args)
        summaries = [run_export(export_plan(args, model, args.recipes), Progress(enabled=not args.quiet))
                     for model in _export_targets(args)]
    rows = [r for s in summaries for r in s.to_dict()["rows"]]
    if args.json:
        payload = summaries[0].to_dict() if len(summaries) == 1 else {
            "schema": "edgeport.export-all/1", "ok": all(s.exit_code == 0 for s in summaries),
            "models": [s.to_dict() for s in summaries]}
        print(json.dumps(payload, indent=2))
    else:
        print()
        for s in summaries:
            print(f"{s.model}: {s.params / 1e6:.2f} M params, {s.macs / 1e9:.2f} GMAC at "
                  f"{' '.join('x'.join(map(str, shape)) for shape in s.input_shapes)}; source: {s.source}")
        print(export_table(rows))
        for line in problems(rows):
            print(f"  {line}")
        total = sum(r.bytes for s in summaries for r in s.rows)
        ok = sum(not r.failed for s in summaries for r in s.rows)
        print(f"{ok}/{len(rows)} ok, {human_bytes(total)} written under {args.out} in "
              f"{time.perf_counter() - started:.0f} s")
    return max(s.exit_code for s in summaries)


def _check_row(c: Any) -> dict[str, Any]:
    return {"model": c.model, "format": c.format, "recipe": c.recipe, "route": c.route, "bytes": c.bytes,
            "worst_psnr_db": c.report.worst_psnr_db if c.report.samples else None, "bit_exact": c.report.bit_exact,
            "photo_psnr_db": c.report.photo_db, "noise_psnr_db": c.report.noise_db, "gated_on": c.report.gate.samples,
            "photo_max_8bit_diff": c.report.photo_max_8bit,
            "engine": c.report.engine, "status": c.report.status, "message": c.report.message, "op": None}


def cmd_check(args: argparse.Namespace) -> int:
    from edgeport.progress import Progress
    from edgeport.report import export_table, problems
    from parity_tests.gate import ReferenceCache, check_artifact
    from parity_tests.junit import write_junit

    manifests = require_manifests(args.path)
    progress = Progress(total=len(manifests), enabled=not args.quiet)
    cache = ReferenceCache()
    checks = []
    for path in manifests:
        with progress.step(f"check {path.parent}"):
            checks.append(check_artifact(path, cache, figure=not args.no_figures))
    if args.junit:
        write_junit(args.junit, checks)
    rows = [_check_row(c) for c in checks]
    failed = sum(not c.report.passed for c in checks)
    if not args.no_figures:
        from edgeport.atomic import write_text
        from edgeport.report import check_markdown
        from parity_tests.gate import CHECK_FIGURE

        root = args.path if args.path.is_dir() else args.path.parent
        write_text(root / "check-report.md", check_markdown(rows, root, [c.path for c in checks], CHECK_FIGURE))
    if args.json:
        print(json.dumps({"schema": "edgeport.check/2", "ok": failed == 0,
                          "artifacts": [c.to_dict() for c in checks]}, indent=2))
    else:
        print(export_table(rows))
        for line in problems(rows):
            print(f"  {line}")
        print(f"{len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


def cmd_formats(args: argparse.Namespace) -> int:
    from edgeport.report import table
    from exporters.formats import all_formats

    rows = [{"name": f.name, "label": f.label, "recipes": list(f.recipes), "default_recipes": list(f.default_recipes),
             "localisation": f.tensors_engine or "not implemented", "latency_here": f.latency_unavailable() or "yes"}
            for f in all_formats().values()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(table(("format", "recipes (export precisions)", "default", "error localisation", "latency here"),
                [(r["name"], ",".join(r["recipes"]), ",".join(r["default_recipes"]), r["localisation"],
                  r["latency_here"]) for r in rows]))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from edgeport.atomic import OutputError
    from exporters.base import ExportError
    from models.errors import ModelError
    from quantize.recipes import RecipeError

    handler = {"models": cmd_models, "formats": cmd_formats, "export": cmd_export, "check": cmd_check,
               "size": cmd_size, "bench": cmd_bench, "weights": cmd_weights, "run": cmd_run,
               "tune": cmd_tune}[args.command]
    try:
        return handler(args)
    except (ModelError, ExportError, OutputError, RecipeError, UsageError, FileNotFoundError) as exc:
        print(f"edgeport: error: {exc}", file=sys.stderr)
        return USER_ERROR
    except KeyboardInterrupt:
        print("edgeport: interrupted; nothing half-written was left in place", file=sys.stderr)
        return 130
