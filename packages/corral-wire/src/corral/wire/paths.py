"""Where corral keeps its files: connection files and cluster records.

Everything lives under one directory, ``$CORRAL_DIR`` or ``~/.corral``, created with mode 0700::

    ~/.corral/
      security/corral-<cluster_id>.json   connection files (mode 0600)
      clusters/<cluster_id>.json          what `corral list` and `corral stop` read
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

__all__ = [
    "DEFAULT_CLUSTER_ID",
    "cluster_record_path",
    "connection_file_path",
    "corral_dir",
    "private_dir",
    "validate_cluster_id",
]

#: The cluster id used when none is given.
DEFAULT_CLUSTER_ID: Final = "default"

_CLUSTER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def corral_dir() -> Path:
    """Return corral's directory: ``$CORRAL_DIR`` if set, else ``~/.corral``."""
    env = os.environ.get("CORRAL_DIR")
    return Path(env).expanduser() if env else Path.home() / ".corral"


def validate_cluster_id(cluster_id: str) -> str:
    """Return ``cluster_id`` if it is usable in file names.

    Raises
    ------
    ValueError
        If it is empty, longer than 64 characters, or holds characters other than letters,
        digits, ``.``, ``_`` and ``-`` (or starts with one of the last three).
    """
    if not isinstance(cluster_id, str) or not _CLUSTER_ID.match(cluster_id):
        raise ValueError(
            f"invalid cluster id {cluster_id!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (e.g. 'default' or 'sweep-2')"
        )
    return cluster_id


def connection_file_path(cluster_id: str = DEFAULT_CLUSTER_ID) -> Path:
    """Return the connection file path of cluster ``cluster_id``.

    Raises
    ------
    ValueError
        If the cluster id is invalid.
    """
    return corral_dir() / "security" / f"corral-{validate_cluster_id(cluster_id)}.json"


def cluster_record_path(cluster_id: str = DEFAULT_CLUSTER_ID) -> Path:
    """Return the path of the record `corral start` keeps for cluster ``cluster_id``.

    Raises
    ------
    ValueError
        If the cluster id is invalid.
    """
    return corral_dir() / "clusters" / f"{validate_cluster_id(cluster_id)}.json"


def private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents with mode 0700; return ``path``.

    Directories that already exist are left as they are.
    """
    missing = []
    current = Path(path)
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
    return Path(path)
