"""Run a graph of tasks, each starting only after the tasks it depends on have succeeded.

The graph is a small pipeline that passes data through files in a shared folder, as
workflows on a cluster with a shared file system do::

    load_a --+
             +--> merge --+--> summarize
    load_b --+            +--> check

All five tasks are submitted at once, each with the ``after`` flag set to the AsyncResults of
its parents (``view.temp_flags(after=[...])``).
The task scheduler holds a task until its parents have succeeded, then runs it on any engine,
so the client never waits in between. The metadata of each result says when it started and
completed on its engine, which shows the order::

    $ python docs/examples/dependency_dag.py
    load_a   engine 0  0.000 - 0.101 s
    load_b   engine 1  0.001 - 0.102 s
    merge    engine 0  0.105 - 0.110 s
    ...
    mean 0.5004 over 200000 values, check passed; every task started after its parents completed
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from corral.cluster import Cluster


def load(folder: str, name: str, seed: int) -> str:
    """Write 100,000 random numbers to ``folder/name.npy`` (standing in for a slow download)."""
    import time

    import numpy as np

    time.sleep(0.1)
    np.save(f"{folder}/{name}.npy", np.random.default_rng(seed).random(100_000))
    return name


def merge(folder: str) -> int:
    """Concatenate a.npy and b.npy into merged.npy; return its length."""
    import numpy as np

    merged = np.concatenate([np.load(f"{folder}/a.npy"), np.load(f"{folder}/b.npy")])
    np.save(f"{folder}/merged.npy", merged)
    return len(merged)


def summarize(folder: str) -> float:
    """Return the mean of merged.npy."""
    import numpy as np

    return float(np.load(f"{folder}/merged.npy").mean())


def check(folder: str) -> bool:
    """Return whether every merged value lies in [0, 1)."""
    import numpy as np

    values = np.load(f"{folder}/merged.npy")
    return bool(((values >= 0) & (values < 1)).all())


def main() -> float:
    """Run the graph; return the mean. Raises AssertionError if a task ran before a parent finished."""
    with tempfile.TemporaryDirectory() as folder, Cluster(n=2) as rc:
        view = rc.load_balanced_view()
        load_a = view.apply_async(load, folder, "a", 1)
        load_b = view.apply_async(load, folder, "b", 2)
        with view.temp_flags(after=[load_a, load_b]):
            merged = view.apply_async(merge, folder)
        with view.temp_flags(after=[merged]):
            mean = view.apply_async(summarize, folder)
            ok = view.apply_async(check, folder)
        nodes = {"load_a": load_a, "load_b": load_b, "merge": merged, "summarize": mean, "check": ok}
        parents = {"merge": ["load_a", "load_b"], "summarize": ["merge"], "check": ["merge"]}
        rc.wait(list(nodes.values()), timeout=60)
        t0 = min(ar.metadata["started"] for ar in nodes.values())
        for name, ar in nodes.items():
            start = (ar.metadata["started"] - t0).total_seconds()
            end = (ar.metadata["completed"] - t0).total_seconds()
            print(f"{name:<9} engine {ar.metadata['engine_id']}  {start:.3f} - {end:.3f} s")
        for child, ps in parents.items():
            for p in ps:
                assert nodes[child].metadata["started"] >= nodes[p].metadata["completed"], f"{child} ran before {p}"
        n, value, passed = merged.get(), mean.get(), ok.get()
    print(
        f"mean {value:.4f} over {n} values, check {'passed' if passed else 'FAILED'}; "
        "every task started after its parents completed"
    )
    assert not Path(folder).exists()
    return value


if __name__ == "__main__":
    main()
