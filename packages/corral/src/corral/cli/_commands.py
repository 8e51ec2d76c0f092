"""The ``corral`` subcommands that manage clusters: start, stop, list, controller, engine."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corral.wire.paths import DEFAULT_CLUSTER_ID, cluster_record_path, corral_dir, validate_cluster_id

if TYPE_CHECKING:
    from corral.launchers import Launched

__all__ = ["cmd_engine", "cmd_list", "cmd_start", "cmd_stop", "launcher_option", "read_records"]


def _cluster_id(value: str) -> str:
    try:
        return validate_cluster_id(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def launcher_option(value: str) -> tuple[str, str]:
    """Parse ``KEY=VALUE`` of ``corral start -o``."""
    key, sep, val = value.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{value!r} is not KEY=VALUE (e.g. -o hosts=node1,node2)")
    return key.strip(), val


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return True


def read_records() -> list[dict[str, Any]]:
    """Every cluster record under ``~/.corral/clusters``, oldest first."""
    folder = corral_dir() / "clusters"
    records = []
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(records, key=lambda r: r.get("created", 0))


def cmd_start(args: argparse.Namespace) -> int:
    """``corral start``: start a cluster in the background; return once its engines answer."""
    from corral.cluster import Cluster
    from corral.launchers import LaunchError

    existing = cluster_record_path(args.cluster_id)
    if existing.exists():
        record = json.loads(existing.read_text())
        if _alive((record.get("controller") or {}).get("pid")):
            print(
                f"corral start: cluster {args.cluster_id!r} is already running; stop it with "
                f"`corral stop --cluster-id {args.cluster_id}` or pick another --cluster-id",
                file=sys.stderr,
            )
            return 1
    try:
        cluster = Cluster(
            args.n,
            cluster_id=args.cluster_id,
            engines=args.engines,
            launcher_options=dict(args.launcher_option or []),
            ip=args.ip,
            log_level=args.log_level,
            engine_timeout=args.timeout,
            shutdown_atexit=False,
            signature_scheme=args.signature_scheme,
            curve=True if args.curve else None,
            insecure=args.insecure,
        )
    except ValueError as err:
        print(f"corral start: {err}", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    try:
        client = cluster.start_and_connect_sync()
    except (LaunchError, OSError) as err:
        print(f"corral start: {err}", file=sys.stderr)
        return 1
    ids = client.ids
    client.close()
    print(
        f"cluster {cluster.cluster_id!r}: controller and {len(ids)} engines ready in "
        f"{time.monotonic() - t0:.2f} s\n  connection file: {cluster.connection_file}\n"
        f"  connect with: Client(cluster_id={cluster.cluster_id!r})\n  stop with: corral stop --cluster-id {cluster.cluster_id}"
    )
    return 0


def _restore(entries: list[dict[str, Any]]) -> list[Launched]:
    """Handles for what a cluster record lists, each through the launcher that started it."""
    from corral.launchers import find_launcher

    handles = []
    for entry in entries:
        try:
            handles.append(find_launcher(str(entry.get("launcher", "local"))).restore(entry))
        except ValueError as err:
            print(f"corral stop: skipping {entry.get('cmd')}: {err}", file=sys.stderr)
    return handles


def _stop_record(record: dict[str, Any], timeout: float) -> None:
    from corral.launchers import stop_all

    engines = _restore(list(record.get("engines", [])))
    controller = _restore([record["controller"]] if record.get("controller") else [])
    stop_all(engines, timeout)
    stop_all(controller, timeout)
    for path in (Path(record.get("connection_file", "")), cluster_record_path(record["cluster_id"])):
        try:
            if path.name:
                path.unlink()
        except FileNotFoundError:
            pass


def cmd_stop(args: argparse.Namespace) -> int:
    """``corral stop``: stop a cluster started by ``corral start`` (or all of them)."""
    records = read_records()
    if args.all:
        targets = records
    else:
        targets = [r for r in records if r.get("cluster_id") == args.cluster_id]
        if not targets:
            known = ", ".join(r["cluster_id"] for r in records) or "none"
            print(
                f"corral stop: no cluster named {args.cluster_id!r} (running: {known}); `corral list` shows them",
                file=sys.stderr,
            )
            return 1
    for record in targets:
        _stop_record(record, args.timeout)
        print(f"stopped cluster {record['cluster_id']!r}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """``corral list``: the clusters ``corral start`` (or a running ``Cluster``) recorded."""
    records = read_records()
    if not records:
        print("no corral clusters are running (start one with `corral start -n 4`)")
        return 0
    print(f"{'cluster id':<24} {'controller':<12} {'engines':<9} {'started':<20} connection file")
    for r in records:
        ctrl = r.get("controller") or {}
        state = f"pid {ctrl['pid']}" if _alive(ctrl.get("pid")) else "not running"
        engines = sum(h.engines for h in _restore(list(r.get("engines", []))) if h.alive())
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.get("created", 0)))
        print(f"{r['cluster_id']:<24} {state:<12} {engines:<9} {started:<20} {r.get('connection_file', '')}")
    return 0


def cmd_engine(args: argparse.Namespace, extra: list[str]) -> int:
    """``corral engine``: run one engine in the foreground (arguments go to ``corral.engine``)."""
    from corral.wire.paths import connection_file_path

    argv = list(extra)
    if "--connection-file" not in argv:
        argv = ["--connection-file", str(connection_file_path(args.cluster_id)), *argv]
    os.execv(sys.executable, [sys.executable, "-m", "corral.engine", *argv])
    return 1  # not reached


def add_cluster_id(parser: argparse.ArgumentParser) -> None:
    """Add ``--cluster-id`` to a subcommand."""
    parser.add_argument(
        "--cluster-id",
        type=_cluster_id,
        default=DEFAULT_CLUSTER_ID,
        metavar="ID",
        help="which cluster (default: %(default)s)",
    )
