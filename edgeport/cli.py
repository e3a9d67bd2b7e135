"""`edgeport`: the command line. Each command is one module of edgeport/commands/ that adds its parser and
names its handler; this file only assembles them and turns a user's mistake into one line and exit 2."""
from __future__ import annotations

import argparse
import sys
from typing import NoReturn, Sequence

from edgeport.commands import COMMAND_MODULES
from edgeport.errors import USER_ERROR, UsageError
from edgeport.exporters.base import ExportError
from edgeport.models.errors import ModelError
from edgeport.quantize.recipes import RecipeError
from edgeport.runtimes.atomic import OutputError


class OneLineParser(argparse.ArgumentParser):
    """A bad argument is one line (what is wrong, where to look), not the usage block before it."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="edgeport", description="Export PyTorch image models to ONNX, TFLite, Core ML and ExecuTorch, checked "
                                     "in the real runtimes; run photos through the artifacts.")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ModelError, ExportError, OutputError, RecipeError, UsageError, FileNotFoundError) as exc:
        print(f"edgeport: error: {exc}", file=sys.stderr)
        return USER_ERROR
    except KeyboardInterrupt:
        print("edgeport: interrupted; nothing half-written was left in place", file=sys.stderr)
        return 130
