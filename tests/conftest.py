"""Shared fixtures: the ``../shared`` data folder (skipped where absent, unless CI requires it)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

from workloads import Layer, Workload

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("BITSERIAL_SHARED", REPO.parent / "shared"))

settings.register_profile("default", deadline=None, max_examples=40, database=None, derandomize=True)
settings.register_profile("explore", deadline=None, max_examples=400, database=None, print_blob=True)
# CI explores more examples, derandomized so that a failure replays exactly (and prints its reproduction blob)
settings.register_profile("ci", deadline=None, max_examples=120, database=None, derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def shared_path(*parts: str) -> Path:
    """A path under ../shared; skips the test where it is missing (a user's clone), fails under CI's
    BITSERIAL_REQUIRE_SHARED=1."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        message = f"{path} is not available (the ../shared data folder sits beside the repository in CI)"
        if os.environ.get("BITSERIAL_REQUIRE_SHARED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under BITSERIAL_REQUIRE_EXTRAS=1 (CI, which installs every optional extra) a skipped test fails: a test
    that skips for a missing optional package must not pass silently where the package is meant to be."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("BITSERIAL_REQUIRE_EXTRAS") == "1" and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under BITSERIAL_REQUIRE_EXTRAS=1 (every optional extra must be installed): {reason}"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` (real models end to end, retraining) run in CI (BITSERIAL_SLOW=1) or when ``-m``
    selects them; the default run leaves them out to stay within a few minutes."""
    if os.environ.get("BITSERIAL_SLOW") == "1" or config.getoption("markexpr"):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


@pytest.fixture(scope="session", autouse=True)
def _private_workload_cache(tmp_path_factory):
    """Built-in workloads imported by the tests are cached in a folder of this test session, not in ~/.cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BITSERIAL_CACHE", str(tmp_path_factory.mktemp("workload-cache")))
        yield


@pytest.fixture(scope="session")
def dnnsim_synth() -> Workload:
    """DNNsim's synthetic validation network (../shared/validation/dnnsim_synth): conv1 and fc1, 8-bit."""
    d = shared_path("validation", "dnnsim_synth")
    # DNNsim's (N, C, X, Y) with X fastest -> our (C, H, W): swap the spatial axes (see the README)
    act = np.load(d / "act-conv1-0.npy", allow_pickle=False)[0].transpose(0, 2, 1)
    wgt = np.load(d / "wgt-conv1.npy", allow_pickle=False).transpose(0, 1, 3, 2)
    fc_act = np.load(d / "act-fc1-0.npy", allow_pickle=False)[0]
    fc_wgt = np.load(d / "wgt-fc1.npy", allow_pickle=False)
    return Workload("dnnsim_synth", [
        Layer.conv("conv1", act, wgt, stride=1, padding=1, act_bits=8, weight_bits=8),
        Layer.fc("fc1", fc_act, fc_wgt, act_bits=8, weight_bits=8),
    ])
