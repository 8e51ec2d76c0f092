"""The corral command: --version, selfcheck, errors for bad arguments."""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(120)

DISTS = ["corral-client", "corral-engine", "corral-hub", "corral-scheduler", "corral-wire"]


def corral(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "corral.cli", *args], capture_output=True, text=True, timeout=100)


def test_version_lists_every_installed_distribution() -> None:
    out = corral("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"corral {importlib.metadata.version('corral')} (protocol 1.0)")
    for dist in DISTS:
        assert f"{dist} {importlib.metadata.version(dist)}" in out.stdout


def test_selfcheck_runs_a_signed_request() -> None:
    out = corral("selfcheck", "--size-mb", "8")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "selfcheck OK" in out.stdout
    assert "array arrived read-only: True" in out.stdout


def test_bad_arguments_say_what_is_wrong() -> None:
    out = corral("selfcheck", "--size-mb", "-1")
    assert out.returncode == 2
    assert "--size-mb must be positive" in out.stderr
    out = corral("frobnicate")
    assert out.returncode == 2
    assert "invalid choice" in out.stderr
    out = corral()
    assert out.returncode == 2
    assert "selfcheck" in out.stderr


@pytest.mark.parametrize("portion", ["corral.cluster", "corral.launchers", "corral.cli"])
def test_portions_resolve_their_public_names(portion: str) -> None:
    mod = importlib.import_module(portion)
    assert mod.__doc__
    for name in mod.__all__:
        assert hasattr(mod, name)
    assert mod.__version__ == importlib.metadata.version("corral")
