"""Start engines (and optionally the controller) on other hosts over ``ssh``.

For each host, the connection file is copied with ``ssh HOST 'cat > FILE'`` (mode 0600, so the
remote engine accepts it; a directory it creates gets mode 0700), then each engine runs as
``ssh HOST 'CORRAL_LIFELINE_FD=0 exec PYTHON -m corral.engine --connection-file FILE ...'``.
The engine's standard input, forwarded by ssh, is its lifeline: when the local ``ssh`` ends
(``Cluster.stop_cluster()``, ``corral stop``, or the launching Python process dying), the
remote engine sees end-of-file and stops. ``Cluster.stop_cluster()`` then removes the copied
connection files (``corral stop``, from another process, does not know them and leaves them). ``ssh`` runs with ``BatchMode=yes``, so a host that
wants a password fails at once instead of waiting for a prompt nobody answers.

The controller must listen on an address the hosts reach (``Cluster(ip=...)``); binding anything
but loopback turns CurveZMQ on (see ``docs/security.md``).
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from corral.launchers.base import Launched, Launcher, LaunchError, run_logged, stop_all, which_or_fail

__all__ = ["SSHLauncher"]

log = logging.getLogger(__name__)

#: seconds the connection-file copy may take before it counts as failed
COPY_TIMEOUT = 30.0


def _words(value: Any, option: str) -> list[str]:
    if isinstance(value, str):
        return shlex.split(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError(f"the {option!r} option takes a string or a list of strings, not {value!r}")


def _hosts(value: Any) -> list[str]:
    hosts = [h.strip() for h in value.split(",")] if isinstance(value, str) else value
    if not isinstance(hosts, (list, tuple)) or not hosts or not all(isinstance(h, str) and h for h in hosts):
        raise ValueError(
            f"the 'hosts' option takes host names, e.g. 'node1,node2' or ['node1', 'node2'], not {value!r}"
        )
    for host in hosts:
        if host.startswith("-") or any(c.isspace() for c in host):
            raise ValueError(f"{host!r} is not a host name (ssh destination)")
    return list(hosts)


class SSHLauncher(Launcher):
    """Start engines on other hosts over ``ssh``, spread round-robin over ``hosts``.

    Options
    -------
    hosts
        ssh destinations (``host``, ``user@host``), a comma-separated string or a list; required.
    ssh
        The ssh program (default ``ssh`` on ``PATH``).
    ssh_args
        Extra ssh arguments, e.g. ``"-p 2222 -i ~/.ssh/cluster_key"``.
    python
        The interpreter on the hosts (default ``python3``).
    remote_dir
        Where the connection file goes on the hosts, relative to the remote home unless
        absolute (default ``.corral/security``).
    controller_host
        Where :meth:`start_controller` runs the controller (default: the first host).
    """

    name = "ssh"
    options: ClassVar[Mapping[str, str]] = {
        "hosts": "ssh destinations, e.g. 'node1,user@node2' (required)",
        "ssh": "the ssh program (default: ssh on PATH)",
        "ssh_args": "extra ssh arguments, e.g. '-p 2222 -i ~/.ssh/cluster_key'",
        "python": "the interpreter on the hosts (default: python3)",
        "remote_dir": "where the connection file goes on the hosts (default: .corral/security)",
        "controller_host": "where a controller started over ssh runs (default: the first host)",
    }

    def __init__(self, log_dir: Path, *, lifeline: bool = True, **options: Any) -> None:
        super().__init__(log_dir, lifeline=lifeline, **options)
        if "hosts" not in options:
            raise ValueError(
                "the 'ssh' launcher needs hosts, e.g. launcher_options={'hosts': ['node1']} or -o hosts=node1"
            )
        self.hosts = _hosts(options["hosts"])
        self.ssh = str(options.get("ssh", "ssh"))
        self.ssh_args = [
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            *_words(options.get("ssh_args", []), "ssh_args"),
        ]
        self.python = str(options.get("python", "python3"))
        self.remote_dir = str(options.get("remote_dir", ".corral/security")).rstrip("/") or "/"
        self.controller_host = str(options.get("controller_host", self.hosts[0]))
        #: host -> remote path of the connection file copied there (removed again by close)
        self._copied: dict[str, str] = {}

    def _ssh(self, host: str, remote: str) -> list[str]:
        return [self.ssh, *self.ssh_args, host, remote]

    def remote_path(self, connection_file: Path) -> str:
        """Where the connection file lives on the hosts."""
        return f"{self.remote_dir}/{connection_file.name}"

    def copy_connection_file(self, host: str, connection_file: Path) -> str:
        """Copy the connection file to ``host`` (atomically, mode 0600); return its remote path.

        Raises
        ------
        LaunchError
            If ssh fails (host unreachable, authentication refused) or takes over 30 s; the
            message has the command and ssh's output.
        """
        remote = self.remote_path(connection_file)
        directory = shlex.quote(self.remote_dir)
        script = (
            # a new directory is made private; an existing one is left as it is (it may be shared)
            f"umask 077 && mkdir -p -m 700 {directory} && "
            f"cat > {shlex.quote(remote)}.tmp && mv {shlex.quote(remote)}.tmp {shlex.quote(remote)}"
        )
        cmd = self._ssh(host, script)
        which_or_fail(
            self.ssh, "the 'ssh' launcher", "Install an ssh client (Debian/Ubuntu: `apt-get install openssh-client`)."
        )
        run_logged(cmd, f"copying the connection file to {host}", COPY_TIMEOUT, stdin=connection_file.read_bytes())
        self._copied[host] = remote
        return remote

    def _remote_command(self, module: str, remote_file: str, args: Sequence[str], lifeline: bool) -> str:
        words = [self.python, "-m", module, "--connection-file", remote_file, *args]
        quoted = " ".join(shlex.quote(w) for w in words)
        return f"{'CORRAL_LIFELINE_FD=0 ' if lifeline else ''}PYTHONUNBUFFERED=1 exec {quoted}"

    def start_engines(
        self, n: int, connection_file: Path, engine_args: Sequence[str], *, first_index: int = 0
    ) -> list[Launched]:
        """Copy the connection file to each host used, then start one ``ssh`` per engine.

        Raises
        ------
        LaunchError
            If ssh is missing, or copying to a host fails (nothing is left running).
        """
        plan = [self.hosts[(first_index + i) % len(self.hosts)] for i in range(n)]
        remote_files = {host: self.copy_connection_file(host, connection_file) for host in dict.fromkeys(plan)}
        started: list[Launched] = []
        try:
            for i, host in enumerate(plan, start=first_index):
                remote = self._remote_command("corral.engine", remote_files[host], engine_args, lifeline=True)
                started.append(self.spawn_command(self._ssh(host, remote), f"engine-{i}-{host}.log", hold_stdin=True))
        except BaseException:
            stop_all(started)
            raise
        return started

    def close(self) -> None:
        """Remove the copied connection files from the hosts (best effort, 30 s each), drop the lifeline."""
        for host, remote in sorted(self._copied.items()):
            try:
                run_logged(
                    self._ssh(host, f"rm -f {shlex.quote(remote)}"), f"removing {remote} on {host}", COPY_TIMEOUT
                )
            except LaunchError as err:
                log.warning("%s", err)
        self._copied.clear()
        super().close()

    def start_controller(self, connection_file: Path, controller_args: Sequence[str]) -> Launched:
        """Run the controller on ``controller_host`` with the copied connection file (``--reuse``).

        Raises
        ------
        LaunchError
            If ssh is missing or copying the connection file fails.
        """
        host = self.controller_host
        remote_file = self.copy_connection_file(host, connection_file)
        remote = self._remote_command("corral.cluster", remote_file, ["--reuse", *controller_args], lifeline=True)
        return self.spawn_command(self._ssh(host, remote), f"controller-{host}.log", hold_stdin=True)
