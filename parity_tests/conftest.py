"""Options for the artifact gate: `pytest parity_tests --artifacts DIR` (what an app team's CI runs)."""
import os


def pytest_addoption(parser):
    parser.addoption("--artifacts", default=os.environ.get("EDGEPORT_ARTIFACTS", "artifacts"),
                     help="artifact folder or root to gate (default $EDGEPORT_ARTIFACTS or ./artifacts)")
