"""JUnit XML for CI dashboards: one test case per artifact."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Sequence

from edgeport.parity_tests.gate import ArtifactCheck
from edgeport.runtimes.atomic import atomic_file


def write_junit(path: Path, checks: Sequence[ArtifactCheck]) -> None:
    failures = sum(c.report.status == "fail" for c in checks)
    errors = sum(c.report.status == "error" for c in checks)
    suite = ET.Element("testsuite", name="edgeport.parity", tests=str(len(checks)), failures=str(failures),
                       errors=str(errors))
    for c in checks:
        case = ET.SubElement(suite, "testcase", classname=f"edgeport.{c.model}", name=f"{c.format}-{c.recipe}")
        r = c.report
        ET.SubElement(case, "system-out").text = (
            f"engine: {r.engine}\n{r.figures()}")
        if r.status == "fail":
            ET.SubElement(case, "failure", message=r.message).text = r.message
        elif r.status == "error":
            ET.SubElement(case, "error", message=r.message).text = r.message
    with atomic_file(path) as fh:
        ET.ElementTree(suite).write(fh, encoding="utf-8", xml_declaration=True)
