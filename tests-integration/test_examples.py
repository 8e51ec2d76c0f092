"""Every script in docs/examples/ runs to completion and prints what its docstring promises.

Each runs as a subprocess (``python docs/examples/NAME.py``) in its own process group with a
deadline, starting and stopping its own cluster (two engines; four for the magics session)
under the session's ``CORRAL_DIR``; the session's leftover check catches an example that leaves
processes behind.
``embed_engine.py`` needs a cluster to join and is run by test_embedding.py.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(150)

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
#: Seconds an example may take; each finishes in a few on an idle machine.
DEADLINE = 120.0

#: What each example must print (regular expressions, searched in stdout).
EXPECTED: dict[str, list[str]] = {
    "monte_carlo_pi.py": [r"pi ~ (\d\.\d+) from 16 tasks of 500,000 darts on engines \[0, 1\]"],
    "parameter_sweep.py": [
        r"\] 48/48 points",
        r"fastest settling: k=\S+, c=\S+ -> [\d.]+ s \(48 points on engines \[0, 1\]\)",
    ],
    "scatter_gather.py": [
        r"over engines \[0, 1\]: blocks of \[500, 500\] rows",
        r"gathered 1000 normalized rows; .* matches the local result",
    ],
    "dependency_dag.py": [
        r"merge +engine \d",
        r"mean 0\.\d+ over 200000 values, check passed; every task started after its parents completed",
    ],
    "magics_session.py": [
        r"\[stdout:0\] step 2",
        r"KeyboardInterrupt: %px was interrupted; engine\(s\) 0-3 were sent SIGINT and stopped",
        r"Out\[0:\d+\]: 'still serving'",
        r"4/4 tasks done",
    ],
    "executor_futures.py": [
        r"primes below 200,000 in 8 ranges: 17984",
        r"map over 10 numbers: \[0, 1, 4, 9, 16, 25, 36, 49, 64, 81\]",
        r"asyncio gathered: \[1, 8, 27\]",
    ],
}


def _run(script: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env={**os.environ, "IPYTHONDIR": str(cwd / "ipython")},  # magics_session.py runs IPython
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{script.name} ran longer than {DEADLINE:g} s:\n{out}\n{err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_and_prints_its_result(name: str, tmp_path: Path) -> None:
    done = _run(EXAMPLES / name, tmp_path)
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    for pattern in EXPECTED[name]:
        assert re.search(pattern, done.stdout), f"{name} did not print {pattern!r}:\n{done.stdout}"
    if name == "monte_carlo_pi.py":
        match = re.search(EXPECTED[name][0], done.stdout)
        assert match is not None
        assert abs(float(match.group(1)) - math.pi) < 0.01


def test_every_example_is_run_by_a_test() -> None:
    scripts = {p.name for p in EXAMPLES.glob("*.py")}
    assert scripts == set(EXPECTED) | {"embed_engine.py"}, "add the new example to EXPECTED"
