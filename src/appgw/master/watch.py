"""Config watch: notice that the configuration file changed, without a thread.

The master has no event loop, so it polls: on every pass of its loop, at
most once per interval, it takes the file's signature (the resolved path
once every symlink is followed, and the device, inode, size and
modification time of what it points to) and compares it with the one it
last acted on.

- An edit in place changes the size or the modification time.
- A file replaced by a rename (what editors and `kubectl cp` do) changes the
  inode.
- A Kubernetes ConfigMap or Secret volume updates by re-pointing the
  `..data` symlink of the mounted directory at a new timestamped directory:
  the resolved path changes (and the inode).

A change is acted on once the signature has stayed the same for one more
poll, so a file caught half-written is read when the writer is done. A file
that cannot be read has a signature too (None): its reload is refused and
logged, and the next change is noticed as any other.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from attrs import frozen

INTERVAL = 1.0  # seconds between two looks at the file


@frozen
class Signature:
    target: str  # the path with every symlink resolved
    device: int
    inode: int
    size: int
    mtime_ns: int


def signature(path: str) -> Signature | None:
    """The file's signature now; None if it cannot be found."""
    try:
        target = os.path.realpath(path)
        st = os.stat(target)
    except OSError:
        return None
    return Signature(target, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def signatures(paths: tuple[str, ...]) -> tuple[Signature | None, ...]:
    """The signatures of several files (a template and its parameters files)."""
    return tuple(signature(path) for path in paths)


class ConfigWatch:
    """Polls one file's signature; `poll(now)` says when to reload."""

    def __init__(
        self,
        path: str,
        interval: float = INTERVAL,
        read: Callable[[str], object] = signature,  # any comparable value
    ) -> None:
        self.path = os.path.abspath(path)
        self.interval = interval
        self._read = read
        self._applied = read(self.path)  # what the running configuration was read from
        self._seen = self._applied  # the latest signature, waiting to settle
        self._next = 0.0

    def rebase(self) -> None:
        """The file is being read now (a reload): changes count from here."""
        self._applied = self._seen = self._read(self.path)

    def due_in(self, now: float) -> float:
        return max(0.0, self._next - now)

    def poll(self, now: float) -> bool:
        """True when the file changed and then stayed the same for one interval."""
        if now < self._next:
            return False
        self._next = now + self.interval
        current = self._read(self.path)
        settled = current == self._seen
        self._seen = current
        if settled and current != self._applied:
            self._applied = current
            return True
        return False
