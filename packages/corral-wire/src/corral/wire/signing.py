"""Message authentication schemes.

A scheme provides two things: a keyed MAC over the small frames of a message, and a digest of
each buffer frame. The MAC covers the buffer digests, so every byte that can reach execution is
authenticated, while a relay can check who sent a message without hashing its buffers (see
``docs/protocol.md``). Scheme names carry a version so that a later change of layout is a new
name, not a silent reinterpretation.

=============================  ===========================  ==========================================
scheme                         MAC (JSON frames, digests)   per-buffer digest
=============================  ===========================  ==========================================
``blake3-gmac-v1`` (default)   keyed BLAKE3, 32 bytes       AES-256-GMAC: 12-byte random nonce + 16-byte tag
``blake3-v1``                  keyed BLAKE3, 32 bytes       BLAKE3, 32 bytes
``hmac-sha256-v1``             HMAC-SHA256, 32 bytes        SHA-256, 32 bytes
(empty key)                    none                         none
=============================  ===========================  ==========================================

The default authenticates buffers with AES-GMAC because CPUs with AES and carry-less multiply
instructions compute it at several times the speed of a memory copy (measured here: ~20 GB/s
on one core, against ~11 GB/s for ``np.copyto`` and ~7.6 GB/s for BLAKE3 on two cores), so
sending and checking a large array costs about as much as copying it once. GMAC keys are
derived from the cluster key; nonces are random per buffer (96 bits), carried with the tag so
relays can forward digests unchanged.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer is Python 3.12+

__all__ = [
    "DEFAULT_SCHEME",
    "SCHEMES",
    "Blake3GmacSigner",
    "Blake3Signer",
    "HmacSha256Signer",
    "NullSigner",
    "Signer",
    "make_signer",
]

DEFAULT_SCHEME: Final = "blake3-gmac-v1"

# Buffers at least this large are hashed with several threads (BLAKE3 only).
_THREADED_DIGEST_BYTES: Final = 1 << 22

# Buffer formats blake3 hashes as they are; any other contiguous buffer is cast to bytes first.
_BYTE_FORMATS: Final = frozenset({"B", "b", "c"})

# The most associated data one AESGCM call takes; larger buffers are tagged in parts.
_GMAC_ONE_CALL_MAX = 2**31 - 1


class _Hasher(Protocol):
    def update(self, data: Buffer, /) -> object: ...

    def digest(self) -> bytes: ...


class Signer(Protocol):
    """What :class:`~corral.wire.session.Session` needs from a scheme."""

    scheme: str
    #: bytes of MAC in every signature frame (0 when unsigned)
    mac_size: int
    #: bytes of digest per buffer in every signature frame (0 when unsigned)
    digest_size: int

    def new_mac(self) -> _Hasher:
        """Return a fresh keyed hasher to feed the signed fields to."""
        ...

    def digest(self, data: Buffer) -> bytes:
        """Return the digest of one buffer frame (``digest_size`` bytes)."""
        ...

    def verify(self, data: Buffer, digest: bytes) -> bool:
        """Return whether ``digest`` (as made by :meth:`digest`) matches ``data``, in constant time."""
        ...


class Blake3Signer:
    """Keyed BLAKE3 MACs; BLAKE3 buffer digests, multi-threaded on large buffers."""

    scheme = "blake3-v1"
    mac_size = 32
    digest_size = 32

    def __init__(self, key: bytes) -> None:
        import blake3

        self._blake3 = blake3.blake3
        # BLAKE3's keyed mode takes exactly 32 bytes; longer or shorter keys are hashed to 32
        # with BLAKE3's own key derivation so every key length is usable.
        if len(key) != 32:
            key = blake3.blake3(key, derive_key_context="corral 2026 signing key v1").digest()
        self._base = blake3.blake3(key=key)
        self._auto = blake3.blake3.AUTO

    def new_mac(self) -> _Hasher:
        return self._base.copy()

    def digest(self, data: Buffer) -> bytes:
        view = memoryview(data)
        if view.format not in _BYTE_FORMATS:
            view = view.cast("B")  # blake3 reads only byte buffers; hash e.g. a float array's bytes
        if view.nbytes >= _THREADED_DIGEST_BYTES:
            return self._blake3(view, max_threads=self._auto).digest()
        return self._blake3(view).digest()

    def verify(self, data: Buffer, digest: bytes) -> bool:
        return hmac.compare_digest(self.digest(data), digest)


class Blake3GmacSigner(Blake3Signer):
    """Keyed BLAKE3 MACs; AES-256-GMAC buffer tags with a random 96-bit nonce each (the default)."""

    scheme = "blake3-gmac-v1"
    digest_size = 28  # 12-byte nonce, then the 16-byte tag

    def __init__(self, key: bytes) -> None:
        import blake3
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        super().__init__(key)
        self._gmac_key = blake3.blake3(key, derive_key_context="corral 2026 buffer gmac key v1").digest()
        self._gmac = AESGCM(self._gmac_key)

    def _tag(self, nonce: bytes, data: Buffer) -> bytes:
        view = memoryview(data)
        if view.format not in _BYTE_FORMATS or view.ndim != 1:
            view = view.cast("B")
        if view.nbytes > _GMAC_ONE_CALL_MAX:
            return self._tag_in_parts(nonce, view)
        # GCM over no plaintext authenticates the associated data alone: that is GMAC
        return self._gmac.encrypt(nonce, b"", view)

    def _tag_in_parts(self, nonce: bytes, view: memoryview) -> bytes:
        """The same tag for a buffer too large for one AESGCM call (2 GiB and more).

        GCM hashes associated data as one stream, so feeding it in parts gives the tag of the
        whole; ``AESGCM.encrypt`` refuses more than 2**31 - 1 bytes in one call.
        """
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        encryptor = Cipher(algorithms.AES(self._gmac_key), modes.GCM(nonce)).encryptor()
        step = _GMAC_ONE_CALL_MAX - _GMAC_ONE_CALL_MAX % 16  # whole AES blocks per part
        for start in range(0, view.nbytes, step):
            encryptor.authenticate_additional_data(view[start : start + step])
        encryptor.finalize()
        return encryptor.tag

    def digest(self, data: Buffer) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._tag(nonce, data)

    def verify(self, data: Buffer, digest: bytes) -> bool:
        if len(digest) != self.digest_size:
            return False
        return hmac.compare_digest(self._tag(digest[:12], data), digest[12:])


class HmacSha256Signer:
    """HMAC-SHA256 MACs and SHA-256 buffer digests (for sites that require FIPS algorithms)."""

    scheme = "hmac-sha256-v1"
    mac_size = 32
    digest_size = 32

    def __init__(self, key: bytes) -> None:
        self._base = hmac.new(key, digestmod=hashlib.sha256)

    def new_mac(self) -> _Hasher:
        return self._base.copy()

    def digest(self, data: Buffer) -> bytes:
        return hashlib.sha256(data).digest()

    def verify(self, data: Buffer, digest: bytes) -> bool:
        return hmac.compare_digest(self.digest(data), digest)


class _NoMac:
    def update(self, data: Buffer, /) -> None:
        return None

    def digest(self) -> bytes:
        return b""


class NullSigner:
    """No authentication at all: what an explicitly empty key asks for."""

    scheme = "none"
    mac_size = 0
    digest_size = 0

    def new_mac(self) -> _Hasher:
        return _NoMac()

    def digest(self, data: Buffer) -> bytes:
        return b""

    def verify(self, data: Buffer, digest: bytes) -> bool:
        return True


SCHEMES: Final = (Blake3GmacSigner.scheme, Blake3Signer.scheme, HmacSha256Signer.scheme)


def make_signer(scheme: str, key: bytes) -> Signer:
    """Return the signer for ``scheme`` keyed with ``key``.

    Parameters
    ----------
    scheme
        One of :data:`SCHEMES`.
    key
        The shared key; an empty key gives a :class:`NullSigner` whatever the scheme.

    Raises
    ------
    ValueError
        If ``scheme`` is not known.
    """
    if not key:
        return NullSigner()
    if scheme == Blake3GmacSigner.scheme:
        return Blake3GmacSigner(key)
    if scheme == Blake3Signer.scheme:
        return Blake3Signer(key)
    if scheme == HmacSha256Signer.scheme:
        return HmacSha256Signer(key)
    raise ValueError(
        f"unknown signature scheme {scheme!r}: use one of {', '.join(SCHEMES)} "
        "(set `signature_scheme` in the connection file or the Session)"
    )
