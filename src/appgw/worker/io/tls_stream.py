"""TLS over a socket: an ssl.SSLObject over two MemoryBIOs, driven by the
same non-blocking system calls as plain TCP.

trio's SSLStream runs every record through its stream API, a lock and a
few awaits per call; here the socket is read and written directly:

- reading: what the SSL object holds is decrypted first; when it needs
  more, one `os.read` of RECEIVE_SIZE (64 KiB or more) is fed to the
  incoming BIO and decrypted as far as it goes, so a read that finds
  several records returns them all at once (up to the size asked for);
- writing: `encrypt` turns the bytes into records in the outgoing BIO,
  and everything encrypted so far leaves in one `os.write` (`flush_now`);
  what the socket does not take stays queued, in order, until it has room.

The non-blocking verbs (`read_now`, `encrypt`, `flush_now`) are what the
worker's Endpoint (streams.py) calls, with its own deadlines (the worker's
timer). The trio Stream API (`receive_some`, `send_all`, `do_handshake`,
`aclose`) is built on them for everyone else (tunnels, the prober, mutual
TLS checks), waiting with trio's cancellable waits.

Ends, as trio's SSLStream with https_compatible=True did: a close_notify
from the peer and a ragged EOF (the TCP connection ended without one, as
many HTTPS clients do) both read as b""; `aclose` sends a close_notify
when the handshake is done (without waiting for the peer's) and closes the
socket. A failed handshake or a corrupt record is a BrokenResourceError.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

import trio
from trio.lowlevel import checkpoint, wait_readable, wait_writable

RECEIVE_SIZE = 64 * 1024

__all__ = ["RECEIVE_SIZE", "HandshakePending", "TlsStream"]


class TlsStream(trio.abc.Stream):
    """A TLS connection on a trio socket (server or client side)."""

    __slots__ = (
        "socket",
        "_transport",
        "_in",
        "_out",
        "_ssl",
        "_pending",
        "_eof",
        "_closed",
        "_handshook",
        "_sending",
        "_send_broken",
        "_size",
    )

    def __init__(
        self,
        sock: trio.socket.SocketType,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | None = None,
        size: int = RECEIVE_SIZE,
    ) -> None:
        self.socket = sock
        self._transport: trio.SocketStream | None = None
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(
            self._in, self._out, server_side=server_side, server_hostname=server_hostname
        )
        self._pending = bytearray()  # encrypted bytes the socket has not taken yet
        self._eof = False  # the peer's end (close_notify or TCP FIN) was read
        self._closed = False
        self._handshook = False
        self._sending = False  # a send_all is under way (it flushes what reads produce)
        self._send_broken: str | None = None  # why a flush while reading failed
        self._size = size

    @property
    def transport_stream(self) -> trio.SocketStream:
        """The plain stream under it, for what only needs the socket (aborts,
        addresses); never read or written while TLS runs on it. Made when
        asked for: a trio.SocketStream sets two socket options each time."""
        if self._transport is None:
            self._transport = trio.SocketStream(self.socket)
        return self._transport

    # -- what the connection negotiated ----------------------------------------

    def version(self) -> str | None:
        return self._ssl.version()

    def cipher(self) -> tuple[str, str, int] | None:
        return self._ssl.cipher()

    def getpeercert(self, binary_form: bool = False) -> Any:
        return self._ssl.getpeercert(binary_form)

    def selected_alpn_protocol(self) -> str | None:
        return self._ssl.selected_alpn_protocol()

    @property
    def session_reused(self) -> bool:
        return self._ssl.session_reused

    @property
    def wants_write(self) -> bool:
        """Encrypted bytes wait for room in the socket."""
        return bool(self._pending) or self._out.pending > 0

    # -- the non-blocking verbs ------------------------------------------------

    def flush_now(self) -> bool:
        """Write what is encrypted, as far as the socket takes it now (one
        system call); True when nothing is left."""
        if self._out.pending:
            self._pending += self._out.read()
        if not self._pending:
            return True
        if self._send_broken is not None:
            raise trio.BrokenResourceError(f"TLS send: {self._send_broken}")
        try:
            sent = os.write(self.socket.fileno(), self._pending)
        except BlockingIOError:
            return False
        except OSError as exc:
            raise trio.BrokenResourceError(f"TLS send: {exc}") from exc
        del self._pending[:sent]
        return not self._pending

    def _flush_while_reading(self) -> bool:
        """flush_now for what reading produced (the server's tickets, a
        KeyUpdate): a peer that stopped reading may still have sent what is
        to be read, so the failure waits for the next write."""
        try:
            return self.flush_now()
        except trio.BrokenResourceError as exc:
            if not self._handshook and self._ssl.version() is None:  # mid-handshake
                raise
            self._send_broken = str(exc.__cause__ or exc)
            self._pending.clear()
            return True

    def encrypt(self, data: bytes | bytearray | memoryview) -> None:
        """Turn `data` into records, queued behind what is queued already."""
        if self._closed:
            raise trio.ClosedResourceError("the TLS stream is closed")
        try:
            self._ssl.write(data)
        except ssl.SSLWantReadError:  # the handshake is not done: do it on the way
            raise HandshakePending() from None
        except ssl.SSLError as exc:
            raise trio.BrokenResourceError(f"TLS: {exc}") from exc

    def read_now(self, size: int | None = None) -> bytes | None:
        """Decrypted bytes (up to `size`), b"" at the peer's end, or None when
        the socket must become readable first (or writable: `wants_write`)."""
        if self._closed:
            raise trio.ClosedResourceError("the TLS stream is closed")
        size = size or self._size
        while True:
            try:
                data = self._ssl.read(size)
                self._handshook = True
                # What reading produced for the peer (the server's session
                # tickets, a KeyUpdate's answer) leaves with the next write,
                # or before the next wait: a request's tickets go with its
                # response, in one system call.
                return data
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                self._eof = True
                return b""
            except ssl.SSLError as exc:
                self._flush_while_reading()  # the alert, if the socket takes it
                raise trio.BrokenResourceError(f"TLS: {exc}") from exc
            # Handshake messages (the server's flight, tickets) go first.
            if not self._flush_while_reading():
                return None
            if self._eof:  # the TCP end came in the middle of a record
                return b""
            if not self._receive("TLS receive"):
                return None

    def _receive(self, what: str) -> bool:
        """What the socket holds, into the incoming BIO (its EOF too); False
        when it holds nothing yet."""
        try:
            received = os.read(self.socket.fileno(), self._size)
        except BlockingIOError:
            return False
        except OSError as exc:
            raise trio.BrokenResourceError(f"{what}: {exc}") from exc
        if received:
            self._in.write(received)
        else:
            self._eof = True
            self._in.write_eof()
        return True

    def handshake_now(self) -> bool | None:
        """A step of the handshake: True when done, None when the socket must
        become readable (or writable: `wants_write`)."""
        try:
            self._ssl.do_handshake()
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as exc:
            self.flush_now()
            raise trio.BrokenResourceError(f"TLS handshake: {exc}") from exc
        else:
            self._handshook = True
            return True if self.flush_now() else None
        if not self.flush_now() or self._eof:
            if self._eof:
                raise trio.BrokenResourceError("TLS handshake: the peer closed the connection")
            return None
        return False if self._receive("TLS handshake") else None  # False: more to do now

    # -- the trio Stream API ----------------------------------------------------

    async def _wait(self, writing: bool) -> None:
        sock = self.socket
        try:
            await (wait_writable if writing else wait_readable)(sock)
        except trio.ClosedResourceError:
            if sock.fileno() < 0:
                raise
            # The worker's timer woke the socket's waits (an Endpoint
            # deadline elsewhere): look again.

    async def do_handshake(self) -> None:
        await checkpoint()
        while not self._handshook:
            done = self.handshake_now()
            if done is None:
                await self._wait(self.wants_write)
            elif done and not self.wants_write:
                return
        await self._flush()

    async def _flush(self) -> None:
        while not self.flush_now():
            await self._wait(True)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await checkpoint()
        while True:
            data = self.read_now(max_bytes)
            if data is not None:
                return data
            # A concurrent send_all flushes; this side waits to read.
            await self._wait(self.wants_write and not self._sending)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this TLS stream")
        self._sending = True
        try:
            await checkpoint()
            while True:
                try:
                    self.encrypt(data)
                    break
                except HandshakePending:
                    await self.do_handshake()
            await self._flush()
        finally:
            self._sending = False

    async def wait_send_all_might_not_block(self) -> None:
        await self._flush()

    async def send_eof(self) -> None:
        raise NotImplementedError("TLS 1.2 has no half-close")

    async def aclose(self) -> None:
        if self._closed:
            await checkpoint()
            return
        try:
            if self._handshook:
                try:
                    self._ssl.unwrap()  # the close_notify (a reply to the peer's too)
                except ssl.SSLError:
                    pass
            # What is queued leaves if the socket takes it now: an answer's
            # last bytes and the close_notify.
            try:
                self.flush_now()
            except trio.BrokenResourceError:
                pass
        finally:
            self._closed = True
            self.socket.close()
        await checkpoint()


class HandshakePending(Exception):
    """A write before the handshake is done."""
