"""On/off switches read from the environment (``CORRAL_SHM``, ``CORRAL_DIRECT``)."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["env_switch"]

_ON = ("", "1", "on", "yes", "true")
_OFF = ("0", "off", "no", "false")


def env_switch(name: str, environ: Mapping[str, str], on: str, off: str) -> bool:
    """Return whether the switch ``name`` is on in ``environ`` (unset counts as on).

    ``on`` and ``off`` say what each setting means, for the error message.

    Raises
    ------
    ValueError
        If the variable is set to something other than on/off words.
    """
    value = environ.get(name, "").strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    raise ValueError(f"{name}={value!r} is not understood: set it to 1 ({on}, the default) or 0 ({off})")
