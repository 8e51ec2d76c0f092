"""A client in its own process, for tests-integration/test_results.py.

``results_client.py submit CONNECTION_FILE N OUT``: send N load-balanced tasks (task ``i``
sleeps 10 ms and returns ``i * i``), write their msg_ids to OUT as JSON, wait until the
controller has acknowledged every one (``AsyncResult.wait_for_ack``), print ``acknowledged``
with the number still outstanding and how many the hub does not know (``result_status``:
``unknown``, which an acknowledgement rules out), then sleep until killed (the test kills it
with SIGKILL while most tasks are still outstanding).

``results_client.py fetch CONNECTION_FILE IDS``: fetch the results of the msg_ids in the JSON
file IDS with ``get_result`` and print ``fetched`` with each result (a value, or the error's
type name), the class of the result object, and a few metadata keys of each.

Every line printed is one JSON object.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from corral.client import Client, RemoteError


def report(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, "pid": os.getpid(), **fields}), flush=True)


def submit(connection_file: str, n: int, out: Path) -> None:
    rc = Client(connection_file)
    view = rc.load_balanced_view()
    ars = [view.apply_async(lambda i: __import__("time").sleep(0.01) or i * i, i) for i in range(n)]
    msg_ids = [ar.msg_ids[0] for ar in ars]
    out.write_text(json.dumps(msg_ids))
    deadline = time.monotonic() + 30
    for ar in ars:
        if not ar.wait_for_ack(max(0.0, deadline - time.monotonic())):
            report("not-acknowledged")
            return
    outstanding = len(rc.outstanding)
    report("acknowledged", n=n, outstanding=outstanding, unknown=len(rc.result_status(msg_ids)["unknown"]))
    time.sleep(120)


def fetch(connection_file: str, ids_file: Path) -> None:
    msg_ids = json.loads(ids_file.read_text())
    with Client(connection_file, timeout=30) as rc:
        ar = rc.get_result(msg_ids)
        ar.wait(60)
        values: list[object] = []
        for req_md, msg_id in zip(ar.metadata, msg_ids, strict=True):
            value = rc.results.get(msg_id)
            values.append({"error": type(value).__name__} if isinstance(value, RemoteError) else value)
            assert req_md["msg_id"] == msg_id
        report(
            "fetched",
            kind=type(ar).__name__,
            ready=ar.ready(),
            values=values,
            metadata=[
                {k: md[k] for k in ("status", "engine_uuid", "stdout")} | {"completed": str(md["completed"])}
                for md in ar.metadata
            ],
        )


def main() -> int:
    mode = sys.argv[1]
    if mode == "submit":
        submit(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
    elif mode == "fetch":
        fetch(sys.argv[2], Path(sys.argv[3]))
    else:
        print(f"unknown mode {mode!r}: submit or fetch", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
