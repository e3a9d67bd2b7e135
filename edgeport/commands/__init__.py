"""One module per command, each adding its parser and naming its handler (`register(sub)`).

A command module imports at its top only what `edgeport --help` can afford (argparse, tables, the registries'
names); the job packages it drives (edgeport/export, photo, cluster, tune) import torch and the converters, so
each handler loads its job package when the command runs.
"""
from __future__ import annotations

from edgeport.commands import catalog, check, export, reports, run, tune, weights

COMMAND_MODULES = (catalog, export, check, reports, weights, run, tune)
