"""appgw's WAF against its twin, nginx with ModSecurity, on the CRS's own tests.

    scripts/waf-twin CRS_TESTS_DIR [--limit N] [--bench N]

CRS_TESTS_DIR holds the Core Rule Set's regression tests (the YAML files of
tests/regression/tests in the coreruleset repository, at the tag of the
installed CRS: `git archive v3.3.4 tests/regression/tests | tar -x`). Every
test's request is sent, byte for byte, to appgw (a Detection-mode policy)
and to nginx with Debian's libnginx-mod-http-modsecurity loading the very
directives appgw compiles (waf/directives.py); the rule ids each logged for
it are compared: appgw's firewall log against nginx's error log. Needs
nginx and libnginx-mod-http-modsecurity; runs only on 127.0.0.0/8.

`--bench N` then sends N clean browser-like requests (one connection each)
to three gateways, in turns of N/10 so that the machine's load falls on all
alike: appgw with the same rules in a Prevention policy, appgw without a WAF
policy, nginx without ModSecurity and nginx with it; and prints the CPU per
request of each process tree and appgw's ratio to nginx + ModSecurity.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from appgw.config.waf import WafPolicy
from appgw.waf import crs
from appgw.waf.directives import rules_text

ID = re.compile(r'\[id "(\d+)"\]')
SKIP_IDS = ("949", "959", "980", "9000", "9001", "9002", "9003", "9004", "9005", "9006")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, host: str = "127.0.0.1", seconds: float = 20) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            socket.create_connection((host, port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


def requests(root: Path) -> Iterator[tuple[str, str, bytes]]:
    """(test title, expected rule id or "", raw request) for every stage."""
    for path in sorted(root.rglob("*.yaml")):
        doc = yaml.safe_load(path.read_text(errors="replace"))
        for test in (doc or {}).get("tests", []):
            for stage in test.get("stages", []):
                stage = stage.get("stage", stage)
                raw = _raw(stage.get("input", {}))
                expected = str((stage.get("output") or {}).get("log_contains", ""))
                match = ID.search(expected.replace("id ", "[id ") + "]")
                if raw is not None:
                    yield str(test.get("test_title")), match.group(1) if match else "", raw


def _raw(i: dict[str, Any]) -> bytes | None:
    if "encoded_request" in i:
        return base64.b64decode(i["encoded_request"])
    if "raw_request" in i:
        return str(i["raw_request"]).encode("latin-1", "replace")
    method = i.get("method", "GET")
    uri = i.get("uri", "/")
    version = i.get("version", "HTTP/1.1")
    headers = dict(i.get("headers") or {})
    data = i.get("data")
    if isinstance(data, list):
        data = "\r\n".join(str(x) for x in data)
    body = b"" if data is None else str(data).encode("latin-1", "replace")
    headers = {k: v for k, v in headers.items() if k.lower() != "connection"}
    if body and not any(k.lower() == "content-length" for k in headers):
        headers["Content-Length"] = str(len(body))
    head = f"{method} {uri} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (head + "Connection: close\r\n\r\n").encode("latin-1", "replace") + body


def exchange(port: int, raw: bytes) -> int:
    """Send a request, read the answer to its end; its status (0: none)."""
    try:
        with socket.create_connection(("127.0.0.1", port), 5) as s:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except OSError:
        return 0
    try:
        return int(data.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


class Tail:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def new(self) -> str:
        if not self.path.exists():
            return ""
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        return data.decode("utf-8", "replace")


def _ids(ids: Any) -> set[str]:
    return {i for i in ids if i and not i.startswith(SKIP_IDS)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tests", type=Path)
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument(
        "--bench", type=int, default=0, help="also: CPU per request of N clean requests on each"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="waf-twin-"))
    backend_port, appgw_port, nginx_port = free_port(), free_port(), free_port()
    bench_ports = {"prevention": free_port(), "off": free_port()}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "http.server", "--bind", "127.0.0.2", str(backend_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=work,
        )
    ]
    for name, port in (("detection", appgw_port), *bench_ports.items()):
        (work / f"{name}.toml").write_text(gateway_toml(work, name, port, backend_port))
    (work / "modsec.conf").write_text(rules_text(WafPolicy("twin"), crs.table()))
    (work / "nginx.conf").write_text(nginx_conf(work, "nginx", nginx_port, backend_port))
    try:
        procs.append(start_appgw(work, "detection"))
        procs.append(start_nginx(work, "nginx"))
        wait_port(backend_port, "127.0.0.2")
        for port in (appgw_port, nginx_port):
            wait_port(port)
        result = compare(args, appgw_port, nginx_port, work)
        if args.bench:
            targets = [("appgw, CRS in Prevention", "prevention"), ("appgw, no WAF policy", "off")]
            runs = []
            for label, name in targets:
                procs.append(start_appgw(work, name))
                runs.append((label, bench_ports[name], procs[-1].pid))
                wait_port(bench_ports[name])
            off_port = free_port()
            (work / "nginx-off.conf").write_text(
                nginx_conf(work, "nginx-off", off_port, backend_port, modsecurity=False)
            )
            procs.append(start_nginx(work, "nginx-off"))
            wait_port(off_port)
            runs.append(("nginx without ModSecurity", off_port, procs[-1].pid))
            runs.append(("nginx + ModSecurity", nginx_port, procs[2].pid))
            bench(args.bench, runs)
        return result
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


def compare(args: argparse.Namespace, appgw_port: int, nginx_port: int, work: Path) -> int:
    firewall, errors = Tail(work / "firewall-detection.log"), Tail(work / "nginx-error.log")
    firewall.new(), errors.new()
    total = same = refused = appgw_expected = nginx_expected = expected_total = 0
    differ: list[str] = []
    for title, expected, raw in requests(args.tests):
        if args.limit and total >= args.limit:
            break
        total += 1
        status = exchange(appgw_port, raw)
        exchange(nginx_port, raw)
        time.sleep(0.01)
        ours = _ids(
            json.loads(line).get("ruleId", "")
            for line in firewall.new().splitlines()
            if line.strip()
        )
        theirs = _ids(ID.findall(errors.new()))
        if status in (0, 400, 408, 413, 414, 431, 501) and not ours:
            refused += 1  # appgw's HTTP parser refused it before the WAF
            continue
        if expected:
            expected_total += 1
            appgw_expected += expected in ours
            nginx_expected += expected in theirs
        if ours == theirs:
            same += 1
        else:
            differ.append(
                f"{title}: appgw-only {sorted(ours - theirs)}, nginx-only {sorted(theirs - ours)}"
            )
    compared = total - refused
    print(f"requests: {total}; refused by appgw's parser before the WAF: {refused}")
    print(f"same rule ids in both logs: {same} of {compared}")
    print(
        f"expected rule fired: appgw {appgw_expected}, nginx {nginx_expected} of {expected_total}"
    )
    for line in differ[:30]:
        print("  " + line)
    return 0


CLEAN = (
    b"GET /index.html?page=2&sort=name HTTP/1.1\r\nHost: localhost\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.9\r\nAccept-Encoding: gzip, deflate\r\n"
    b"Cookie: session=abc123; theme=dark\r\nConnection: close\r\n\r\n"
)


def gateway_toml(work: Path, name: str, port: int, backend_port: int) -> str:
    """appgw's configuration: one worker, the CRS policy in `name`'s mode (or none: off)."""
    mode = "detection" if name == "off" else name
    return f"""
