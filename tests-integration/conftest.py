"""Fixtures for the integration suite: real processes, own process groups, logs on failure.

The suite runs against installed distributions (the ``integration`` tox env installs freshly
built wheels of all of them), never against the repository's ``src/`` trees: the session stops
at once if ``corral.wire`` would be imported from the repository, unless
``CORRAL_INTEGRATION_EDITABLE=1`` says that a developer runs it against an editable install on
purpose (a quicker loop while writing tests; ``tox -e integration`` remains the real check).

Every test runs with ``CORRAL_DIR`` set to one temporary directory for the whole session, so
nothing reads or writes ``~/.corral``. Every process a cluster starts inherits that variable,
which is how the session's end finds (and kills, and reports) any process left behind.
When a test fails, the tails of the cluster logs written during it
(``$CORRAL_DIR/logs/<cluster_id>/*.log``) are attached to its report.

Clusters: ``cluster`` is one 4-engine cluster shared by the whole session, for tests that do not
break it (``rc`` is its client); ``cluster_factory`` starts clusters that a test may break and
stops them afterwards, checking that none of their processes outlive the stop.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from corral.client import Client
    from corral.cluster import Cluster

REPO = Path(__file__).resolve().parents[1]

#: Longest any single wait in this suite may take, in seconds.
DEADLINE = 30.0

#: Lines of each log attached to a failing test's report.
LOG_TAIL_LINES = 80


def pytest_sessionstart(session: pytest.Session) -> None:
    try:
        import corral.wire
    except ImportError as err:
        raise pytest.UsageError(
            f"corral-wire is not installed ({err}); run this suite with `tox -e integration`"
        ) from None
    if os.environ.get("CORRAL_INTEGRATION_EDITABLE") == "1":
        return  # a developer's quick run against an editable install, on purpose
    for location in corral.wire.__path__:
        if Path(location).resolve().is_relative_to(REPO / "packages"):
            raise pytest.UsageError(
                f"corral.wire is imported from the repository's source ({location}), not from an installed wheel; "
                "run this suite with `tox -e integration` (or set CORRAL_INTEGRATION_EDITABLE=1 to run it "
                "against an editable install anyway)"
            )


@dataclass
class Peer:
    """A process started by :class:`Processes`; its stdout and stderr go to :attr:`log`."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        """Return everything the process has printed so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def events(self) -> list[dict[str, Any]]:
        """Return the JSON objects the process printed, one a line (other lines are skipped)."""
        found = []
        for line in self.output().splitlines():
            if line.startswith("{"):
                found.append(json.loads(line))
        return found

    def wait_for_event(self, event: str, timeout: float = DEADLINE) -> dict[str, Any]:
        """Return the first printed event named ``event``, waiting up to ``timeout`` seconds.

        Raises
        ------
        AssertionError
            If the process exits or the time runs out first.
        """
        deadline = time.monotonic() + timeout
        while True:
            for found in self.events():
                if found.get("event") == event:
                    return found
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}) before printing {event!r}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} printed no {event!r} within {timeout} s")
            time.sleep(0.05)

    def finish(self, timeout: float = DEADLINE) -> int:
        """Wait for the process to exit and return its status.

        Raises
        ------
        subprocess.TimeoutExpired
            If it is still running after ``timeout`` seconds (teardown then kills it).
        """
        return self.proc.wait(timeout)


@dataclass
class Processes:
    """Start Python processes in their own process groups and kill every group at the end."""

    directory: Path
    peers: list[Peer] = field(default_factory=list)

    def spawn(self, name: str, *args: str, env: Mapping[str, str] | None = None) -> Peer:
        """Run ``sys.executable *args`` in :attr:`directory`, in a new session and process group.

        ``env`` adds variables to this process's environment for the child.
        """
        log = self.directory / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        peer = Peer(name, proc, log)
        self.peers.append(peer)
        return peer

    def kill_all(self) -> None:
        """Terminate every process group, then kill what is left; reap every process."""
        for peer in self.peers:
            if peer.proc.poll() is None:
                _signal_group(peer.proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    peer.proc.wait(5)
            # the leader may be gone while something it started still runs in its group
            _signal_group(peer.proc.pid, signal.SIGKILL)
            peer.proc.wait(5)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


_PROCESSES = pytest.StashKey[Processes]()


@pytest.fixture
def processes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Processes]:
    """Yield a :class:`Processes` whose logs are attached to a failing test's report."""
    procs = Processes(tmp_path)
    request.node.stash[_PROCESSES] = procs
    try:
        yield procs
    finally:
        procs.kill_all()


