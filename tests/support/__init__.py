"""Test kit: backends, clients, ports, and the gateway as a real process."""

from tests.support.backends import (
    HttpBackend,
    RecordedRequest,
    SilentBackend,
    pattern_blocks,
    pattern_sha256,
    serve_http_backend,
    serve_silent_backend,
    start_http_backends,
)
from tests.support.clients import (
    HttpClient,
    IncompleteResponse,
    Response,
    open_http,
    open_ws,
    open_ws_at,
    raw_exchange,
    status_of,
)
from tests.support.gateway import (
    CertFiles,
    CliResult,
    GatewayNotReady,
    GatewayProcess,
    gateway_toml,
    open_gateway,
    run_cli,
    stop_by_pid_file,
    stop_pid,
    write_certificates,
)
from tests.support.ports import free_port, wait_for_port, wait_for_port_closed
from tests.support.waiting import NeverHappened, wait_until
from tests.support.wsecho import WsEchoServer, serve_ws_echo

__all__ = [
    "CertFiles",
    "CliResult",
    "GatewayNotReady",
    "GatewayProcess",
    "HttpBackend",
    "HttpClient",
    "IncompleteResponse",
    "NeverHappened",
    "RecordedRequest",
    "Response",
    "SilentBackend",
    "WsEchoServer",
    "free_port",
    "gateway_toml",
    "open_gateway",
    "open_http",
    "open_ws",
    "open_ws_at",
    "pattern_blocks",
    "pattern_sha256",
    "raw_exchange",
    "run_cli",
    "serve_http_backend",
    "serve_silent_backend",
    "serve_ws_echo",
    "start_http_backends",
    "status_of",
    "stop_by_pid_file",
    "stop_pid",
    "wait_for_port",
    "wait_for_port_closed",
    "wait_until",
    "write_certificates",
]
