"""Which pid file the control commands act on when given no option."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from appgw import control, runfiles


def no_options() -> argparse.Namespace:
    return argparse.Namespace(pid_file=None, config=None)


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A current directory, and a default pid file (in it) that names no gateway."""
    monkeypatch.chdir(tmp_path)
    default = tmp_path / "default" / "appgw.pid"
    monkeypatch.setattr(runfiles, "default_pid_file", lambda: str(default))
    return tmp_path


def write_pid(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid}\n")


def test_a_running_demo_in_the_current_directory_is_found(here: Path) -> None:
    write_pid(here / ".appgw-demo" / "appgw.pid", os.getpid())
    assert control._pid_file(no_options()) == str(here / ".appgw-demo" / "appgw.pid")


def test_the_default_pid_file_comes_first(here: Path) -> None:
    write_pid(here / ".appgw-demo" / "appgw.pid", os.getpid())
    write_pid(here / "default" / "appgw.pid", os.getppid())
    assert control._pid_file(no_options()) == str(here / "default" / "appgw.pid")


def test_a_stale_demo_pid_file_is_not_taken(here: Path) -> None:
    dead = 2**22 + 12345  # above pid_max on common systems: no such process
    write_pid(here / ".appgw-demo" / "appgw.pid", dead)
    assert control._pid_file(no_options()) == str(here / "default" / "appgw.pid")


def test_an_option_wins_over_the_demo(here: Path) -> None:
    write_pid(here / ".appgw-demo" / "appgw.pid", os.getpid())
    options = argparse.Namespace(pid_file="/elsewhere/appgw.pid", config=None)
    assert control._pid_file(options) == "/elsewhere/appgw.pid"
