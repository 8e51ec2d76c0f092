"""The documentation names only what exists: every ``corral.*`` name in backticks resolves.

(An entry-point group of that name counts.)

"Coming from ipyparallel" (docs/ipyparallel.md) must also map every public name of
ipyparallel's client API; that half runs where ipyparallel is installed.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
_DOTTED = re.compile(r"`(corral(?:\.\w+)+)")


def _resolve(dotted: str) -> Any:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_every_corral_name_in_the_docs_resolves(page: str) -> None:
    text = (DOCS / page).read_text()
    # entry-point groups (`corral.activate`, `corral.launchers`) are names too, though not modules
    groups = {ep.group for dist in importlib.metadata.distributions() for ep in dist.entry_points}
    missing = []
    for dotted in sorted(set(_DOTTED.findall(text)) - groups):
        try:
            _resolve(dotted)
        except (ImportError, AttributeError):
            missing.append(dotted)
    assert not missing, f"{page} names what corral does not have: {missing}"


def test_coming_from_ipyparallel_maps_every_public_name() -> None:
    ipp = pytest.importorskip("ipyparallel")
    from ipyparallel.client.view import View

    page = (DOCS / "ipyparallel.md").read_text()
    names = {n for n in dir(ipp) if not n.startswith("_")}
    skip = set(dir(object))
    import traitlets

    skip |= set(dir(traitlets.HasTraits))
    for cls in (ipp.Client, View, ipp.DirectView, ipp.LoadBalancedView, ipp.BroadcastView, ipp.Cluster):
        names |= {n for n, _ in inspect.getmembers(cls) if not n.startswith("_")} - skip
    import concurrent.futures

    for cls in (ipp.AsyncResult, ipp.AsyncMapResult):
        names |= {n for n, _ in inspect.getmembers(cls) if not n.startswith("_")} - set(dir(concurrent.futures.Future))
    words = set(re.findall(r"\w+", page))
    unmapped = sorted(n for n in names if n not in words)
    assert not unmapped, f"docs/ipyparallel.md does not map: {unmapped}"