# -- waiting and processes ---------------------------------------------------------------------


def _wait_until(predicate: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    """Return ``predicate()``'s first true value, polling every 20 ms for at most ``timeout`` s.

    Raises
    ------
    AssertionError
        Naming ``what`` (what was awaited) when the time runs out.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (an exited child nobody reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc here: kill(0) is all we know
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _processes_with_env(name: str, value: str) -> list[int]:
    """Pids of live processes (other than this one) whose environment has ``name=value``.

    Every process a cluster starts inherits its launcher's environment, so a variable set for
    one test or one session finds whatever that test started, whatever its parent is now.
    """
    needle = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, a zombie, or not ours
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def kill_pids(pids: list[int]) -> None:
    """SIGKILL each of ``pids`` and the process group it leads, if it leads one."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def cluster_pids(cluster: Cluster, rc: Client | None = None) -> list[int]:
    """Pids of a cluster's controller, engine supervisors and (through ``rc``) engine processes."""
    pids = [e.pid for e in cluster.engines]
    if cluster.controller is not None:
        pids.append(cluster.controller.pid)
    if rc is not None and rc.ids:
        pids += rc[:].apply_sync(os.getpid)
    return pids


@pytest.fixture
def wait_until() -> Callable[..., Any]:
    """``wait_until(predicate, what, timeout=DEADLINE)``: poll until true, fail naming ``what``."""
    return _wait_until


@pytest.fixture
def alive() -> Callable[[int], bool]:
    """``alive(pid)``: whether the process exists and is not a zombie."""
    return _alive


@pytest.fixture
def processes_with_env() -> Callable[[str, str], list[int]]:
    """``processes_with_env(name, value)``: pids of live processes with ``name=value`` in their environment."""
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc")
    return _processes_with_env


# -- corral's directory, clusters, the CLI ------------------------------------------------------

_CORRAL_DIR = pytest.StashKey[Path]()
_STARTED = pytest.StashKey[float]()
_ACTIVE_LOG_DIRS: set[Path] = set()


@pytest.fixture(scope="session", autouse=True)
def corral_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Set ``CORRAL_DIR`` to a fresh directory (and work in another) for the session; fail on leftovers.

    A process still carrying this ``CORRAL_DIR`` when the session ends outlived the test that
    started it: it is killed, and the session reports an error naming its command line.
    """
    path = tmp_path_factory.mktemp("corral-dir")
    request.config.stash[_CORRAL_DIR] = path
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CORRAL_DIR", str(path))
        # processes a cluster starts inherit the working directory and put it on sys.path
        # (python -m): from the repository root they could import the test modules themselves
        mp.chdir(tmp_path_factory.mktemp("cwd"))
        yield path
    if not sys.platform.startswith("linux"):
        return
    leftovers = _processes_with_env("CORRAL_DIR", str(path))
    if not leftovers:
        return
    commands = {}
    for pid in leftovers:
        with contextlib.suppress(OSError):
            commands[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    kill_pids(leftovers)
    pytest.fail(f"processes outlived the integration session (now killed): {commands}")


def _stop_and_check(cluster: Cluster, pids: list[int]) -> None:
    """Stop ``cluster`` and check that none of ``pids`` is alive a few seconds later."""
    try:
        cluster.stop_cluster_sync()
    finally:
        _ACTIVE_LOG_DIRS.discard(cluster.log_dir)
        left = [p for p in pids if _alive(p)]
        if left:
            time.sleep(2)  # stop_cluster waits for its children; anything else gets a moment
            left = [p for p in left if _alive(p)]
        kill_pids(left)
    assert not left, f"processes of cluster {cluster.cluster_id!r} still ran after stop_cluster: {left}"


@pytest.fixture(scope="session")
def _shared_cluster(corral_dir: Path) -> Iterator[tuple[Cluster, Client]]:
    from corral.cluster import Cluster

    shared = Cluster(n=4, cluster_id="shared", log_level="INFO", engine_timeout=DEADLINE)
    _ACTIVE_LOG_DIRS.add(shared.log_dir)
    client = shared.start_and_connect_sync()
    pids = cluster_pids(shared, client)
    yield shared, client
    _stop_and_check(shared, pids + [e.pid for e in shared.engines])


@pytest.fixture
def cluster(_shared_cluster: tuple[Cluster, Client]) -> Cluster:
    """One cluster of 4 engines for the whole session, for tests that do not break it.

    Its client is :func:`rc`. Tests may add engines (and stop the ones they added) but leave
    engines 0-3 serving.
    """
    return _shared_cluster[0]


@pytest.fixture
def rc(_shared_cluster: tuple[Cluster, Client]) -> Client:
    """The client of the shared cluster, after checking that its engines 0-3 still serve."""
    client = _shared_cluster[1]
    assert client.ids[:4] == [0, 1, 2, 3], f"an earlier test broke the shared cluster: ids {client.ids}"
    return client


@pytest.fixture
def cluster_factory(corral_dir: Path) -> Iterator[Callable[..., tuple[Cluster, Client]]]:
    """Start clusters a test may break (``cluster_factory(n)`` -> ``(cluster, client)``).

    At teardown each one is stopped and its controller and engines must be gone. A test about
    scale passes ``scale=True`` to start more than 4 engines.
    """
    from corral.cluster import Cluster

    started: list[tuple[Cluster, list[int]]] = []

    def start(n: int, *, scale: bool = False, **kwargs: Any) -> tuple[Cluster, Client]:
        assert n <= 4 or scale, "at most 4 engines per cluster in this suite, unless the test is about scale"
        kwargs.setdefault("log_level", "INFO")
        kwargs.setdefault("engine_timeout", DEADLINE)
        # a test that kills an engine expects it gone; test_restart.py asks for restarts
        kwargs.setdefault("engine_restarts", 0)
        new = Cluster(n=n, **kwargs)
        _ACTIVE_LOG_DIRS.add(new.log_dir)
        entry: tuple[Cluster, list[int]] = (new, [])
        started.append(entry)
        client = new.start_and_connect_sync()
        entry[1].extend(cluster_pids(new, client))
        return new, client

    yield start
    errors = []
    for made, pids in started:
        try:
            _stop_and_check(made, pids)
        except AssertionError as err:
            errors.append(str(err))
    assert not errors, errors


@dataclass
class CLI:
    """Run the ``corral`` command (``python -m corral.cli``) with a deadline."""

    directory: Path

    def __call__(
        self, *args: str, timeout: float = DEADLINE, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``corral *args`` (``env`` added to the environment); return its status and output.

        Raises
        ------
        subprocess.TimeoutExpired
            If it runs longer than ``timeout`` seconds (its process group is killed first).
        """
        proc = subprocess.Popen(
            [sys.executable, "-m", "corral.cli", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.directory,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture
def cli(tmp_path: Path) -> CLI:
    """Run ``corral ...`` in a subprocess: ``cli("list").stdout``."""
    return CLI(tmp_path)


# -- reports -----------------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_STARTED] = time.time()


def _log_sections(item: pytest.Item) -> list[tuple[str, str]]:
    """Tails of the cluster logs written during ``item`` or belonging to clusters still up."""
    corral = item.config.stash.get(_CORRAL_DIR, None)
    if corral is None:
        return []
    since = item.stash.get(_STARTED, 0.0) - 1.0
    sections = []
    for log in sorted(corral.glob("logs/*/*.log")):
        try:
            recent = log.stat().st_mtime >= since
        except OSError:
            continue
        if recent or log.parent in _ACTIVE_LOG_DIRS:
            lines = log.read_text(encoding="utf-8", errors="replace").splitlines()[-LOG_TAIL_LINES:]
            sections.append((f"{log.parent.name}/{log.name} (last {LOG_TAIL_LINES} lines)", "\n".join(lines)))
    return sections


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report: pytest.TestReport = yield
    procs = item.stash.get(_PROCESSES, None)
    if procs is not None and report.failed:
        for peer in procs.peers:
            report.sections.append((f"output of {peer.name} (pid {peer.proc.pid})", peer.output()))
    if report.failed:
        report.sections.extend(_log_sections(item))
    return report
