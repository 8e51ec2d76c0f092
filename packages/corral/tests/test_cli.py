"""The corral command: --version, selfcheck, errors for bad arguments."""

from __future__ import annotations

import argparse
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
    assert "argument --size-mb: the array size in MB must be positive, not -1" in out.stderr
    out = corral("start", "--timeout", "-1")
    assert out.returncode == 2
    assert "argument --timeout: the timeout in seconds must be positive" in out.stderr
    out = corral("bench", "--targets", "0,x")
    assert out.returncode == 2
    assert "comma-separated list of engine ids, e.g. 0,1" in out.stderr
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


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def test_every_option_of_every_command_is_explained() -> None:
    from corral.cli import build_parser

    parser = build_parser()
    commands = _subparsers(parser)
    assert {"start", "stop", "list", "bench", "demo", "selfcheck", "controller", "engine"} <= set(commands)
    for name, sub in commands.items():
        assert sub.description, f"corral {name} has no description"
        for action in sub._actions:
            assert action.help, f"corral {name} {action.option_strings} has no help"
            if action.option_strings and action.nargs != 0 and action.dest != "n":
                # a metavar that reads as a unit (or the choices), not argparse's upper-cased option name
                assert action.metavar or action.choices, f"corral {name} {action.option_strings[-1]} has no metavar"


def test_the_top_level_help_shows_examples_and_every_command() -> None:
    out = corral("--help")
    assert out.returncode == 0
    for command in ("selfcheck", "demo", "start", "stop", "list", "bench", "controller", "engine"):
        assert f"\n    {command}" in out.stdout
    assert "corral start -n 4" in out.stdout
    assert "rc = Client()" in out.stdout


def test_log_levels_are_accepted_in_any_case() -> None:
    from corral.cli import build_parser

    args = build_parser().parse_args(["start", "--log-level", "debug"])
    assert args.log_level == "DEBUG"
