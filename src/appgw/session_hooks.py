"""OpenSSL's external session cache, pointed at the shared session store.

Python's ssl module has no API for a server's session cache, so this binds
the callbacks OpenSSL offers for one (`SSL_CTX_sess_set_new_cb`, `_get_cb`)
through cffi's ABI mode, on the very libssl that
Python's `_ssl` module loaded, and installs them on the `SSL_CTX` of a
listener socket's context. A new TLS 1.2 session with a session ID is
serialized (`i2d_SSL_SESSION`) into the store; a ClientHello offering an ID
this process does not know is looked up there and deserialized. TLS 1.3
sessions are not stored: they resume by stateless tickets, whose keys the
workers share already (tls.py).

The `SSL_CTX *` is read from the `_ssl._SSLContext` object, whose first
field after the object header it is in every CPython 3. Before anything is
installed, `attach` checks that reading: the library's version is the one
Python reports, and the options, verify mode and (empty) session callbacks
read through the pointer are the context's. If any check fails, nothing is
installed and the reason is returned: sessions then resume as before (by
ticket anywhere, by session ID on the worker that made them).

The context's internal cache is turned off (SSL_SESS_CACHE_NO_INTERNAL, as
nginx does with its shared cache): every worker finds every session in the
store, and OpenSSL keeps no copy per process. No remove callback is
installed: OpenSSL removes a session whose connection ended without a
close_notify from the gateway (a client that resets, or closes first, as
browsers do), which would make most sessions unresumable. A stored session
is valid until it expires, as a session ticket is (TLS 1.1 and later do not
ask for more, RFC 4346 7.2.1).
"""

from __future__ import annotations

import ssl
import sys
import time
import weakref
from typing import Any

import cffi  # type: ignore[import-untyped]

from appgw import logs
from appgw.session_store import SessionStore

_CDEF = """
typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_session_st SSL_SESSION;
unsigned long OpenSSL_version_num(void);
uint64_t SSL_CTX_get_options(const SSL_CTX *ctx);
int SSL_CTX_get_verify_mode(const SSL_CTX *ctx);
long SSL_CTX_ctrl(SSL_CTX *ctx, int cmd, long larg, void *parg);
void *SSL_CTX_sess_get_new_cb(SSL_CTX *ctx);
void *SSL_CTX_sess_get_get_cb(SSL_CTX *ctx);
void *SSL_CTX_sess_get_remove_cb(SSL_CTX *ctx);
void SSL_CTX_sess_set_new_cb(SSL_CTX *ctx, int (*cb)(SSL *, SSL_SESSION *));
void SSL_CTX_sess_set_get_cb(SSL_CTX *ctx,
    SSL_SESSION *(*cb)(SSL *, const unsigned char *, int, int *));
const unsigned char *SSL_SESSION_get_id(const SSL_SESSION *s, unsigned int *len);
int SSL_SESSION_get_protocol_version(const SSL_SESSION *s);
long SSL_SESSION_get_time(const SSL_SESSION *s);
long SSL_SESSION_get_timeout(const SSL_SESSION *s);
int i2d_SSL_SESSION(SSL_SESSION *in, unsigned char **pp);
SSL_SESSION *d2i_SSL_SESSION(SSL_SESSION **a, const unsigned char **pp, long length);
"""
_SET_SESS_CACHE_MODE = 44  # SSL_CTRL_SET_SESS_CACHE_MODE
_GET_SESS_CACHE_MODE = 45
_CACHE_SERVER = 0x0002  # SSL_SESS_CACHE_SERVER
_NO_INTERNAL = 0x0100 | 0x0200  # SSL_SESS_CACHE_NO_INTERNAL_LOOKUP | _STORE
_TLS1_3 = 0x0304
# SSL_VERIFY_PEER (1) and SSL_VERIFY_FAIL_IF_NO_PEER_CERT (2) of each mode
_VERIFY_MODES = {ssl.CERT_NONE: 0, ssl.CERT_OPTIONAL: 1, ssl.CERT_REQUIRED: 3}

_ffi = cffi.FFI()
_ffi.cdef(_CDEF)
_lib: Any = None
# The callbacks of each context, alive as long as it is.
_installed: weakref.WeakKeyDictionary[ssl.SSLContext, tuple[Any, ...]] = weakref.WeakKeyDictionary()


def _libssl() -> Any:
    """The libssl this process has loaded for Python's ssl module: of those
    mapped (/proc/self/maps), the one of the version Python reports."""
    global _lib
    if _lib is None:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "/libssl.so" in line})
        for path in paths:
            lib = _ffi.dlopen(path)
            if lib.OpenSSL_version_num() == ssl.OPENSSL_VERSION_NUMBER:
                _lib = lib
                break
        else:
            raise OSError(f"no libssl of {ssl.OPENSSL_VERSION} mapped ({', '.join(paths)})")
    return _lib


