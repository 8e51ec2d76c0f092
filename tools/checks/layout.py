"""The intended shape of the monorepo: the portions each distribution ships, what each may import.

This is the table that ``layers.py`` and ``wheels.py`` hold the code and the built wheels to
(the design's "Packages" section). Adding a distribution or a portion means adding it here.
"""

from __future__ import annotations

from typing import Final

__all__ = ["ANY", "FRONT_END", "MAY_IMPORT", "PORTIONS"]

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

#: Interactive front-end packages and the distributions that may import them. Everything below
#: corral-magics runs in engines, controllers and plain scripts, and must never pull IPython in
#: (corral-client uses a running IPython session's display machinery only through
#: ``sys.modules``, without importing it).
FRONT_END: Final[dict[str, frozenset[str]]] = {
    "IPython": frozenset({"corral-magics"}),
    "ipykernel": frozenset({"corral-magics"}),
    "ipywidgets": frozenset({"corral-magics"}),
}
