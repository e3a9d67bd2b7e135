"""The parity gate as a pytest entry: one test per artifact under --artifacts; the same check as `edgeport check`.

An empty folder fails: a gate that finds nothing to check has not passed anything.
"""
from pathlib import Path

import pytest

from edgeport.parity_tests.gate import ReferenceCache, check_artifact
from edgeport.parity_tests.manifest import find_manifests


def pytest_generate_tests(metafunc):
    if "manifest_path" in metafunc.fixturenames:
        root = Path(metafunc.config.getoption("artifacts"))
        manifests = find_manifests(root) if root.exists() else []
        params = manifests or [root / "manifest.json"]
        ids = [str(p.parent.relative_to(root)) if p in manifests and p.parent != root else p.parent.name
               for p in params]
        metafunc.parametrize("manifest_path", params, ids=ids)


@pytest.fixture(scope="session")
def reference_cache():
    return ReferenceCache()


def test_parity_gate(manifest_path, reference_cache):
    assert manifest_path.is_file(), f"no artifacts to gate under {manifest_path.parent}: run `edgeport export` first"
    check = check_artifact(manifest_path, reference_cache)
    r = check.report
    assert r.passed, (f"{check.model} {check.format} {check.recipe}: {r.status}: {r.message} "
                      f"({r.figures()})")