firewall_policy = "twin"
firewall_log = "{work}/firewall-{name}.log"
[gateway]
workers = 1
[gateway.limits]
max_header_bytes = 65536
[listeners.web]
protocol = "http"
address = "127.0.0.1"
port = {port}
[pools.web]
servers = ["127.0.0.2"]
[settings.web]
port = {backend_port}
[rules.web]
listener = "web"
pool = "web"
setting = "web"
[waf_policies.twin]
mode = "{mode}"
enabled = {"false" if name == "off" else "true"}
"""


def nginx_conf(
    work: Path, name: str, port: int, backend_port: int, modsecurity: bool = True
) -> str:
    """nginx, one worker, proxying to the backend with the very directives appgw compiles."""
    rules = (
        f"modsecurity on;\n    modsecurity_rules_file {work}/modsec.conf;" if modsecurity else ""
    )
    return f"""
include /etc/nginx/modules-enabled/*.conf;
worker_processes 1;
pid {work}/{name}.pid;
error_log {work}/{name}-error.log info;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {work}/body;
  proxy_temp_path {work}/proxy;
  server {{
    listen 127.0.0.1:{port};
    {rules}
    location / {{ proxy_pass http://127.0.0.2:{backend_port}; }}
  }}
}}
"""


def start_nginx(work: Path, name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["nginx", "-c", str(work / f"{name}.conf"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=open(work / f"{name}.log", "wb"),
    )


def start_appgw(work: Path, name: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "appgw", "run", "-c", str(work / f"{name}.toml")]
    command += ["--pid-file", str(work / f"appgw-{name}.pid")]
    return subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=open(work / f"appgw-{name}.log", "wb")
    )


def tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of a process and its descendants."""
    ticks = 0
    parents: dict[int, int] = {}
    stats: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        stats[int(entry.name)] = int(fields[11]) + int(fields[12])
    for pid, value in stats.items():
        p = pid
        while p > 1 and p != root:
            p = parents.get(p, 1)
        if p == root:
            ticks += value
    return ticks / 100.0


def bench(n: int, targets: list[tuple[str, int, int]], turns: int = 10) -> None:
    """CPU per request of each target (label, port, pid), measured in turns."""
    each = max(1, n // turns)
    for _, port, _pid in targets:  # warm up: connections, caches, the first requests
        for _ in range(min(50, each)):
            exchange(port, CLEAN)
    spent = {label: [] for label, _, _ in targets}  # type: dict[str, list[float]]
    for _ in range(turns):
        for label, port, pid in targets:
            before = tree_cpu(pid)
            for _ in range(each):
                exchange(port, CLEAN)
            spent[label].append(tree_cpu(pid) - before)
    total = {label: sum(cpu) / (each * turns) for label, cpu in spent.items()}
    for label, per_request in total.items():
        print(f"{label}: {each * turns} clean requests, {per_request * 1e3:.2f} ms CPU each")
    appgw, nginx = targets[0][0], targets[-1][0]
    ratios = sorted(a / b for a, b in zip(spent[appgw], spent[nginx], strict=True) if b)
    median = ratios[len(ratios) // 2] if ratios else float("nan")
    print(f"{appgw} / {nginx}: {total[appgw] / total[nginx]:.2f}x (median of turns {median:.2f}x)")


if __name__ == "__main__":
    sys.exit(main())
