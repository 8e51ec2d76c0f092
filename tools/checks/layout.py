"""The intended shape of the monorepo: the portions each distribution ships, what each may import.

This is the table that ``layers.py`` and ``wheels.py`` hold the code and the built wheels to
(the design's "Packages" section). Adding a distribution or a portion means adding it here.
"""

from __future__ import annotations

from typing import Final

__all__ = ["ANY", "MAY_IMPORT", "PORTIONS"]

#: Stands for "every distribution" in :data:`MAY_IMPORT`.
ANY: Final = frozenset({"*"})

#: The namespace portions (``corral/<name>/``) each distribution ships, and no others.
PORTIONS: Final[dict[str, frozenset[str]]] = {
    "corral-wire": frozenset({"wire"}),
    "corral-engine": frozenset({"engine"}),
    "corral-scheduler": frozenset({"scheduler"}),
    "corral-hub": frozenset({"hub"}),
    "corral-client": frozenset({"client"}),
    "corral-magics": frozenset({"magics"}),
    "corral": frozenset({"cluster", "launchers", "cli"}),
}

#: The other distributions whose portions a distribution's code may import: dependencies
#: point down only; engine, scheduler, hub and client are peers and share only the wire.
MAY_IMPORT: Final[dict[str, frozenset[str]]] = {
    "corral-wire": frozenset(),
    "corral-engine": frozenset({"corral-wire"}),
    "corral-scheduler": frozenset({"corral-wire"}),
    "corral-hub": frozenset({"corral-wire"}),
    "corral-client": frozenset({"corral-wire"}),
    "corral-magics": frozenset({"corral-client", "corral-wire"}),
    "corral": ANY,
}
