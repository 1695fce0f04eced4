"""The gateway as a real process in tests, and configurations for it.

open_gateway starts `python -m appgw run` in its own session (so the master
and every worker it forks share one process group), sends its output to a
log file in the test's tmp_path, and returns once the master logs
"gateway ready". On the way out it stops the gateway with TERM, then KILLs
the whole process group after a deadline: no test leaves a process behind,
even when the master died and left workers.

Process inspection (children of the master, which of them hold a listening
socket) reads /proc, so these tests run on Linux.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, BinaryIO

import attrs
import trio

from tests.support.waiting import wait_until

APPGW = (sys.executable, "-m", "appgw")
READY_LINE = "gateway ready"
_counter = itertools.count(1)


class GatewayNotReady(Exception):
    """The gateway exited or did not log READY_LINE in time."""


def appgw_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _open_log(path: Path) -> BinaryIO:
    return path.open("ab")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


# -- processes, from /proc ----------------------------------------------------


def process_state(pid: int) -> str | None:
    """The one-letter state of `pid` (R, S, Z ...), None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def pid_alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie."""
    return process_state(pid) not in (None, "Z", "X")


def child_pids(pid: int) -> list[int]:
    """Live (non-zombie) children of `pid`."""
    children: set[int] = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            except FileNotFoundError:
                continue
            children.update(int(c) for c in text.split())
    except FileNotFoundError:
        return []
    if not children:  # kernels without the children file: scan every process
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except (FileNotFoundError, ProcessLookupError):
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    children.add(int(entry))
    return sorted(c for c in children if pid_alive(c))


def listening_inodes(host: str, port: int) -> set[int]:
    """Socket inodes of TCP listeners bound to host:port (or 0.0.0.0:port)."""
    wanted = {_proc_net_address(host, port), _proc_net_address("0.0.0.0", port)}
    inodes: set[int] = set()
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except FileNotFoundError:
        return inodes
    for line in lines:
        fields = line.split()
        if len(fields) > 9 and fields[3] == "0A" and fields[1] in wanted:
            inodes.add(int(fields[9]))
    return inodes


def connection_holder(
    pids: Sequence[int], server: tuple[str, int], client: tuple[str, int]
) -> int | None:
    """Which of `pids` holds the server end of the TCP connection client -> server.

    Asked while the connection is open (a worker that served a request on
    it, before the client closes); None if no process of `pids` holds it.
    """
    local, remote = _proc_net_address(*server), _proc_net_address(*client)
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except FileNotFoundError:
        return None
    inodes = {
        int(fields[9])
        for fields in (line.split() for line in lines)
        if len(fields) > 9 and fields[1] == local and fields[2] == remote
    }
    return next((pid for pid in pids if socket_inodes_of(pid) & inodes), None)


def _proc_net_address(host: str, port: int) -> str:
    octets = [int(o) for o in host.split(".")]
    return "".join(f"{o:02X}" for o in reversed(octets)) + f":{port:04X}"


def socket_inodes_of(pid: int) -> set[int]:
    inodes: set[int] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except (FileNotFoundError, PermissionError):
        return inodes
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def kill_group(pgid: int) -> None:
    """SIGKILL every process of group `pgid`, if any is left."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def wait_pid_gone(pid: int, timeout: float) -> None:
    """Wait until `pid` (not necessarily our child) has exited; TooSlowError after timeout."""
    await wait_until(lambda: not pid_alive(pid), timeout, f"pid {pid} exits")


# -- the gateway process ------------------------------------------------------


@attrs.define(eq=False)
class GatewayProcess:
    """A gateway started by open_gateway."""

    process: trio.Process
    config_path: Path
    pid_file: Path
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def log(self) -> str:
        """Everything the gateway wrote so far (stdout and stderr)."""
        return _read_text(self.log_path)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def send_signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    async def wait(self, timeout: float) -> int:
        """Wait for the master to exit; its return code. TooSlowError after timeout."""
        with trio.fail_after(timeout):
            return await self.process.wait()

    async def wait_for_log(self, text: str, timeout: float, *, start: int = 0) -> int:
        """Wait until `text` appears in the log after offset `start`; its offset."""
        with trio.fail_after(timeout):
            while (found := self.log().find(text, start)) < 0:
                if self.returncode is not None:
                    raise GatewayNotReady(
                        f"gateway exited ({self.returncode}) before logging {text!r}:\n"
                        + self.log_tail()
                    )
                await trio.sleep(0.05)
        return found

    def children(self) -> list[int]:
        """Live child processes of the master (workers and prober)."""
        return child_pids(self.pid)

    def worker_pids(self, host: str | None = None, port: int | None = None) -> list[int]:
        """Children of the master that hold the listening socket on host:port.

        Without host/port, or when /proc does not show sockets, every live
        child of the master.
        """
        children = self.children()
        if host is None or port is None:
            return children
        inodes = listening_inodes(host, port)
        holders = [pid for pid in children if socket_inodes_of(pid) & inodes]
        return holders or children

    async def stop(self, term_timeout: float = 10) -> int:
        """TERM, then KILL the whole group if still running after term_timeout."""
        if self.returncode is None:
            try:
                self.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            with trio.move_on_after(term_timeout):
                await self.process.wait()
        if self.returncode is None:
            kill_group(self.pid)
            await self.process.wait()
        kill_group(self.pid)  # workers left behind by a master that died
        return self.process.returncode  # type: ignore[return-value]


