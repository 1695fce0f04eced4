"""Config watch: notice that the configuration file changed, without a thread.

The master has no event loop, so it polls: on every pass of its loop, at
most once per interval, it takes the file's signature (the resolved path
once every symlink is followed, and the device, inode, size and
modification time of what it points to) and compares it with the one it
last acted on. The files the running configuration names (certificates,
keys, CA chains: `Config.files`) are watched the same way, so a rotated
certificate (cert-manager, a Key Vault sync, a Secret's `..data` swap) is
applied like an edit of the configuration.

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


Signatures = tuple[object, ...]  # the configuration's, then each named file's (comparable)


class ConfigWatch:
    """Polls the configuration's and its named files' signatures; `poll(now)`
    says when to reload, `changed` which files it was."""

    def __init__(
        self,
        path: str,
        interval: float = INTERVAL,
        read: Callable[[str], object] = signature,  # any comparable value
    ) -> None:
        self.path = os.path.abspath(path)
        self.interval = interval
        self._read = read
        self._paths: tuple[str, ...] = (self.path,)
        self._applied = self._signatures()  # what the running configuration was read from
        self._seen = self._applied  # the latest signatures, waiting to settle
        self._next = 0.0
        self.changed: tuple[str, ...] = ()  # the paths whose change `poll` last reported

    def _signatures(self) -> Signatures:
        return tuple(self._read(path) for path in self._paths)

    def follow(self, files: tuple[str, ...]) -> None:
        """Watch these files too (those the configuration now running names)."""
        paths = (self.path, *(f for f in files if f != self.path))
        if paths != self._paths:
            self._paths = paths
            self.rebase()

    def rebase(self) -> None:
        """The files are being read now (a reload): changes count from here."""
        self._applied = self._seen = self._signatures()

    def due_in(self, now: float) -> float:
        return max(0.0, self._next - now)

    def poll(self, now: float) -> bool:
        """True when the file changed and then stayed the same for one interval."""
        if now < self._next:
            return False
        self._next = now + self.interval
        current = self._signatures()
        settled = current == self._seen
        self._seen = current
        if settled and current != self._applied:
            self.changed = tuple(
                path
                for path, now_, then in zip(self._paths, current, self._applied, strict=True)
                if now_ != then
            )
            self._applied = current
            return True
        return False
