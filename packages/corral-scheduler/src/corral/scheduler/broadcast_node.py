"""One node of the broadcast tree as its own process: ``python -m corral.scheduler.broadcast_node``.

The controller starts one per node (:mod:`corral.scheduler.broadcast` explains the tree) and
writes the node's settings as one line of JSON to its standard input::

    {"key": "<hex>", "signature_scheme": "hmac-sha256", "curve": false,
     "curve_public_key": null, "ip": "127.0.0.1", "port": 0, "parent": "tcp://127.0.0.1:5001",
     "depth": 1, "fanout": 2, "level": 1, "index": 0}

(the key goes through the pipe, never the command line, where other users could read it). The
node binds its children's ROUTER on ``ip`` behind the same gate as the controller's sockets
(the key's PLAIN token, or CurveZMQ with the key pair derived from the key, so engines present
the credentials they present to the controller), answers ``{"port": N}`` on one line of its
standard output, connects to ``parent`` and serves. Standard input stays open as a lifeline: when
the controller closes it, or dies, the node stops; SIGTERM and SIGINT stop it too.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from typing import IO, Any

import zmq

from corral.scheduler.broadcast import BroadcastNode, TreeShape, node_identity
from corral.wire import Session, harden
from corral.wire.gate import Gate, admit
from corral.wire.loop import Reactor
from corral.wire.protocol import DEFAULT_BUFFER_FRAME_SIZE

__all__ = ["NodeConfigError", "main", "parse_config", "serve"]

log = logging.getLogger(__name__)

_REQUIRED = {
    "key": str,
    "ip": str,
    "parent": str,
    "depth": int,
    "fanout": int,
    "level": int,
    "index": int,
}


class NodeConfigError(ValueError):
    """The settings line a broadcast node read is not usable."""


def parse_config(line: str) -> dict[str, Any]:
    """Parse and check a node's settings line.

    Raises
    ------
    NodeConfigError
        If the line is not a JSON object, lacks a setting, or a setting has the wrong type.
    """
    try:
        config = json.loads(line)
    except ValueError as err:
        raise NodeConfigError(
            f"the broadcast node's settings are not JSON ({err}); the controller writes them"
        ) from None
    if not isinstance(config, dict):
        raise NodeConfigError("the broadcast node's settings must be a JSON object")
    for name, kind in _REQUIRED.items():
        value = config.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise NodeConfigError(f"the broadcast node's setting {name!r} must be a {kind.__name__}, not {value!r}")
    port = config.setdefault("port", 0)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port < 65536:
        raise NodeConfigError(f"the broadcast node's setting 'port' must be 0..65535, not {port!r}")
    limit = config.setdefault("max_frame_size", DEFAULT_BUFFER_FRAME_SIZE)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise NodeConfigError(f"the broadcast node's setting 'max_frame_size' must be a positive int, not {limit!r}")
    try:
        TreeShape(config["depth"], config["fanout"])
    except ValueError as err:
        raise NodeConfigError(str(err)) from None
    return config


def serve(config: dict[str, Any], announce: IO[str], lifeline: IO[str] | None = None) -> None:
    """Run a node with ``config`` (from :func:`parse_config`) until stopped.

    Parameters
    ----------
    config
        The node's settings.
    announce
        Where the bound port is written, as one JSON line.
    lifeline
        Read in a thread; end-of-file stops the node.

    Raises
    ------
    OSError
        If the children's socket cannot be bound.
    ValueError
        If the node's place is outside the tree, or CurveZMQ is asked for without a key.
    """
    shape = TreeShape(config["depth"], config["fanout"])
    key = bytes.fromhex(config["key"])
    session = Session(key, scheme=config.get("signature_scheme") or "hmac-sha256")
    context: zmq.Context[Any] = zmq.Context()
    gate = Gate(context, key, curve=bool(config.get("curve")))
    reactor = Reactor(context)
    up = admit(harden(context.socket(zmq.DEALER), max_frame_size=None), key, config.get("curve_public_key"))
    # engines' (and children's) replies arrive split at the data channels' limit; a stranger's
    # handshake frame is bounded by it too (docs/decisions.md, per-channel frame limits)
    down = gate.guard(
        harden(context.socket(zmq.ROUTER)), max_frame_size=config.get("max_frame_size", DEFAULT_BUFFER_FRAME_SIZE)
    )
    try:
        ip = config["ip"]
        if ":" in ip:
            down.setsockopt(zmq.IPV6, 1)
            up.setsockopt(zmq.IPV6, 1)
        url_ip = f"[{ip}]" if ":" in ip else ip
        try:
            if config["port"]:
                down.bind(f"tcp://{url_ip}:{config['port']}")
                port = int(config["port"])
            else:
                port = down.bind_to_random_port(f"tcp://{url_ip}")
        except zmq.ZMQError as err:
            raise OSError(f"broadcast node cannot bind {ip}:{config['port'] or '(random)'}: {err.strerror}") from None
        up.setsockopt(zmq.IDENTITY, node_identity(config["level"], config["index"]))
        node = BroadcastNode(session, up, down, shape=shape, level=config["level"], index=config["index"])
        up.connect(config["parent"])
        node.register(reactor)
        announce.write(json.dumps({"port": port}) + "\n")
        announce.flush()
        if lifeline is not None:

            def watch() -> None:
                while lifeline.readline():
                    pass
                log.info("broadcast node %d-%d: the controller is gone; stopping", node.level, node.index)
                reactor.stop()

            threading.Thread(target=watch, name="corral-broadcast-lifeline", daemon=True).start()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: reactor.stop())
        reactor.run()
    finally:
        up.close(linger=0)
        down.close(linger=0)
        reactor.close()
        gate.stop()
        context.term()


def main(argv: list[str] | None = None) -> int:
    """Read the settings line from standard input and serve; return the exit status."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s broadcast-node %(levelname)s %(message)s")
    line = sys.stdin.readline()
    try:
        config = parse_config(line)
        serve(config, sys.stdout, sys.stdin)
    except (NodeConfigError, OSError, ValueError) as err:
        print(f"corral broadcast node: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
