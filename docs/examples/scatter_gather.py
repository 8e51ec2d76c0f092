"""MPI-style scatter, compute, gather with numpy on a DirectView.

The rows of a matrix are scattered over the engines (each gets one contiguous block, sent
without copies), every engine normalizes its rows and computes their norms in its own
namespace, and the blocks are gathered back in order: the pattern of ``MPI_Scatter`` /
``MPI_Gather``, with the client as the root::

    $ python docs/examples/scatter_gather.py
    scattered 1000 x 200 rows over engines [0, 1]: blocks of [500, 500] rows
    gathered 1000 normalized rows; max |norm - 1| = 2.2e-16, matches the local result
"""

from __future__ import annotations

import numpy as np

from corral.cluster import Cluster


def main() -> float:
    """Scatter, compute on the engines, gather; return the largest deviation of a row norm from 1."""
    data = np.random.default_rng(0).normal(size=(1000, 200))
    with Cluster(n=2) as rc:
        dv = rc[:]
        dv.block = True
        dv.execute("import numpy as np")
        dv.scatter("rows", data)  # engine i gets rows[i * 500:(i + 1) * 500]
        sizes = dv.apply(lambda: len(rows))  # type: ignore[name-defined]  # noqa: F821 - an engine global
        # every engine works on its own block, in its own namespace
        dv.execute("unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)")
        unit = dv.gather("unit")
        norms = np.linalg.norm(unit, axis=1)
        print(f"scattered {data.shape[0]} x {data.shape[1]} rows over engines {rc.ids}: blocks of {sizes} rows")
    expected = data / np.linalg.norm(data, axis=1, keepdims=True)
    assert np.allclose(unit, expected), "the gathered rows differ from the local computation"
    deviation = float(np.abs(norms - 1).max())
    print(f"gathered {unit.shape[0]} normalized rows; max |norm - 1| = {deviation:.1e}, matches the local result")
    return deviation


if __name__ == "__main__":
    main()
