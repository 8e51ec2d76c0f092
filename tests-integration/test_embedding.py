"""docs/examples/embed_engine.py, an application embedding an engine, joins a real cluster.

The engine tests run the example against a scripted controller; here it registers with the
session's real controller, a client steers the application through its namespace, and a
shutdown request ends it cleanly, leaving the cluster as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from conftest import Processes

    from corral.client import Client
    from corral.cluster import Cluster

pytestmark = pytest.mark.timeout(60)

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "embed_engine.py"


def test_embedded_engine_joins_serves_its_namespace_and_leaves(
    cluster: Cluster, rc: Client, processes: Processes, wait_until: Callable[..., Any]
) -> None:
    before = rc.ids
    station = processes.spawn("embed-engine", str(EXAMPLE), str(cluster.connection_file), "--seconds", "50")
    wait_until(lambda: "serving the namespace" in station.output() or station.proc.poll() is not None, "it joins")
    line = station.output().splitlines()[0]
    eid = int(line.split()[1])
    assert line == f"engine {eid} serving the namespace of 'sensor-station'"
    rc.wait_for_engines(len(before) + 1, timeout=30)
    assert eid in rc.ids
    assert eid > max(before)

    view = rc[eid]
    view.execute("app.set_rate(20.0)", block=True)
    assert view.apply_sync(lambda: app.rate) == 20.0  # type: ignore[name-defined]  # noqa: F821 - the app's global
    wait_until(lambda: view.apply_sync(lambda: len(app.history)) > 2, "the application keeps sampling")  # type: ignore[name-defined]  # noqa: F821
    assert isinstance(view.apply_sync(lambda: app.mean()), float)  # type: ignore[name-defined]  # noqa: F821

    view.shutdown(block=True)
    assert station.finish() == 0, station.output()
    assert "engine stopped" in station.output()
    wait_until(lambda: eid not in rc.ids, f"engine {eid} leaves rc.ids")
    assert rc.ids == before