def _ssl_ctx(lib: Any, context: ssl.SSLContext) -> Any:
    """The context's SSL_CTX *, checked against what Python says of it."""
    if sys.implementation.name != "cpython":
        raise OSError(f"not CPython ({sys.implementation.name})")
    if lib.OpenSSL_version_num() != ssl.OPENSSL_VERSION_NUMBER:
        raise OSError(f"libssl {lib.OpenSSL_version_num():#x} is not {ssl.OPENSSL_VERSION}")
    ctx = _ffi.cast("SSL_CTX **", id(context) + object.__basicsize__)[0]
    if ctx == _ffi.NULL:
        raise OSError("no SSL_CTX in the context")
    if lib.SSL_CTX_get_options(ctx) != context.options:
        raise OSError("the SSL_CTX's options are not the context's")
    if lib.SSL_CTX_get_verify_mode(ctx) & 3 != _VERIFY_MODES[context.verify_mode]:
        raise OSError("the SSL_CTX's verify mode is not the context's")
    callbacks = (
        lib.SSL_CTX_sess_get_new_cb(ctx),
        lib.SSL_CTX_sess_get_get_cb(ctx),
        lib.SSL_CTX_sess_get_remove_cb(ctx),
    )
    if any(callback != _ffi.NULL for callback in callbacks):
        raise OSError("the SSL_CTX has session callbacks already")
    mode = lib.SSL_CTX_ctrl(ctx, _GET_SESS_CACHE_MODE, 0, _ffi.NULL)
    if mode != _CACHE_SERVER:
        raise OSError(f"unexpected session cache mode {mode:#x}")
    return ctx


def _session_id(lib: Any, session: Any) -> bytes:
    length = _ffi.new("unsigned int *")
    pointer = lib.SSL_SESSION_get_id(session, length)
    return bytes(_ffi.buffer(pointer, length[0]))


def attach(context: ssl.SSLContext, store: SessionStore, namespace: bytes) -> str | None:
    """Keep the sessions of a server context in `store` under `namespace`
    (16 bytes); the reason, if they cannot be (nothing is then changed)."""
    if len(namespace) != 16:
        raise ValueError("namespace: 16 bytes")
    try:
        lib = _libssl()
        ctx = _ssl_ctx(lib, context)
    except (OSError, AttributeError) as exc:  # AttributeError: a symbol missing
        return str(exc)

    def new(_ssl: Any, session: Any) -> int:
        if lib.SSL_SESSION_get_protocol_version(session) == _TLS1_3:
            return 0  # resumed by ticket
        size = lib.i2d_SSL_SESSION(session, _ffi.NULL)
        if size <= 0:
            return 0
        data = _ffi.new("unsigned char[]", size)
        lib.i2d_SSL_SESSION(session, _ffi.new("unsigned char **", data))
        expires = lib.SSL_SESSION_get_time(session) + lib.SSL_SESSION_get_timeout(session)
        store.put(
            namespace, _session_id(lib, session), bytes(_ffi.buffer(data)), expires, time.time()
        )
        return 0  # OpenSSL keeps no reference for us

    def get(_ssl: Any, session_id: Any, length: int, copy: Any) -> Any:
        copy[0] = 0  # the session returned is OpenSSL's to free
        data = store.get(namespace, bytes(_ffi.buffer(session_id, length)), time.time())
        if data is None:
            return _ffi.NULL
        source = _ffi.from_buffer("unsigned char[]", data)
        return lib.d2i_SSL_SESSION(_ffi.NULL, _ffi.new("const unsigned char **", source), len(data))

    # A callback that raises must not unwind into OpenSSL: it answers "none".
    callbacks = (
        _ffi.callback("int(SSL *, SSL_SESSION *)", new, error=0, onerror=_report),
        _ffi.callback(
            "SSL_SESSION *(SSL *, const unsigned char *, int, int *)",
            get,
            error=_ffi.NULL,
            onerror=_report,
        ),
    )
    _installed[context] = callbacks
    lib.SSL_CTX_sess_set_new_cb(ctx, callbacks[0])
    lib.SSL_CTX_sess_set_get_cb(ctx, callbacks[1])
    lib.SSL_CTX_ctrl(ctx, _SET_SESS_CACHE_MODE, _CACHE_SERVER | _NO_INTERNAL, _ffi.NULL)
    return None


def _report(kind: Any, value: BaseException, _tb: Any) -> None:
    logs.log.error("TLS session cache: %r", value)
