"""Large buffers through shared memory between two processes on one host.

Over TCP a buffer is copied four times between a client and an engine: into the client's
socket, out of it in the controller, into the controller's engine-facing socket, and out of it
in the engine (each copy also faults in freshly allocated pages). When both ends are on the
same host, a buffer of at least :attr:`SharedMemory.threshold` bytes instead goes into a
*segment*, a file in ``/dev/shm`` (tmpfs: memory, not disk):

- the sender writes the buffer into a new segment with ``write(2)`` (one kernel copy, the one
  copy a socket send makes too; the sender never maps the segment, so its own memory does not
  grow) and sends the message with an empty frame in the buffer's place and the segment's name
  and size in the signed header (``header["shm"]``);
- relays forward that message like any other (it is small now): they never see the segment;
- the receiver checks the message's MAC, maps the segment read-only (no copy: the array it
  builds lives in the segment's pages), removes its name at once, and checks the buffer's
  signed digest against the mapped bytes. A segment changed in between is rejected as
  ``tampered_buffer``, exactly like an altered frame.

A segment's name says which cluster made it (a tag derived from the key), the pid of the
process it is addressed to, and the sender's pid:
``corral-<tag>-<domain>-<receiver pid>-<sender pid>-<random>``. The receiver removes the name as soon as
it has mapped the segment, so a delivered buffer never stays in ``/dev/shm``; one whose
receiver died first is removed by :func:`sweep_segments`, which the controller runs every few
seconds and at shutdown.

"On this host" is a :func:`domain`: the same boot, the same ``/dev/shm`` mount, the same pid
namespace and the same user. Peers in different domains (other hosts, containers with their
own ``/dev/shm``, another user) keep using frames. ``docs/data.md`` has the limits.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import mmap
import os
import re
import stat
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "DEFAULT_SHM_THRESHOLD",
    "SHM_DIR",
    "SHM_ENV",
    "SegmentError",
    "SharedMemory",
    "domain",
    "segment_tag",
    "shm_enabled",
    "sweep_segments",
    "take_segment",
]

log = logging.getLogger(__name__)

#: Where segments live: tmpfs on Linux.
SHM_DIR: Final = "/dev/shm"

#: Buffers of at least this many bytes go through shared memory (1 MiB); smaller ones are
#: cheaper as frames (a segment costs an open, a write, a map and an unlink).
DEFAULT_SHM_THRESHOLD: Final = 1 << 20

#: Set to ``0`` (or ``off``, ``no``, ``false``) to keep every buffer in frames.
SHM_ENV: Final = "CORRAL_SHM"

_PREFIX: Final = "corral-"
# corral-<cluster tag>-<domain>-<receiver pid>-<sender pid>-<random>
_NAME: Final = re.compile(r"corral-([0-9a-f]{12})-([0-9a-f]{16})-([0-9]+)-([0-9]+)-([0-9a-f]{16})")
# one write(2) moves at most this much (Linux caps a single write near 2 GiB anyway)
_WRITE_STEP: Final = 1 << 30


class SegmentError(OSError):
    """A segment named in a message cannot be used (missing, wrong size, not ours)."""


def shm_enabled(environ: dict[str, str] | None = None) -> bool:
    """Whether ``CORRAL_SHM`` allows shared memory (the default: yes).

    Raises
    ------
    ValueError
        If ``CORRAL_SHM`` is set to something other than on/off words.
    """
    value = (os.environ if environ is None else environ).get(SHM_ENV, "").strip().lower()
    if value in ("", "1", "on", "yes", "true"):
        return True
    if value in ("0", "off", "no", "false"):
        return False
    raise ValueError(f"{SHM_ENV}={value!r} is not understood: set it to 1 (shared memory on, the default) or 0 (off)")


def domain(directory: str = SHM_DIR) -> str | None:
    """Return this process's shared-memory domain, or None if it cannot share memory.

    Two processes with the same domain can open each other's segments and check each other's
    pids: same boot (``/proc/sys/kernel/random/boot_id``), same ``directory`` mount (device
    and inode), same pid namespace, same user. None where ``directory`` is missing or not
    writable, or ``/proc`` is not Linux's.
    """
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        shm = os.stat(directory)
        pidns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    if not stat.S_ISDIR(shm.st_mode) or not os.access(directory, os.W_OK | os.X_OK):
        return None
    ident = f"{boot}|{shm.st_dev}|{shm.st_ino}|{pidns}|{os.getuid()}"
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def segment_tag(key: bytes) -> str:
    """Return the 12 hex digits that mark a cluster's segments (derived from its key, one-way)."""
    return hashlib.blake2b(key, digest_size=6, person=b"corral-shm-tag").hexdigest()


