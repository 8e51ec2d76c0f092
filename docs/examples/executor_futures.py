"""Use a cluster through the standard ``concurrent.futures`` interface.

``rc.executor()`` is a :class:`concurrent.futures.Executor`: code written for a
``ProcessPoolExecutor`` runs on the cluster unchanged, and its futures work with
``concurrent.futures.wait``, ``as_completed`` and ``asyncio``::

    $ python docs/examples/executor_futures.py
    primes below 200,000 in 8 ranges: 17984 (as_completed order: [...])
    map over 10 numbers: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
    asyncio gathered: [1, 8, 27]
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from concurrent.futures import Executor


def count_primes(lo: int, hi: int) -> int:
    """Count the primes in ``[lo, hi)`` by trial division."""
    count = 0
    for n in range(max(lo, 2), hi):
        if all(n % d for d in range(2, int(n**0.5) + 1)):
            count += 1
    return count


def square(x: int) -> int:
    """Return ``x * x``."""
    return x * x


def cube(x: int) -> int:
    """Return ``x ** 3``."""
    return x**3


def work(executor: Executor) -> int:
    """Code that knows only the Executor interface; returns the number of primes below 200,000."""
    bounds = [(i * 25_000, (i + 1) * 25_000) for i in range(8)]
    futures = {executor.submit(count_primes, lo, hi): i for i, (lo, hi) in enumerate(bounds)}
    order = [futures[f] for f in concurrent.futures.as_completed(futures, timeout=120)]
    total = sum(f.result() for f in futures)
    print(f"primes below 200,000 in {len(bounds)} ranges: {total} (as_completed order: {order})")
    print(f"map over 10 numbers: {list(executor.map(square, range(10), timeout=60))}")
    return total


async def with_asyncio(executor: Executor) -> list[int]:
    """Await the executor's futures from asyncio."""
    futures = [asyncio.wrap_future(executor.submit(cube, x)) for x in (1, 2, 3)]
    return list(await asyncio.gather(*futures))


def main() -> int:
    """Run the same code on the cluster's executor; return the number of primes."""
    from corral.cluster import Cluster

    with Cluster(n=2) as rc, rc.executor() as executor:
        total = work(executor)
        print(f"asyncio gathered: {asyncio.run(with_asyncio(executor))}")
    assert total == 17984, total
    return total


if __name__ == "__main__":
    main()
