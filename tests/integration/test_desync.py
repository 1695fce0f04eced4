"""The HTTP desync table against a live gateway.

Every case of the table (tests/support/desync.py) goes on its own client
connection to one gateway (one worker) in front of a backend that records
the raw bytes it receives (tests/support/hostile.py). Rules, by tier:

- Severe: the gateway answers 400 itself (the backend gets nothing) and
  closes the client connection.
- Ambiguous: rejected (4xx/5xx, nothing forwarded), or forwarded with the
  ambiguity removed (the backend sees one canonical framing header) and the
  backend connection never carries another request after it.
- Compliant and Acceptable: forwarded (2xx from the backend), except the
  cases of ALLOWED_REJECTIONS, which a strict parser refuses for a reason
  that makes refusing the safe answer.

Everything forwarded must reach the backend in canonical framing. After
each case a follow-up request goes on the same client connection if it is
still open, and its answer must carry the follow-up's own marker: never the
answer of another exchange. All violations are collected and reported
together, with a table of the Compliant/Acceptable cases the gateway
refused (written to the test's tmp_path as desync-report.txt).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import attrs
import h11
import trio

from tests.support.desync import DesyncCase, load_cases, strict_verdict
from tests.support.gateway import gateway_toml, open_gateway
from tests.support.hostile import (
    PeerClosed,
    RawBackend,
    ResponseReader,
    open_raw,
    send_quietly,
    serve_raw_backend,
)

GATEWAY = "127.0.0.1"
A = "127.0.0.2"
CLIENT_TIMEOUT = 2  # the gateway's request/header timeouts in this test
ANSWER_WAIT = CLIENT_TIMEOUT + 2  # how long a case may take to be answered
CLOSE_WAIT = 2

# Compliant/Acceptable cases the gateway may refuse (4xx/5xx, nothing
# forwarded, client connection closed), because refusing them is what the
# HTTP/1.1 specification asks of a server or the safe reading of a request
# no backend should have to guess about. Keep this list short.
ALLOWED_REJECTIONS = {
    # Whitespace between a field name and its colon: RFC 9112 §5.1 says a
    # server MUST reject such a request with 400 (it is a classic smuggling
    # vector: some servers strip it, others keep the name).
    "acceptable#1: No TE/CL headers, some others are non-compliant",
    "acceptable#2: TE and some others are non-compliant",
    "acceptable#4: CL and some others are non-compliant",
    # Control characters in a field name: the name is not a token
    # (RFC 9110 §5.1); forwarding it lets backends disagree on what it is.
    "acceptable#3: A non-essential header with a non-printable character (x01)",
    "bad-header-characters#12: Some-Header\\x01",
    "bad-header-characters#13: \\x01Some-Header",
    # Control characters in a field value (tab aside): RFC 9110 §5.5 rules
    # them out, and Application Gateway refuses them; a backend that
    # strips or splits on them would read another header than was checked.
    "bad-header-characters#14: Some-Header: \\x01value",
    "bad-header-characters#15: Some-Header: value\\x01",
    # HTTP/0.9 (no version in the request line): not spoken by the gateway.
    "acceptable#8: Empty version, which means HTTP/0.9",
    # A version other than HTTP/1.0 and 1.1 gets 505 (RFC 9110 §15.6.6):
    # forwarded as HTTP/1.1 it would claim semantics the client never chose.
    "acceptable#7: Non-RFC, but OK HTTP/0.9",
    "acceptable#9: Unknown but OK HTTP/1.2",
    # Transfer codings other than chunked: RFC 9112 §6.1 — a server that
    # does not understand a transfer coding answers 501; the gateway cannot
    # re-frame a body whose coding it cannot undo.
    "more-compliant-tests#6: Correct TE OK",
    "more-compliant-tests#8: Transfer-Encoding: identity and chunked OK",
    "more-compliant-tests#9: Multiple transfer encoding headers in a single request OK",
    "more-compliant-tests#10: TE with custom parameters OK",
    "rfc-compliant#9: Different Transfer-Encoding headers",
    "rfc-compliant#10: Different Transfer-Encoding headers combined",
    "rfc-compliant#11: Transfer-Encoding with a param: chunked;custom_param",
    # Request lines that are not `method SP request-target SP HTTP-version`
    # (raw non-ASCII or spaces in the target, no target, trailing space):
    # RFC 9112 §3 — invalid request-line, SHOULD be answered 400.
    "rfc-compliant#13: International in URI",
    "rfc-compliant#14: Empty URI",
    "uri-specific-test-cases#2: Extra spaces in version",
    "uri-specific-test-cases#4: [space] in URI",
}


@attrs.define
class Outcome:
    case: DesyncCase
    marker: str
    status: int | None = None  # None: no answer (closed, or nothing in time)
    answer: str = ""  # "answered", "closed", "timeout", "invalid: ..."
    echoed: bytes | None = None  # the marker the answer carries (backend answers only)
    closed_after: bool | None = None  # the client connection ended after the answer
    followup: str = "not sent"  # "ok", "closed", or what went wrong
    problems: list[str] = attrs.Factory(list)

    def describe(self) -> str:
        return (
            f"[{self.case.tier}] {self.case.id}: status {self.status} ({self.answer}), "
            f"closed after: {self.closed_after}, follow-up: {self.followup}"
        )


async def _read(reader: ResponseReader, timeout: float) -> tuple[str, object]:
    with trio.move_on_after(timeout):
        try:
            response = await reader.read()
        except h11.RemoteProtocolError as exc:
            return f"invalid: {exc}", None
        except PeerClosed as exc:
            return f"cut short: {exc}", None
        return ("answered", response) if response is not None else ("closed", None)
    return "timeout", None


async def run_case(port: int, number: int, case: DesyncCase) -> Outcome:
    outcome = Outcome(case, f"c{number}")
    async with open_raw(GATEWAY, port) as stream:
        reader = ResponseReader(stream)
        reader.expect(case.method)
        await send_quietly(stream, case.request(outcome.marker))
        outcome.answer, response = await _read(reader, ANSWER_WAIT)
        if response is None:
            return outcome
        outcome.status = response.status  # type: ignore[attr-defined]
        outcome.echoed = response.header(b"x-desync-marker")  # type: ignore[attr-defined]
        if not response.keep_alive:  # type: ignore[attr-defined]
            outcome.closed_after = await reader.closes_within(CLOSE_WAIT)
            return outcome
        outcome.closed_after = False
        marker = f"f{number}"
        sent = await send_quietly(
            stream,
            b"GET /followup HTTP/1.1\r\nHost: gateway.test\r\nX-Desync-Marker: %s\r\n\r\n"
            % marker.encode(),
        )
        reader.expect(b"GET")
        state, followup = await _read(reader, ANSWER_WAIT)
        if not sent or state == "closed":
            outcome.followup = "closed"
        elif followup is None:
            outcome.followup = state
        else:
            echoed = followup.header(b"x-desync-marker")  # type: ignore[attr-defined]
            if followup.status == 200 and echoed == marker.encode():  # type: ignore[attr-defined]
                outcome.followup = "ok"
            else:
                outcome.followup = (
                    f"WRONG ANSWER {followup.status} "  # type: ignore[attr-defined]
                    f"(marker {echoed!r}, expected {marker!r})"
                )
    return outcome


def judge(outcome: Outcome, backend: RawBackend) -> list[str]:
    """Every way `outcome` breaks the rules of its tier."""
    case = outcome.case
    forwarded = backend.by_marker(outcome.marker)
    problems = []
    for request in forwarded:
        if request.problems:
            problems.append(f"backend received non-canonical framing: {list(request.problems)}")
    if outcome.followup not in ("ok", "closed", "not sent"):
        problems.append(f"follow-up request: {outcome.followup}")
    status = outcome.status
    answered_2xx = status is not None and 200 <= status < 300
    rejected = status is not None and status >= 400
    if answered_2xx and outcome.echoed != outcome.marker.encode():
        problems.append(f"answer carries marker {outcome.echoed!r}, not its own")
    if case.tier == "Severe":
        if status != 400:
            problems.append(f"expected 400 from the gateway, got {status} ({outcome.answer})")
        if forwarded:
            problems.append(f"forwarded to the backend: {forwarded[0].head[:200]!r}")
        if outcome.closed_after is not True:
            problems.append("client connection not closed after the answer")
    elif case.tier == "Ambiguous":
        if rejected:
            if forwarded:
                problems.append(f"rejected ({status}) but forwarded: {forwarded[0].head[:200]!r}")
        elif answered_2xx:
            if len(forwarded) != 1:
                problems.append(f"backend received it {len(forwarded)} times")
            for request in forwarded:
                reused = backend.later_on_same_connection(request)
                if reused:
                    problems.append(
                        f"backend connection {request.connection} reused after it "
                        f"(by {reused[0].marker or reused[0].start_line!r})"
                    )
        else:
            problems.append(f"neither rejected nor forwarded: {status} ({outcome.answer})")
    else:
        if case.id in ALLOWED_REJECTIONS and rejected:
            if forwarded:
                problems.append(f"rejected ({status}) but forwarded")
            if outcome.closed_after is not True:
                problems.append("client connection not closed after the rejection")
        elif not answered_2xx:
            problems.append(f"not forwarded: {status} ({outcome.answer})")
        elif len(forwarded) != 1:
            problems.append(f"backend received it {len(forwarded)} times")
    return problems


def report(outcomes: list[Outcome], failures: list[Outcome]) -> str:
    lines = ["Compliant/Acceptable cases the gateway refused:"]
    for outcome in outcomes:
        case = outcome.case
        if case.tier in ("Compliant", "Acceptable") and not (
            outcome.status is not None and 200 <= outcome.status < 300
        ):
            _, why = strict_verdict(case.head(outcome.marker))
            allowed = "allowed" if case.id in ALLOWED_REJECTIONS else "NOT ALLOWED"
            lines.append(
                f"  {case.id}: {outcome.status} ({allowed}); strict parser: {why or 'accepts it'}"
            )
    lines.append(f"\n{len(failures)} of {len(outcomes)} cases break their tier's rules:")
    for outcome in failures:
        lines.append("  " + outcome.describe())
        lines += [f"      - {problem}" for problem in outcome.problems]
    return "\n".join(lines)


async def test_desync_table(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    cases = load_cases()
    assert len(cases) > 100, f"only {len(cases)} desync cases loaded"
    config = gateway_toml(
        servers=[A],
        backend_port=backend_port,
        http_port=gateway_port,
        request_timeout=5,
        limits={"request_timeout": CLIENT_TIMEOUT, "header_timeout": CLIENT_TIMEOUT},
    )
    with trio.fail_after(100):
        backend: RawBackend = await nursery.start(partial(serve_raw_backend, A, backend_port))
        async with open_gateway(config, tmp_path, workers=1) as gw:
            workers = gw.worker_pids(GATEWAY, gateway_port)
            outcomes = []
            for number, case in enumerate(cases, start=1):
                with trio.fail_after(ANSWER_WAIT * 2 + CLOSE_WAIT + 2):
                    outcomes.append(await run_case(gateway_port, number, case))
            assert gw.worker_pids(GATEWAY, gateway_port) == workers, "a worker died"
    failures = []
    for outcome in outcomes:
        outcome.problems = judge(outcome, backend)
        if outcome.problems:
            failures.append(outcome)
    text = report(outcomes, failures)
    (tmp_path / "desync-report.txt").write_text(text + "\n")
    print(text)
    assert not failures, text


def test_table_loads_every_tier() -> None:
    cases = load_cases()
    tiers = {case.tier for case in cases}
    assert tiers == {"Compliant", "Acceptable", "Ambiguous", "Severe"}
    assert len({case.id for case in cases}) == len(cases)
    # Escapes are decoded: no case keeps a literal backslash-x sequence.
    for case in cases:
        for name, value in case.headers:
            assert b"\\x" not in name and b"\\x" not in value, case.id
    assert set(ALLOWED_REJECTIONS) <= {case.id for case in cases}
