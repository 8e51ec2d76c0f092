"""IPython magics for corral: ``%px``, ``%%px``, ``%autopx``, ``%pxresult``, ``%pxconfig``.

Load them in IPython or Jupyter with ``%load_ext corral.magics`` (they connect to the default
cluster on first use), or bind them to a view::

    from corral.client import Client
    rc = Client()
    rc[:].activate()                 # %px, %%px, %autopx, %pxresult, %pxconfig on all engines
    rc[::2].activate("_even")        # %px_even, ... on the even ones

``view.activate(suffix)`` and ``corral.magics.activate(view, suffix)`` are the same call. This is
the only corral distribution that imports IPython.
"""

from __future__ import annotations

from typing import Any

from IPython.core.getipython import get_ipython

from corral.client import DirectView
from corral.magics._errors import render_errors
from corral.magics._magics import INTERRUPT_WAIT, ParallelMagics
from corral.magics._version import __version__

__all__ = [
    "INTERRUPT_WAIT",
    "ParallelMagics",
    "__version__",
    "activate",
    "load_ipython_extension",
    "render_errors",
]


def activate(view: DirectView, suffix: str = "", shell: Any | None = None) -> ParallelMagics:
    """Register the parallel magics for ``view`` in the running IPython session.

    Parameters
    ----------
    view
        The :class:`~corral.client.DirectView` the magics run on (``rc[:]``, ``rc[::2]`` ...).
    suffix
        Appended to each magic's name, so several views can have magics at once:
        ``activate(rc[::2], "_even")`` gives ``%px_even``, ``%%px_even``, ``%autopx_even``,
        ``%pxresult_even`` and ``%pxconfig_even``. Activating again with the same suffix
        replaces the view.
    shell
        The shell to register in (default: the running one).

    Returns
    -------
    ParallelMagics
        The magics object (its attributes are the ``%pxconfig`` defaults).

    Raises
    ------
    TypeError
        If ``view`` is not a DirectView.
    ValueError
        If ``suffix`` is not made of letters, digits and underscores.
    RuntimeError
        If there is no running IPython session (``shell`` not given).
    """
    if not isinstance(view, DirectView):
        raise TypeError(f"the magics run on a DirectView (rc[:], rc[0], rc.direct_view()), not {type(view).__name__}")
    ip = shell if shell is not None else get_ipython()
    if ip is None:
        raise RuntimeError("activate() registers IPython magics: call it in an IPython or Jupyter session")
    magics = ParallelMagics(ip, view, suffix)
    ip.register_magics(magics)
    return magics


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext corral.magics``: register the magics; they connect to the default cluster on first use.

    A view activated later (``rc[:].activate()``) takes their place.
    """
    ip.register_magics(ParallelMagics(ip, None, ""))
