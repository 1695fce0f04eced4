"""Probe results, in Application Gateway's words (pure).

Each function makes the ProbeResult for one outcome of a probe, with the
reason text Application Gateway's backend health shows for it (its
troubleshooting page), so `appgw health` reads the way Azure users know.
"""

from __future__ import annotations

from collections.abc import Iterable

from attrs import frozen

PENDING = "Waiting for the first health probe result."


@frozen
class ProbeResult:
    ok: bool
    reason: str
    status: int | None = None  # the HTTP status received, if any


def success(status: int) -> ProbeResult:
    return ProbeResult(True, f"Success. Received {status} status code", status)


def timed_out() -> ProbeResult:
    return ProbeResult(
        False,
        "Time taken by the backend to respond to application gateway's health probe is"
        " more than the timeout threshold in the probe setting.",
    )


def connect_failed(detail: str) -> ProbeResult:
    text = (
        "Application Gateway could not connect to the backend. Check that the backend"
        " responds on the port used for the probe. Also check whether a firewall is"
        " blocking access to the IP and port of this backend."
    )
    return ProbeResult(False, f"{text} ({detail})" if detail else text)


def name_not_resolved() -> ProbeResult:
    return ProbeResult(
        False,
        "Application Gateway could not create a probe for this backend. This usually"
        " happens when the FQDN of the backend has not been entered correctly.",
    )


def status_mismatch(expected: str, status: int) -> ProbeResult:
    return ProbeResult(
        False,
        "Status code of the backend's HTTP response did not match the probe setting."
        f" Expected:{expected} Received:{status}.",
        status,
    )


def body_mismatch(body: str, status: int) -> ProbeResult:
    return ProbeResult(
        False,
        "Body of the backend's HTTP response did not match the probe setting."
        f" Received response body doesn't contain {body}.",
        status,
    )


def websocket_refused(status: int) -> ProbeResult:
    return ProbeResult(
        False,
        f"The backend's WebSocket handshake did not succeed. Expected:101 Received:{status}.",
        status,
    )


def websocket_bad_accept() -> ProbeResult:
    return ProbeResult(
        False,
        "The backend's WebSocket handshake did not succeed. The Sec-WebSocket-Accept"
        " header of its 101 response is missing or does not match the key sent.",
        101,
    )


def invalid_response(detail: str) -> ProbeResult:
    return ProbeResult(
        False, f"The backend's response to the health probe is not valid HTTP/1.1: {detail}"
    )


def connection_closed(detail: str = "") -> ProbeResult:
    text = "The backend closed the connection before it answered the health probe."
    return ProbeResult(False, f"{text} ({detail})" if detail else text)


def certificate_name_mismatch() -> ProbeResult:
    return ProbeResult(
        False,
        "The Common Name of the leaf certificate presented by the backend server does"
        " not match the Probe or Backend Setting hostname of the application gateway.",
    )


def certificate_expired() -> ProbeResult:
    return ProbeResult(
        False,
        'Backend certificate is invalid. Current date is not within the "Valid from"'
        ' and "Valid to" date range on the certificate.',
    )


def certificate_untrusted(with_trusted_roots: bool) -> ProbeResult:
    if with_trusted_roots:
        text = (
            "The root certificate of the server certificate used by the backend doesn't"
            " match the trusted root certificate added to the application gateway."
            " Ensure that you add the correct root certificate to allowlist the backend."
        )
    else:
        text = (
            "The backend Server certificate is not signed by a well-known Certificate"
            " Authority (CA). To use unknown CA certificates, its Root certificate must be"
            " uploaded to the Backend Setting of the application gateway."
        )
    return ProbeResult(False, text)


def certificate_unverified(code: int | str) -> ProbeResult:
    return ProbeResult(
        False,
        "The validity of the backend certificate could not be verified. To find out the"
        " reason, check OpenSSL diagnostics for the message associated with error code"
        f" {code}",
    )


def tls_failed(detail: str) -> ProbeResult:
    return ProbeResult(False, f"The TLS handshake with the backend failed: {detail}")


def probe_error(detail: str) -> ProbeResult:
    return ProbeResult(False, f"The health probe could not be completed: {detail}")


def expected_statuses(ranges: Iterable[tuple[int, int]]) -> str:
    """Status ranges as Application Gateway writes them: "200-399", "200,301-302"."""
    return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges)
