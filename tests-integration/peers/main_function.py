"""A user's script whose function, defined in ``__main__``, reads the engine's globals.

``main_function.py CONNECTION_FILE``: push ``a = 21`` to engine 0, apply ``double_a`` (defined
here, in ``__main__``, reading the global ``a``) and print ``{"event": "result", "value": ...}``.
This script has its own global ``a`` too; the engine's must win.
"""

from __future__ import annotations

import json
import sys

from corral.client import Client

a = "the client's a"


def double_a() -> object:
    return a * 2


def main() -> int:
    with Client(sys.argv[1]) as rc:
        rc[0].push({"a": 21}, block=True)
        value = rc[0].apply_async(double_a).get(30)
    print(json.dumps({"event": "result", "value": value}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
