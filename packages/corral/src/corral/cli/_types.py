"""argparse types shared by the ``corral`` subcommands."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["positive_float"]


def positive_float(what: str) -> Callable[[str], float]:
    """Return an argparse type accepting positive numbers; errors name ``what``."""

    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a number ({what})") from None
        if not number > 0:
            raise argparse.ArgumentTypeError(f"{what} must be positive, not {value}")
        return number

    return parse
