"""Errors the engine raises to the program that starts it.

They extend corral's one error tree (see :mod:`corral.wire.errors`)::

    CorralError
    └── RegistrationError         the controller refused this engine, or could not be reached
        └── RegistrationTimeout   no registration reply in time (also a TimeoutError)

    corral.wire.errors.TimeoutError
    └── RegistrationTimeout

Errors raised by user code on the engine never leave the engine as exceptions: they travel to
the client as wrapped exceptions (:func:`corral.wire.wrap_exception`).
"""

from __future__ import annotations

from corral.wire.errors import CorralError
from corral.wire.errors import TimeoutError as CorralTimeoutError

__all__ = ["RegistrationError", "RegistrationTimeout"]


class RegistrationError(CorralError):
    """The controller refused this engine, or the engine could not register with it.

    The message names the controller's address and, when the controller answered, its
    reason (for example a :class:`~corral.wire.ProtocolVersionError` naming both versions).
    """


class RegistrationTimeout(RegistrationError, CorralTimeoutError):
    """No registration reply arrived before the deadline; the message names the address."""