def gateway_command(
    config_path: Path, *, workers: int | None, pid_file: Path | None, extra_args: Sequence[str]
) -> list[str]:
    command = [*APPGW, "run", "-c", str(config_path)]
    if workers is not None:
        command += ["--workers", str(workers)]
    if pid_file is not None:
        command += ["--pid-file", str(pid_file)]
    return command + list(extra_args)


@asynccontextmanager
async def open_gateway(
    config: str | os.PathLike[str],
    tmp_path: Path,
    workers: int | None = 2,
    extra_args: Sequence[str] = (),
    *,
    ready_timeout: float = 30,
    term_timeout: float = 10,
    check_exit: bool = True,
    preexec_fn: Callable[[], object] | None = None,
) -> AsyncIterator[GatewayProcess]:
    """Run `appgw run` on a configuration until the block ends.

    config: TOML text (written to tmp_path/appgw-N.toml) or the path of an
    existing configuration file (used where it is, so its relative paths
    hold). Returns once the gateway logged READY_LINE; raises GatewayNotReady
    with the log tail if it exits first or takes longer than ready_timeout.

    At the end of the block the gateway gets TERM; with check_exit (and the
    block itself passing) it must then exit 0 within term_timeout, else the
    test fails. So every test also checks a graceful stop; a test that ends
    the gateway its own way, or leaves tunnels open on purpose, passes
    check_exit=False. `preexec_fn` runs in the child before the gateway
    starts (resource limits, for one).
    """
    n = next(_counter)
    if isinstance(config, str):
        config_path = tmp_path / f"appgw-{n}.toml"
        config_path.write_text(config)
    else:
        config_path = Path(config)
    pid_file = tmp_path / f"appgw-{n}.pid"
    log_path = tmp_path / f"appgw-{n}.log"
    command = gateway_command(
        config_path, workers=workers, pid_file=pid_file, extra_args=extra_args
    )
    log = _open_log(log_path)
    try:
        process = await trio.lowlevel.open_process(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            cwd=str(tmp_path),
            env=appgw_env(),
            preexec_fn=preexec_fn,
        )
    finally:
        log.close()
    gw = GatewayProcess(process, config_path, pid_file, log_path)
    ran_out = False  # the gateway had exited before the block ended
    try:
        with trio.move_on_after(ready_timeout) as waiting:
            await gw.wait_for_log(READY_LINE, ready_timeout + 1)
        if waiting.cancelled_caught:
            raise GatewayNotReady(
                f"gateway not ready after {ready_timeout} s ({' '.join(command)}):\n"
                + gw.log_tail()
            )
        yield gw
    except BaseException:
        try:  # shown by pytest with the failure ("Captured stdout")
            print(f"--- gateway log {log_path} (tail) ---\n{gw.log_tail(80)}")
        except Exception:
            pass
        raise
    finally:
        ran_out = gw.returncode is not None
        with trio.CancelScope(shield=True):
            returncode = await gw.stop(term_timeout)
    if check_exit and not ran_out and returncode != 0:
        how = "was killed" if returncode == -signal.SIGKILL else f"exited {returncode}"
        raise AssertionError(
            f"gateway {how} after TERM (allowed {term_timeout} s for a graceful stop):\n"
            + gw.log_tail()
        )


@attrs.frozen(repr=False)
class CliResult:
    returncode: int
    output: str  # stdout and stderr together
    command: tuple[str, ...]

    def __repr__(self) -> str:
        return f"$ {' '.join(self.command)}\n[exit {self.returncode}]\n{self.output}"