class SharedMemory:
    """The sending side of shared memory for one :class:`~corral.wire.session.Session`.

    Parameters
    ----------
    key
        The cluster key (only its :func:`segment_tag` is used).
    threshold
        Buffers of at least this many bytes go through segments.
    directory
        Where segments are made.

    Raises
    ------
    ValueError
        If ``threshold`` is below 1, or this process cannot share memory (:func:`domain` is None).
    """

    def __init__(self, key: bytes, threshold: int = DEFAULT_SHM_THRESHOLD, directory: str = SHM_DIR) -> None:
        if threshold < 1:
            raise ValueError(f"the shared-memory threshold must be at least 1 byte, not {threshold}")
        found = domain(directory)
        if found is None:
            raise ValueError(f"{directory} is not a writable directory here: shared memory is unavailable")
        self.threshold = int(threshold)
        self.directory = directory
        self.domain = found
        self.tag = segment_tag(key)
        #: segments written (for tests and diagnostics)
        self.written = 0
        self._address = (0, "")

    @property
    def address(self) -> str:
        """``"<domain>:<pid>"``: what a peer needs to send to this process through memory."""
        pid = os.getpid()  # a forked child is another receiver
        if self._address[0] != pid:
            self._address = (pid, f"{self.domain}:{pid}")
        return self._address[1]

    def local_pid(self, address: object) -> int | None:
        """The pid in a peer's :attr:`address` if it shares this domain, else None."""
        if not isinstance(address, str):
            return None
        dom, _, pid = address.partition(":")
        if dom != self.domain or not pid.isdigit():
            return None
        return int(pid)

    def put(self, data: Buffer, receiver_pid: int) -> str | None:
        """Write ``data`` into a new segment addressed to ``receiver_pid``; return its name.

        Returns None (and leaves nothing behind) if the segment cannot be made, e.g. when
        ``/dev/shm`` is full: the caller then sends the buffer as a frame.
        """
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        name = f"{_PREFIX}{self.tag}-{self.domain}-{receiver_pid}-{os.getpid()}-{os.urandom(8).hex()}"
        path = os.path.join(self.directory, name)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as err:
            log.info(
                "cannot make a shared-memory segment in %s (%s); sending the buffer as a frame", self.directory, err
            )
            return None
        try:
            with view:
                done, size = 0, view.nbytes
                while done < size:
                    done += os.write(fd, view[done : done + _WRITE_STEP])
        except OSError as err:  # ENOSPC: tmpfs full
            log.info("cannot fill a shared-memory segment (%s); sending the buffer as a frame", err)
            _unlink(path)
            return None
        finally:
            os.close(fd)
        self.written += 1
        return name


def take_segment(name: object, size: object, tag: str, directory: str = SHM_DIR) -> memoryview:
    """Map the segment ``name`` read-only, remove its name, and return its ``size`` bytes.

    The returned view is the segment's memory (no copy); it stays valid after the name is
    gone, and the memory is freed when the last view of it is released.

    Raises
    ------
    SegmentError
        If ``name`` is not a segment of this cluster addressed to this process, the segment is
        missing (its receiver was presumed dead, or it was removed), is not a regular file of
        this user, or does not hold exactly ``size`` bytes.
    """
    if not isinstance(name, str) or not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise SegmentError(f"a shared-memory reference needs a name and a positive size, not {name!r}, {size!r}")
    match = _NAME.fullmatch(name)
    if match is None or match.group(1) != tag:
        raise SegmentError(f"{name!r} is not a segment of this cluster")
    if int(match.group(3)) != os.getpid():
        raise SegmentError(f"segment {name} is addressed to pid {match.group(3)}, not to this process")
    path = os.path.join(directory, name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as err:
        raise SegmentError(f"segment {name} cannot be opened: {err.strerror}") from None
    try:
        info = os.fstat(fd)
        # the name is ours to remove only if this really is the file the sender made for us
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            raise SegmentError(f"segment {name} is not a regular file of this user")
        _unlink(path)
        if info.st_size != size:
            raise SegmentError(f"segment {name} holds {info.st_size} bytes, the message says {size}")
        # MAP_POPULATE: map every page now, in one call, instead of one fault per 4 KiB page later
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        mapped = mmap.mmap(fd, size, flags=flags, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    return memoryview(mapped)


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, someone else's
        return True
    return True


def sweep_segments(key: bytes, *, everything: bool = False, directory: str = SHM_DIR) -> int:
    """Remove a cluster's segments whose receiver has died (all of them with ``everything``).

    A segment is removed by its receiver once mapped; one whose receiver died first can no
    longer be read by anyone. The controller calls this periodically, and with
    ``everything=True`` when it stops (no engine or client of the cluster reads any more).

    Returns
    -------
    int
        How many segments were removed.
    """
    here = domain(directory)
    if here is None:
        return 0
    # only this domain's segments: pids of another pid namespace mean nothing here
    prefix = f"{_PREFIX}{segment_tag(key)}-{here}-"
    removed = 0
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    for name in names:
        if not name.startswith(prefix):
            continue
        match = _NAME.fullmatch(name)
        if match is None:
            continue
        if everything or not _alive(int(match.group(3))):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                continue
            removed += 1
    if removed:
        log.info("removed %d shared-memory segment(s) nobody will read", removed)
    return removed
