"""The errors corral.client raises, re-exported from :mod:`corral.wire.errors`.

They live in ``corral.wire`` because engines raise and recognise them too; importing them from
here or from there gives the same classes. The tree::

    CorralError
    ├── WireError                  a message, payload or connection file is unusable
    │   ├── MessageRejected
    │   │   └── ProtocolVersionError
    │   ├── SerializationError     an argument or result cannot be (de)serialized
    │   └── ConnectionFileError    no usable connection file
    ├── RemoteError                raised by user code (or on its behalf) on an engine
    │   ├── CompositeError         several engines raised (a multi-engine call)
    │   ├── EngineError            the engine died or left while the request was pending
    │   ├── TaskAborted            the request was aborted before it ran
    │   ├── DependencyTimeout
    │   └── ImpossibleDependency
    ├── TimeoutError               also a builtin TimeoutError
    ├── NoEnginesRegistered        nothing to run on
    ├── ControllerLost             the controller stopped answering
    ├── ResultExpired              the hub dropped a result past its retention limit
    └── UnmetDependency            (on engines) a task's @depend/@require is not met there
"""

from __future__ import annotations

from corral.wire.errors import (
    CompositeError,
    ConnectionFileError,
    ControllerLost,
    CorralError,
    DependencyTimeout,
    EngineError,
    ImpossibleDependency,
    MessageRejected,
    NoEnginesRegistered,
    ProtocolVersionError,
    RemoteError,
    ResultExpired,
    SerializationError,
    TaskAborted,
    TimeoutError,  # noqa: A004 - corral's, a subclass of the builtin
    UnmetDependency,
    WireError,
)

__all__ = [
    "CompositeError",
    "ConnectionFileError",
    "ControllerLost",
    "CorralError",
    "DependencyTimeout",
    "EngineError",
    "ImpossibleDependency",
    "MessageRejected",
    "NoEnginesRegistered",
    "ProtocolVersionError",
    "RemoteError",
    "ResultExpired",
    "SerializationError",
    "TaskAborted",
    "TimeoutError",
    "UnmetDependency",
    "WireError",
]
