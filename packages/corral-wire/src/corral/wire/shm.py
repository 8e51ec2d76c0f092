"""Large buffers through shared memory between two processes on one host.

Over TCP a buffer is copied four times between a client and an engine: into the client's
socket, out of it in the controller, into the controller's engine-facing socket, and out of it
in the engine (each copy also faults in freshly allocated pages). When both ends are on the
same host, a buffer of at least :attr:`SharedMemory.threshold` bytes instead goes into a
*segment*, a file in ``/dev/shm`` (tmpfs: memory, not disk):

- the sender writes the buffer into a segment with ``write(2)`` (one kernel copy, the one copy
  a socket send makes too; the sender never maps the segment, so its own memory does not grow) and sends the message with an empty frame in the buffer's place and the segment's name
  and size in the signed header (``header["shm"]``);
- relays forward that message like any other (it is small now): they never see the segment;
- the receiver checks the message's MAC, maps the segment read-only (no copy: the array it
  builds lives in the segment's pages), and checks the buffer's signed digest against the
  mapped bytes. A segment changed in between is rejected as ``tampered_buffer``, exactly like
  an altered frame.

A segment's name says which cluster made it (a tag derived from the key), the pid of the
process it is addressed to, and the sender's pid:
``corral-<tag>-<domain>-<receiver pid>-<sender pid>-<random>``. When the receiver no longer
uses a segment (the last array on it is gone) it renames it into the cluster's *pool* of free
segments (``corral-<tag>-<domain>-free-<size>-<random>``), and the next sender of a buffer of
about that size claims it (an atomic rename) and writes into pages that already exist, instead
of having the kernel allocate fresh ones (most of the cost of a large send on a VM). The pool is
bounded (:data:`POOL_MAX_BYTES`, and a quarter of the ``/dev/shm`` file system), and
:func:`sweep_segments`, which the controller runs every few seconds and at shutdown, removes
free segments idle for :data:`POOL_IDLE_SECONDS` and every segment whose receiver died.

A *reply* (engine -> client) is different: the hub keeps a record of every result, for any
client to fetch later, so a reply's segment is *kept*: named
``corral-<tag>-<domain>-kept-<sender pid>-<random>``, it belongs to the hub's record, not to
its receiver. Any process of the cluster on this host maps it read-only (:func:`take_segment`)
and neither removes it nor puts it in the pool; the hub hands the same name to a later
``get_result`` from this host (:class:`KeptSegment`), copies the bytes when it moves the record
to SQLite, and :func:`sweep_segments` lets go of a kept segment once no record holds it and
nobody was given its name for :data:`KEPT_GRACE_SECONDS`. Readers hold a shared ``flock`` on a
kept segment for as long as they map it, and the sweep puts one in the pool only under an
exclusive lock (else it waits for the next sweep), so no sender ever writes into pages a reader
may still map.

"On this host" is a :func:`domain`: the same boot, the same ``/dev/shm`` mount, the same pid
namespace and the same user. Peers in different domains (other hosts, containers with their
own ``/dev/shm``, another user) keep using frames. ``docs/data.md`` has the limits.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import mmap
import os
import re
import stat
import time
import weakref
from collections.abc import Container, Mapping
from typing import TYPE_CHECKING, Any, Final

from corral.wire._env import env_switch

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from corral.wire.message import Header

__all__ = [
    "DEFAULT_SHM_THRESHOLD",
    "KEPT_GRACE_SECONDS",
    "KeptSegment",
    "POOL_IDLE_SECONDS",
    "POOL_MAX_BYTES",
    "SHM_DIR",
    "SHM_ENV",
    "Segment",
    "SegmentError",
    "SharedMemory",
    "domain",
    "is_kept",
    "open_kept",
    "segment_tag",
    "shm_enabled",
    "sweep_segments",
    "take_references",
    "take_segment",
    "touch_kept",
]

log = logging.getLogger(__name__)

#: Where segments live: tmpfs on Linux.
SHM_DIR: Final = "/dev/shm"

#: Buffers of at least this many bytes go through shared memory (1 MiB); smaller ones are
#: cheaper as frames (a segment costs a directory scan, an open, a write, a map and a rename).
DEFAULT_SHM_THRESHOLD: Final = 1 << 20

#: Set to ``0`` (or ``off``, ``no``, ``false``) to keep every buffer in frames.
SHM_ENV: Final = "CORRAL_SHM"

#: The most bytes of free segments a cluster keeps for reuse on one host (also at most a quarter
#: of the ``/dev/shm`` file system).
POOL_MAX_BYTES: Final = 4 << 30

#: Free segments unused for this many seconds are removed by :func:`sweep_segments`.
POOL_IDLE_SECONDS: Final = 10.0

#: A kept segment (a reply's) that no record holds any more is removed once nobody was given its
#: name for this many seconds: time for its receivers to map it.
KEPT_GRACE_SECONDS: Final = 10.0

_PREFIX: Final = "corral-"
# corral-<cluster tag>-<domain>-<receiver pid>-<sender pid>-<random>
_NAME: Final = re.compile(r"corral-([0-9a-f]{12})-([0-9a-f]{16})-([0-9]+)-([0-9]+)-([0-9a-f]{16})")
# corral-<cluster tag>-<domain>-free-<size>-<random>
_FREE: Final = re.compile(r"corral-([0-9a-f]{12})-([0-9a-f]{16})-free-([0-9]+)-([0-9a-f]{16})")
# corral-<cluster tag>-<domain>-kept-<sender pid>-<random>: a reply's, owned by the hub's record
_KEPT: Final = re.compile(r"corral-([0-9a-f]{12})-([0-9a-f]{16})-kept-([0-9]+)-([0-9a-f]{16})")
# how segments are opened: never through a symbolic link, and never blocking (on a FIFO planted
# under a segment's name); that the file is a regular one of this user is checked after
_OPEN: Final = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
# peer addresses whose parse is remembered (beyond that, parsed each time)
_MAX_PEERS: Final = 1024
# one write(2) moves at most this much (Linux caps a single write near 2 GiB anyway)
_WRITE_STEP: Final = 1 << 30


class SegmentError(OSError):
    """A segment named in a message cannot be used (missing, wrong size, not ours)."""


class Segment(mmap.mmap):
    """A received segment, mapped read-only; returned to the pool when the last view goes."""


class KeptSegment(mmap.mmap):
    """A kept segment (a reply's) mapped read-only by the hub, to serve a stored result.

    Given as a buffer to :meth:`SharedMemory.outgoing` for a receiver on this host, it travels
    as a reference to the same segment (no copy); to any other receiver, as a frame.
    """

    #: the segment's file name in the shared-memory directory
    name: str


def shm_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``CORRAL_SHM`` allows shared memory (the default: yes).

    Raises
    ------
    ValueError
        If ``CORRAL_SHM`` is set to something other than on/off words.
    """
    return env_switch(SHM_ENV, os.environ if environ is None else environ, "shared memory on", "off")


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
        #: segments written, and how many of them were reused from the pool (diagnostics)
        self.written = 0
        self.reused = 0
        #: replies' segments are kept (owned by the hub's record, see the module docstring):
        #: an engine sets this; nothing else sends replies the hub stores
        self.keep_replies = False
        self._address = (0, "")
        self._peers: dict[str, int | None] = {}

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
        known = self._peers.get(address, -1)  # an engine sees the same few clients' addresses
        if known != -1:
            return known
        dom, _, pid = address.partition(":")
        found = int(pid) if dom == self.domain and pid.isdigit() else None
        if len(self._peers) < _MAX_PEERS:
            self._peers[address] = found
        return found

    def outgoing(
        self, header: Mapping[str, Any], parent: Mapping[str, Any], buffers: list[Any], route: int | None
    ) -> tuple[Mapping[str, Any], list[Any]]:
        """Move a message's large buffers into segments if its receiver is local.

        Parameters
        ----------
        header, parent
            The message's header and parent header.
        buffers
            Its buffers (left as they are).
        route
            The receiver's pid when the message is a request to a local engine
            (``Session.shm_routes``), else None.

        Returns
        -------
        (header, frames)
            The header to send (with ``shm`` references and, on a routed request, this
            process's ``shm_host`` so that the reply can come back the same way) and the frames
            to send in the buffers' places (empty ones for buffers now in segments).
        """
        pid = route
        kept = False
        if pid is not None:
            header = {**header, "shm_host": self.address}
        elif parent and header["msg_type"].endswith("_reply"):
            # a reply goes to the one client that sent the request (iopub fans out: never there)
            pid = self.local_pid(parent.get("shm_host"))
            kept = self.keep_replies
        if pid is None or not buffers:
            return header, buffers
        refs: list[list[Any]] = []
        out = buffers
        for i, buf in enumerate(buffers):
            name: str | None
            if type(buf) is KeptSegment:  # the hub serving a stored result: the same segment again
                name, size = buf.name, len(buf)
            else:
                size = buf.nbytes if type(buf) is memoryview else memoryview(buf).nbytes
                if size < self.threshold:
                    continue
                name = self.put(buf, pid, kept=kept)
            if name is None:
                continue
            if out is buffers:
                out = list(buffers)
            out[i] = b""
            refs.append([i, name, size])
        if refs:
            header = {**header, "shm": refs}
        return header, out

    def put(self, data: Buffer, receiver_pid: int, *, kept: bool = False) -> str | None:
        """Write ``data`` into a segment addressed to ``receiver_pid``; return its name.

        With ``kept``, the segment is a kept one (a reply's, owned by the hub's record: any
        process of the cluster on this host may map it, and none returns it to the pool).
        A free segment of the pool at least as large (and at most twice) is reused, else a new
        one is made. Returns None (and leaves nothing behind) if no segment can be had, e.g.
        when ``/dev/shm`` is full: the caller then sends the buffer as a frame.
        """
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        size = view.nbytes
        to = "kept" if kept else str(receiver_pid)
        name = f"{_PREFIX}{self.tag}-{self.domain}-{to}-{os.getpid()}-{os.urandom(8).hex()}"
        path = os.path.join(self.directory, name)
        fd = self._claim(size, path)
        if fd is None:
            try:
                fd = os.open(path, _OPEN | os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except OSError as err:
                log.info("cannot make a shared-memory segment in %s (%s); sending as a frame", self.directory, err)
                return None
        try:
            with view:
                done = 0
                while done < size:
                    done += os.pwrite(fd, view[done : done + _WRITE_STEP], done)
        except OSError as err:  # ENOSPC: tmpfs full
            log.info("cannot fill a shared-memory segment (%s); sending the buffer as a frame", err)
            _unlink(path)
            return None
        finally:
            os.close(fd)
        self.written += 1
        return name

    def _claim(self, size: int, path: str) -> int | None:
        """Take a free segment of ``size`` to ``2 * size`` bytes as ``path``; its fd, or None."""
        prefix = f"{_PREFIX}{self.tag}-{self.domain}-free-"
        try:
            names = os.listdir(self.directory)
        except OSError:
            return None
        candidates = []
        for free in names:
            if free.startswith(prefix):
                match = _FREE.fullmatch(free)
                if match is not None and size <= int(match.group(3)) <= 2 * size:
                    candidates.append((int(match.group(3)), free))
        for _, free in sorted(candidates):
            try:
                os.rename(os.path.join(self.directory, free), path)  # atomic: one claimant wins
            except OSError:
                continue  # another sender took it first
            try:
                fd = os.open(path, _OPEN | os.O_WRONLY)
            except OSError:
                _unlink(path)
                continue
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
                os.close(fd)
                _unlink(path)
                continue
            if info.st_size != size:
                os.ftruncate(fd, size)  # shrinking frees the pages past the end
            self.reused += 1
            return fd
        return None


def take_segment(name: object, size: object, tag: str, directory: str = SHM_DIR) -> memoryview:
    """Map the segment ``name`` read-only and return its ``size`` bytes.

    The returned view is the segment's memory (no copy). When the last view of it is released,
    the segment goes to the cluster's pool of free segments (or is removed if the pool is full).

    Raises
    ------
    SegmentError
        If ``name`` is not a segment of this cluster addressed to this process, the segment is
        missing (its receiver was presumed dead, or it was removed), is not a regular file of
        this user, or does not hold exactly ``size`` bytes. A segment of this cluster addressed
        to this process is removed when it is refused.
    """
    if not isinstance(name, str) or not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise SegmentError(f"a shared-memory reference needs a name and a positive size, not {name!r}, {size!r}")
    if is_kept(name, tag):
        return memoryview(open_kept(name, size, tag, directory))
    match = _NAME.fullmatch(name)
    if match is None or match.group(1) != tag:
        raise SegmentError(f"{name!r} is not a segment of this cluster")
    if int(match.group(3)) != os.getpid():
        raise SegmentError(f"segment {name} is addressed to pid {match.group(3)}, not to this process")
    path = os.path.join(directory, name)
    # the name is ours to remove only if this really is the file the sender made for us
    fd, info = _open_own(path, name)
    try:
        if info.st_size != size:
            _unlink(path)
            raise SegmentError(f"segment {name} holds {info.st_size} bytes, the message says {size}")
        # MAP_POPULATE: map every page now, in one call, instead of one fault per 4 KiB page later
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        try:
            mapped = Segment(fd, size, flags=flags, prot=mmap.PROT_READ)
        except OSError as err:
            _unlink(path)
            raise SegmentError(f"segment {name} cannot be mapped: {err.strerror}") from None
    finally:
        os.close(fd)
    free = f"{_PREFIX}{tag}-{match.group(2)}-free-{size}-{os.urandom(8).hex()}"
    weakref.finalize(mapped, _release, os.getpid(), path, os.path.join(directory, free), directory, tag, size)
    return memoryview(mapped)


def _open_own(path: str, name: str) -> tuple[int, os.stat_result]:
    """Open segment ``path`` read-only (never through a link, never blocking); return fd and stat.

    Raises
    ------
    SegmentError
        If it cannot be opened or is not a regular file of this user (nothing is left open).
    """
    try:
        fd = os.open(path, _OPEN | os.O_RDONLY)
    except OSError as err:
        raise SegmentError(f"segment {name} cannot be opened: {err.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            raise SegmentError(f"segment {name} is not a regular file of this user")
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def is_kept(name: object, tag: str) -> bool:
    """Whether ``name`` is a kept segment (a reply's, owned by the hub) of the cluster ``tag``."""
    if not isinstance(name, str):
        return False
    match = _KEPT.fullmatch(name)
    return match is not None and match.group(1) == tag


def open_kept(name: str, size: int, tag: str, directory: str = SHM_DIR) -> KeptSegment:
    """Map the kept segment ``name`` read-only (no copy); it is never removed or pooled here.

    Kept segments belong to the hub's record of a result, so any process of the cluster on
    this host may map one, as many times as it likes; the mapping stays valid after the hub
    removes the name.

    Raises
    ------
    SegmentError
        If ``name`` is not a kept segment of this cluster, is missing (its record was purged or
        expired, or the file was removed), is not a regular file of this user, or does not hold
        exactly ``size`` bytes.
    """
    if not is_kept(name, tag):
        raise SegmentError(f"{name!r} is not a kept segment of this cluster")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise SegmentError(f"a shared-memory reference needs a positive size, not {size!r}")
    path = os.path.join(directory, name)
    fd, info = _open_own(path, name)
    try:
        # a shared lock for as long as the mapping lives (the mapping holds the open file): the
        # sweep returns a kept segment to the pool only when it can lock it exclusively
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            raise SegmentError(f"segment {name} is being removed") from None
        try:
            now = os.stat(path)
        except OSError:
            now = None
        if now is None or (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino):
            raise SegmentError(f"segment {name} was removed while it was opened")
        if info.st_size != size:
            raise SegmentError(f"segment {name} holds {info.st_size} bytes, the message says {size}")
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        try:
            mapped = KeptSegment(fd, size, flags=flags, prot=mmap.PROT_READ)
        except OSError as err:
            raise SegmentError(f"segment {name} cannot be mapped: {err.strerror}") from None
    finally:
        os.close(fd)
    mapped.name = name
    return mapped


def touch_kept(name: str, directory: str = SHM_DIR) -> None:
    """Note that ``name`` was just handed out: :func:`sweep_segments` keeps it a grace period more."""
    with contextlib.suppress(OSError):
        os.utime(os.path.join(directory, name))


def take_references(header: Header, buffers: list[memoryview], tag: str) -> str:
    """Replace the buffers a checked message sent through shared memory by their segments.

    Pops ``header["shm"]``; every segment it names for this process is taken, even when one of
    them fails. Returns what is wrong (the first problem), or ``""``.
    """
    refs = header.pop("shm")
    if not isinstance(refs, list):
        return "the header's shm field is not a list"
    problem = ""
    for ref in refs:
        if not (isinstance(ref, list) and len(ref) == 3 and type(ref[0]) is int and 0 <= ref[0] < len(buffers)):
            problem = problem or f"bad shared-memory reference {ref!r}"
            continue
        i, name, size = ref
        if buffers[i].nbytes:
            problem = problem or f"buffer {i} is sent both as a frame and through shared memory"
            continue
        try:
            buffers[i] = take_segment(name, size, tag)
        except SegmentError as err:
            problem = problem or f"buffer {i}: {err}"
    return problem


def _release(owner: int, path: str, free: str, directory: str, tag: str, size: int) -> None:
    """A received segment is no longer used: put it in the pool, or remove it if that is full."""
    if os.getpid() != owner:
        return  # a forked child dropping its inherited copy: the parent may still use the pages
    try:
        if _pool_bytes(directory, tag) + size <= _pool_limit(directory):
            os.rename(path, free)
            os.utime(free)  # its idle time starts now
        else:
            os.unlink(path)
    except OSError:
        pass  # swept already (the cluster stopped), or the directory is gone


def _pool_bytes(directory: str, tag: str) -> int:
    prefix = f"{_PREFIX}{tag}-"
    total = 0
    for name in os.listdir(directory):
        if name.startswith(prefix):
            match = _FREE.fullmatch(name)
            if match is not None:
                total += int(match.group(3))
    return total


def _pool_limit(directory: str) -> int:
    fs = os.statvfs(directory)
    return min(POOL_MAX_BYTES, fs.f_blocks * fs.f_frsize // 4)


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


def _retire(path: str, directory: str, name: str) -> bool:
    """Let go of a kept segment no record holds: into the pool if nobody maps it.

    Readers hold a shared lock while they map it (:func:`open_kept`); one that cannot be
    locked exclusively is still in use and stays until the next sweep (its pages are in use
    anyway). Returns whether it was pooled or removed.
    """
    fd = os.open(path, _OPEN | os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        info = os.fstat(fd)
        tag, dom = name.split("-")[1:3]
        if stat.S_ISREG(info.st_mode) and info.st_size > 0:
            pool = _pool_bytes(directory, tag) + info.st_size <= _pool_limit(directory)
        else:
            pool = False
        if pool:
            free = os.path.join(directory, f"{_PREFIX}{tag}-{dom}-free-{info.st_size}-{os.urandom(8).hex()}")
            os.rename(path, free)  # still locked: a reader that opened the old name sees it gone
            os.utime(free)
        else:
            os.unlink(path)
        return True
    finally:
        os.close(fd)


def sweep_segments(
    key: bytes, *, everything: bool = False, directory: str = SHM_DIR, kept: Container[str] | None = None
) -> int:
    """Remove a cluster's segments nobody will read, and idle free ones (all with ``everything``).

    A segment whose receiver died can no longer be read by anyone; a free segment of the pool
    unused for :data:`POOL_IDLE_SECONDS` is returned to the system. The controller calls this
    periodically, and with ``everything=True`` when it stops (no engine or client of the
    cluster reads any more; processes still holding a segment keep their mapping).

    Kept segments (replies', owned by the hub's records) are judged only when ``kept`` is
    given, the names the hub's records hold: one not among them whose file was neither made
    nor handed out (:func:`touch_kept`) for :data:`KEPT_GRACE_SECONDS` goes to the pool (or
    is removed if the pool is full) as soon as no process maps it.

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
    now = time.time()
    for name in names:
        if not name.startswith(prefix):
            continue
        path = os.path.join(directory, name)
        if everything:
            gone = True
        elif (match := _NAME.fullmatch(name)) is not None:
            gone = not _alive(int(match.group(3)))
        elif _FREE.fullmatch(name) is not None:
            try:
                gone = now - os.stat(path).st_mtime > POOL_IDLE_SECONDS
            except OSError:
                continue
        elif _KEPT.fullmatch(name) is not None:
            if kept is None or name in kept:
                continue
            try:
                if now - os.stat(path).st_mtime > KEPT_GRACE_SECONDS and _retire(path, directory, name):
                    removed += 1
            except OSError:
                pass
            continue
        else:
            continue
        if gone:
            try:
                os.unlink(path)
            except OSError:
                continue
            removed += 1
    if removed:
        log.info("removed %d shared-memory segment(s) nobody will read", removed)
    return removed
