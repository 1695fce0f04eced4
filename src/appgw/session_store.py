"""A TLS session store in memory that every worker shares.

TLS 1.2 clients that do not take session tickets resume by session ID, and
the server must find the session that ID names. OpenSSL keeps sessions in a
cache of its own, private to each process: with several workers, a client
resumes only when it happens to reach the worker that made its session. The
master creates this store before it forks (an anonymous memory file mapped
shared), so every worker of every generation reads and writes the same one,
and it lives as long as the master: sessions resume on any worker and across
reloads (session_hooks.py connects it to OpenSSL).

The rules it keeps:

- Fixed slots (SLOT bytes each) in buckets of WAYS; a session ID picks its
  bucket, and a session goes into an empty or expired slot of its bucket,
  else over the one that expires first. A session too large for a slot is
  not stored.
- A slot holds its namespace (one per listener socket's TLS context, so a
  session is offered only where it was made), the session ID, when it
  expires, the session's bytes, and a CRC-32 of all of these: a slot a worker
  was killed while writing fails its checksum and counts as empty.
- Each bucket has its own lock, a POSIX record lock on the bucket's bytes of
  the memory file: held by one process at a time, released by the kernel if
  that process dies.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import zlib

SIZE = 10 * 1024 * 1024  # bytes of memory shared by the workers
SLOT = 1024  # bytes per session slot, its header included
WAYS = 4  # slots per bucket

# crc32, expires (Unix time, 0: empty), data length, id length, namespace, id
_HEAD = struct.Struct("<IqHB16s32s")
_DATA = 64  # where a slot's session bytes begin
CAPACITY = SLOT - _DATA  # the largest session a slot holds


class SessionStore:
    """Sessions by (namespace, session ID), in memory shared across fork()."""

    def __init__(self, size: int = SIZE) -> None:
        self.buckets = max(1, size // (SLOT * WAYS))
        self.size = self.buckets * SLOT * WAYS
        self.fd = os.memfd_create("appgw-tls-sessions")  # close-on-exec
        try:
            os.ftruncate(self.fd, self.size)
            self.memory = mmap.mmap(self.fd, self.size, mmap.MAP_SHARED)
        except OSError:
            os.close(self.fd)
            raise
        self.view = memoryview(self.memory)

    def close(self) -> None:
        self.view.release()
        self.memory.close()
        os.close(self.fd)

    def _bucket(self, session_id: bytes) -> int:
        return int.from_bytes(session_id[:8], "little") % self.buckets * SLOT * WAYS

    def _lock(self, bucket: int, how: int) -> None:
        fcntl.lockf(self.fd, how, SLOT * WAYS, bucket)

    def _slot(self, offset: int) -> tuple[int, int, bytes, bytes] | None:
        """(expires, data length, namespace, id) of a whole slot; None if empty or torn."""
        crc, expires, length, id_length, namespace, session_id = _HEAD.unpack_from(
            self.view, offset
        )
        if not expires or length > CAPACITY or id_length > 32:
            return None
        if zlib.crc32(self.view[offset + 4 : offset + _DATA + length]) != crc:
            return None
        return expires, length, namespace, session_id[:id_length]

    def put(
        self, namespace: bytes, session_id: bytes, data: bytes, expires: int, now: float
    ) -> bool:
        """Store a session until `expires`; False if it is too large for a slot."""
        if len(data) > CAPACITY or not 0 < len(session_id) <= 32 or expires <= now:
            return False
        bucket = self._bucket(session_id)
        self._lock(bucket, fcntl.LOCK_EX)
        try:
            chosen, soonest = bucket, None
            for offset in range(bucket, bucket + SLOT * WAYS, SLOT):
                slot = self._slot(offset)
                if slot is None or slot[0] <= now or slot[2:] == (namespace, session_id):
                    chosen = offset
                    break
                if soonest is None or slot[0] < soonest:
                    chosen, soonest = offset, slot[0]
            _HEAD.pack_into(
                self.view, chosen, 0, expires, len(data), len(session_id), namespace, session_id
            )
            self.view[chosen + _DATA : chosen + _DATA + len(data)] = data
            crc = zlib.crc32(self.view[chosen + 4 : chosen + _DATA + len(data)])
            struct.pack_into("<I", self.view, chosen, crc)
        finally:
            self._lock(bucket, fcntl.LOCK_UN)
        return True

    def get(self, namespace: bytes, session_id: bytes, now: float) -> bytes | None:
        """The bytes of a session that has not expired, or None."""
        if not 0 < len(session_id) <= 32:
            return None
        bucket = self._bucket(session_id)
        self._lock(bucket, fcntl.LOCK_SH)
        try:
            for offset in range(bucket, bucket + SLOT * WAYS, SLOT):
                slot = self._slot(offset)
                if slot is not None and slot[2:] == (namespace, session_id):
                    if slot[0] <= now:
                        return None
                    return bytes(self.view[offset + _DATA : offset + _DATA + slot[1]])
        finally:
            self._lock(bucket, fcntl.LOCK_UN)
        return None
