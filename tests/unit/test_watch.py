"""Config watch (appgw.master.watch): when a change of the file means a reload."""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from appgw.master.watch import ConfigWatch, Signature, signature


class FakeFile:
    def __init__(self) -> None:
        self.current: Signature | None = Signature("/c/appgw.toml", 1, 10, 100, 1)

    def read(self, path: str) -> Signature | None:
        return self.current

    def change(self, **fields: object) -> None:
        assert self.current is not None
        self.current = attrs.evolve(self.current, **fields)


def polls(watch: ConfigWatch, start: float, count: int) -> list[bool]:
    return [watch.poll(start + i * watch.interval) for i in range(count)]


def test_nothing_changes_nothing_reloads():
    file = FakeFile()
    watch = ConfigWatch("appgw.toml", read=file.read)
    assert polls(watch, 0.0, 5) == [False] * 5


def test_a_change_is_acted_on_once_it_settled():
    file = FakeFile()
    watch = ConfigWatch("appgw.toml", read=file.read)
    assert polls(watch, 0.0, 2) == [False, False]
    file.change(size=120, mtime_ns=2)
    assert polls(watch, 2.0, 4) == [False, True, False, False]


def test_a_file_still_being_written_waits():
    file = FakeFile()
    watch = ConfigWatch("appgw.toml", read=file.read)
    watch.poll(0.0)
    file.change(size=50, mtime_ns=2)
    assert not watch.poll(1.0)
    file.change(size=120, mtime_ns=3)
    assert not watch.poll(2.0)
    assert watch.poll(3.0)


def test_every_part_of_the_signature_counts():
    for change in ({"target": "/c/..2024/appgw.toml"}, {"inode": 11}, {"device": 2}):
        file = FakeFile()
        watch = ConfigWatch("appgw.toml", read=file.read)
        file.change(**change)
        assert polls(watch, 0.0, 2) == [False, True], change


def test_a_vanished_file_is_a_change_and_so_is_its_return():
    file = FakeFile()
    watch = ConfigWatch("appgw.toml", read=file.read)
    file.current = None
    assert polls(watch, 0.0, 2) == [False, True]
    file.current = Signature("/c/appgw.toml", 1, 12, 100, 5)
    assert polls(watch, 2.0, 2) == [False, True]


def test_polls_at_most_once_per_interval():
    file = FakeFile()
    reads = []

    def read(path: str) -> Signature | None:
        reads.append(path)
        return file.read(path)

    watch = ConfigWatch("appgw.toml", interval=1.0, read=read)
    reads.clear()
    for t in (0.0, 0.2, 0.5, 0.99, 1.0, 1.5):
        watch.poll(t)
    assert len(reads) == 2
    assert watch.due_in(1.5) == 0.5


def test_rebase_after_a_reload_forgets_the_change():
    file = FakeFile()
    watch = ConfigWatch("appgw.toml", read=file.read)
    file.change(size=130)
    watch.rebase()  # a HUP read the file meanwhile
    assert polls(watch, 0.0, 3) == [False, False, False]


def test_signature_follows_a_configmap_symlink_swap(tmp_path: Path):
    # The layout of a Kubernetes ConfigMap volume: the file is a symlink
    # through `..data`, which is re-pointed at a new directory on update.
    for name in ("..2024_01", "..2024_02"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "appgw.toml").write_text("same size\n")
    os.symlink("..2024_01", tmp_path / "..data")
    os.symlink("..data/appgw.toml", tmp_path / "appgw.toml")
    before = signature(str(tmp_path / "appgw.toml"))
    assert before is not None and before.target.endswith("..2024_01/appgw.toml")
    os.symlink("..2024_02", tmp_path / "..data_tmp")
    os.rename(tmp_path / "..data_tmp", tmp_path / "..data")
    after = signature(str(tmp_path / "appgw.toml"))
    assert after is not None and after.target.endswith("..2024_02/appgw.toml")
    assert after != before
    assert signature(str(tmp_path / "missing.toml")) is None


class FakeFiles:
    """Several files' signatures, changed one at a time."""

    def __init__(self, *paths: str) -> None:
        self.current = {path: Signature(path, 1, i, 100, 1) for i, path in enumerate(paths)}

    def read(self, path: str) -> Signature | None:
        return self.current.get(path)

    def change(self, path: str) -> None:
        old = self.current[path]
        self.current[path] = attrs.evolve(old, mtime_ns=old.mtime_ns + 1)


def test_the_files_a_configuration_names_are_watched_too():
    files = FakeFiles("/c/appgw.toml", "/c/site.pem", "/c/site-key.pem")
    watch = ConfigWatch("/c/appgw.toml", read=files.read)
    files.change("/c/site.pem")
    assert polls(watch, 0.0, 3) == [False] * 3  # not named yet
    watch.follow(("/c/site.pem", "/c/site-key.pem"))
    files.change("/c/site-key.pem")
    assert polls(watch, 10.0, 3) == [False, True, False]
    assert watch.changed == ("/c/site-key.pem",)
    # A configuration that no longer names a file stops watching it.
    watch.follow(())
    files.change("/c/site-key.pem")
    assert polls(watch, 20.0, 3) == [False] * 3