async def run_cli(*args: str, cwd: Path, timeout: float = 30) -> CliResult:
    """Run `python -m appgw ARGS` to completion; output goes to a file in cwd.

    A file rather than a pipe: `appgw start` leaves a daemon behind that may
    keep the inherited descriptors open, and a pipe would then never end.
    """
    command = (*APPGW, *args)
    out_path = cwd / f"cli-{next(_counter)}.out"
    out = _open_log(out_path)
    try:
        with trio.fail_after(timeout):
            completed = await trio.run_process(
                list(command),
                check=False,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                cwd=str(cwd),
                env=appgw_env(),
            )
    finally:
        out.close()
    return CliResult(completed.returncode, _read_text(out_path), command)


async def stop_by_pid_file(pid_file: Path, timeout: float = 10) -> None:
    """Make sure the gateway named by `pid_file` is gone (see stop_pid)."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return
    await stop_pid(pid, timeout)


async def stop_pid(pid: int, timeout: float = 10) -> None:
    """Make sure the gateway master `pid` is gone: TERM, then KILL its process group."""
    if not pid_alive(pid):
        return
    try:
        pgid: int | None = os.getpgid(pid)
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with trio.move_on_after(timeout):
        await wait_pid_gone(pid, timeout + 1)
    if pgid is not None and pgid != os.getpgrp():
        kill_group(pgid)
    elif pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


# -- configurations -------------------------------------------------------------


@attrs.frozen
class CertFiles:
    """A server certificate written as PEM files, and the CA that signed it."""

    cert: Path  # leaf, then chain
    key: Path
    ca: Path  # the CA certificate, for clients


def write_certificates(
    ca: Any, directory: Path, identities: Sequence[str] = ("localhost", "127.0.0.1")
) -> CertFiles:
    """Issue a server certificate from trustme `ca` for `identities`, as PEM files."""
    directory.mkdir(parents=True, exist_ok=True)
    issued = ca.issue_cert(*identities)
    files = CertFiles(directory / "site.pem", directory / "site-key.pem", directory / "ca.pem")
    files.cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    files.key.write_bytes(issued.private_key_pem.bytes())
    files.ca.write_bytes(ca.cert_pem.bytes())
    return files


def toml_value(value: object) -> str:
    """A TOML literal for a str, bool, int, float or list of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML literal for {value!r}")


def toml_table(name: str, values: Mapping[str, object]) -> str:
    lines = [f"[{name}]"]
    lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def gateway_toml(
    *,
    servers: Sequence[str],
    backend_port: int,
    http_port: int | None = None,
    https_port: int | None = None,
    cert: CertFiles | None = None,
    address: str = "127.0.0.1",
    request_timeout: int = 20,
    setting: Mapping[str, object] | None = None,
    gateway: Mapping[str, object] | None = None,
    limits: Mapping[str, object] | None = None,
) -> str:
    """TOML for the common shape: listeners in front of one pool.

    An http listener "http" on address:http_port and/or an https listener
    "https" on address:https_port (certificate `cert`), each with a basic
    rule to pool "web" (`servers`, "host" or "host:port") through setting
    "web" (backend_port, request_timeout, and any other keys in `setting`).
    """
    if http_port is None and https_port is None:
        raise ValueError("at least one of http_port, https_port")
    parts = []
    if gateway:
        parts.append(toml_table("gateway", gateway))
    if limits:
        parts.append(toml_table("gateway.limits", limits))
    if https_port is not None:
        if cert is None:
            raise ValueError("an https listener needs cert")
        files = {"cert": str(cert.cert), "key": str(cert.key)}
        parts.append(toml_table("certificates.site", files))
    listeners = []
    if http_port is not None:
        listeners.append(("http", {"protocol": "http", "address": address, "port": http_port}))
    if https_port is not None:
        https = {"protocol": "https", "address": address, "port": https_port}
        listeners.append(("https", https | {"certificate": "site"}))
    for name, values in listeners:
        parts.append(toml_table(f"listeners.{name}", values))
    parts.append(toml_table("pools.web", {"servers": list(servers)}))
    parts.append(
        toml_table(
            "settings.web",
            {"port": backend_port, "protocol": "http", "request_timeout": request_timeout}
            | dict(setting or {}),
        )
    )
    for priority, (name, _values) in enumerate(listeners, start=1):
        parts.append(
            toml_table(
                f"rules.{name}",
                {"listener": name, "pool": "web", "setting": "web", "priority": 100 * priority},
            )
        )
    return "\n".join(parts)
