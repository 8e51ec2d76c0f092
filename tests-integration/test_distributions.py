"""Every corral distribution is installed from its wheel and agrees with itself and the others."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(
        os.environ.get("CORRAL_INTEGRATION_EDITABLE") == "1",
        reason="checks distributions installed from wheels; this run uses an editable install",
    ),
]

REPO = Path(__file__).resolve().parents[1]

_NAME = re.compile(r'^name\s*=\s*"([^"]+)"', re.MULTILINE)
EXPECTED = sorted(_NAME.findall(p.read_text(encoding="utf-8"))[0] for p in REPO.glob("packages/*/pyproject.toml"))


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_corral() -> list[str]:
    names = {_normalize(d.metadata["Name"] or "") for d in importlib.metadata.distributions()}
    return sorted(n for n in names if n == "corral" or n.startswith("corral-"))


def test_every_distribution_is_installed() -> None:
    assert installed_corral() == EXPECTED


@pytest.mark.parametrize("dist", EXPECTED)
def test_version_matches_distribution_metadata(dist: str) -> None:
    meta = importlib.metadata.distribution(dist)
    files = meta.files or []
    portions = sorted({f.parts[1] for f in files if f.parts[0] == "corral" and len(f.parts) > 2})
    version_files = [f for f in files if f.parts[0] == "corral" and f.name == "_version.py"]
    assert len(version_files) == 1, version_files
    assert portions, f"{dist} installed no corral portion"
    for portion in portions:
        module = importlib.import_module(f"corral.{portion}")
        assert module.__version__ == meta.version, f"corral.{portion}.__version__ != {dist} {meta.version}"


def test_corral_command_lists_every_distribution() -> None:
    script = shutil.which("corral", path=sysconfig.get_path("scripts"))
    assert script, "the corral meta-package installed no `corral` command"
    out = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    for dist in EXPECTED:
        assert f"{dist} {importlib.metadata.version(dist)}" in out
