"""Errors with an HTTP meaning.

Everything that goes wrong while proxying one exchange is raised as a
GatewayError carrying the status the client should see (connect failure ->
502, backend timeout -> 504, oversized head -> 431 ...). The client
connection turns it into a response in exactly one place
(worker/server/http1.py), the way h11 converts its errors at next_event.
"""

from __future__ import annotations

import trio

# Everything a stream raises when its peer is gone or it was closed under us:
# the one tuple every reader and writer of a connection catches.
STREAM_ERRORS: tuple[type[Exception], ...] = (
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    OSError,
)


class GatewayError(Exception):
    status: int = 502
    # Whether the client connection can be kept open after the error response.
    keep_alive: bool = True

    def __init__(
        self,
        detail: str = "",
        *,
        status: int | None = None,
        headers: tuple[tuple[bytes, bytes], ...] = (),
        keep_alive: bool | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers  # extra headers of the error response
        if status is not None:
            self.status = status
        if keep_alive is not None:
            self.keep_alive = keep_alive


class BadRequest(GatewayError):
    """The client sent something the gateway will not forward."""

    status = 400
    keep_alive = False


class RequestTimeout(GatewayError):
    """The client did not send its request in time."""

    status = 408
    keep_alive = False


class VersionNotSupported(GatewayError):
    """A request in an HTTP version other than 1.0 and 1.1."""

    status = 505
    keep_alive = False


class BadGateway(GatewayError):
    """No backend could be reached, or it answered something unusable."""

    status = 502


class GatewayTimeout(GatewayError):
    """The backend did not answer within the setting's request timeout."""

    status = 504


class ClientGone(Exception):
    """The client closed or broke its connection; nobody is left to answer."""


class BackendAborted(Exception):
    """The backend broke off after the response started: abort the client side."""


def first_error(group: BaseExceptionGroup) -> BaseException:  # type: ignore[type-arg]
    """The exception that matters in a nursery's group.

    A nursery wraps what its tasks raise in an exception group; an exchange
    has one meaningful failure (the first HTTP error, or why a side went
    away), and the others are its consequences or cancellations.
    """
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    for kind in (GatewayError, BackendAborted, ClientGone):
        for leaf in leaves:
            if isinstance(leaf, kind):
                return leaf
    for leaf in leaves:
        if not isinstance(leaf, trio.Cancelled):
            return leaf
    return leaves[0] if leaves else group
