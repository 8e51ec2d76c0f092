"""The ``corral`` subcommands that manage clusters: start, stop, list, controller, engine."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from corral.wire.paths import DEFAULT_CLUSTER_ID, cluster_record_path, corral_dir, validate_cluster_id

__all__ = ["cmd_engine", "cmd_list", "cmd_start", "cmd_stop", "read_records"]


def _cluster_id(value: str) -> str:
    try:
        return validate_cluster_id(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


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
            ip=args.ip,
            log_level=args.log_level,
            engine_timeout=args.timeout,
            shutdown_atexit=False,
            signature_scheme=args.signature_scheme,
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


def _stop_record(record: dict[str, Any], timeout: float) -> None:
    pids = [p["pid"] for p in record.get("engines", [])]
    if record.get("controller"):
        pids.append(record["controller"]["pid"])
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
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
        engines = sum(1 for e in r.get("engines", []) if _alive(e.get("pid")))
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
        "--cluster-id", type=_cluster_id, default=DEFAULT_CLUSTER_ID, help="which cluster (default: %(default)s)"
    )
