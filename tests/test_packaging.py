"""edgeport installs one import name, `edgeport`: the wheel's top level says so, and an app whose own project
has `models/` and `benchmarks/` packages still exports (from the wheel in a scratch venv, and from this checkout's
editable install)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = {"num_conv": 2, "num_feat": 16}
APP_PACKAGES = {"models": "APP = 'the app models'\n", "benchmarks": "APP = 'the app benchmarks'\n",
                "runtimes": "APP = 'the app runtimes'\n"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from the tracked files (a copy, so the build leaves nothing in the checkout)."""
    base = tmp_path_factory.mktemp("wheel")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    source = base / "source"
    for name in files:
        if (ROOT / name).is_file() and not name.startswith(("artifacts/", "docs/")):
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(base / "dist"), str(source)], check=True, capture_output=True, text=True)
    (found,) = (base / "dist").glob("edgeport-*.whl")
    return found


def test_the_wheel_installs_only_the_edgeport_name(wheel: Path):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        assert zf.read(top_level).decode().split() == ["edgeport"]
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"edgeport"}
    for package in ("models", "runtimes", "quantize", "exporters", "parity_tests", "benchmarks", "commands", "export"):
        assert f"edgeport/{package}/__init__.py" in names, package
    assert "edgeport/models/realesrgan/srvgg.py" in names and "edgeport/runtimes/mil/registry.py" in names


def _app_folder(base: Path) -> Path:
    """A project of the app team's own, with packages named as edgeport's folders are."""
    app = base / "app"
    for name, text in APP_PACKAGES.items():
        (app / name).mkdir(parents=True)
        (app / name / "__init__.py").write_text(text)
    return app


def _scratch_venv(base: Path, wheel: Path) -> Path:
    """A venv holding only the wheel; torch and the converters come from the main venv through a .pth."""
    venv = base / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "main-venv.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    return python


@pytest.mark.e2e
def test_the_python_api_exports_from_a_folder_with_its_own_models_package(wheel: Path, tmp_path: Path):
    python = _scratch_venv(tmp_path, wheel)
    app = _app_folder(tmp_path)
    code = ("import json, models, benchmarks\nfrom edgeport.api import export\nimport edgeport.models as ours\n"
            f"s = export('realesr-general-x4v3', to=['onnx'], input_size=(16, 16), config={TINY!r}, out='out')\n"
            "print(json.dumps({'exit': s.exit_code, 'app': [models.APP, benchmarks.APP], 'ours': ours.__file__}))")
    env = {**os.environ, "PYTHONPATH": ""}
    done = subprocess.run([str(python), "-c", code], cwd=app, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["exit"] == 0 and result["app"] == ["the app models", "the app benchmarks"]
    assert result["ours"].startswith(str(tmp_path / "venv")), result["ours"]   # the wheel's copy, not the checkout
    assert (app / "out" / "realesr-general-x4v3" / "onnx-fp32" / "manifest.json").is_file()


@pytest.mark.e2e
def test_the_cli_exports_from_a_folder_with_its_own_models_package(tmp_path: Path):
    app = _app_folder(tmp_path)
    args = ["export", "realesr-general-x4v3", "--to", "onnx", "--input-size", "16x16", "--out", "out", "--quiet",
            *(x for k, v in TINY.items() for x in ("--set", f"{k}={v}"))]
    done = subprocess.run([sys.executable, "-m", "edgeport", *args], cwd=app, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "1/1 ok" in done.stdout and (app / "out" / "realesr-general-x4v3" / "onnx-fp32" / "manifest.json").is_file()
