"""A measuring script's table as a docs page, docs/results/<script>.md, written by the script itself (`--docs`)
with the date, the machine and the command that made it, so the published table is regenerated, never copied."""
from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

from edgeport.benchmarks.machine import describe_machine
from edgeport.runtimes.atomic import write_text

DOCS_RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


def machine_text() -> str:
    m = describe_machine()
    return f"{m['cpu']}, {m['cores']} cores ({', '.join(m.get('simd', []))}), {m['memory_gib']} GiB"


def write_results_page(script: str, table: str, seconds: float) -> Path:
    """docs/results/<script>.md: a header saying when, where and how, then the table as the script prints it."""
    command = " ".join(["python", f"scripts/{Path(sys.argv[0]).name}", *sys.argv[1:]])
    page = DOCS_RESULTS / f"{script}.md"
    write_text(page, f"# {script}\n\nWritten by `scripts/{script}.py --docs` on {date.today().isoformat()}, "
                     f"on {machine_text()}, in {seconds:.0f} s. Regenerate:\n\n```\n{command}\n```\n\n"
                     f"{table.rstrip()}\n")
    return page


def markdown_table(headers: list[str] | tuple[str, ...], rows: list[tuple] | list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|---" * len(headers) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])
