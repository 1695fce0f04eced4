"""libnghttp2, bound through cffi in ABI mode: the declarations and the loading.

ABI mode opens Debian's `libnghttp2.so.14` (package libnghttp2-14, the
library of curl, Apache httpd and Node.js) at run time with no compiler
and no -dev package, so the declarations below restate the parts of
nghttp2.h the codec uses. Byte buffers are declared `char *` where the
header says `uint8_t *` (the same ABI) so that cffi hands them over as
bytes without a copy.

Nothing is loaded at import: `load()` opens the library the first time an
HTTP/2 session is made and raises `H2Unavailable`, naming the Debian
package, on a machine without it. Options that only newer (or patched)
libraries have are probed and used when present.
"""

from __future__ import annotations

from typing import Any

from attrs import frozen

from appgw import nghttp2_library
from appgw.nghttp2_library import INSTALL_HINT, SONAME

CDEF = """
typedef struct nghttp2_session nghttp2_session;
typedef struct nghttp2_session_callbacks nghttp2_session_callbacks;
typedef struct nghttp2_option nghttp2_option;
typedef struct {
    int age; int version_num; const char *version_str; const char *proto_str;
} nghttp2_info;
typedef struct {
    char *name; char *value; size_t namelen; size_t valuelen; uint8_t flags;
} nghttp2_nv;
typedef struct {
    size_t length; int32_t stream_id; uint8_t type; uint8_t flags; uint8_t reserved;
} nghttp2_frame_hd;
typedef union { int fd; void *ptr; } nghttp2_data_source;
typedef ssize_t (*nghttp2_data_source_read_callback)(
    nghttp2_session *, int32_t, char *, size_t, uint32_t *, nghttp2_data_source *, void *);
typedef struct {
    nghttp2_data_source source; nghttp2_data_source_read_callback read_callback;
} nghttp2_data_provider;
typedef struct { nghttp2_frame_hd hd; size_t padlen; } nghttp2_data;
typedef struct { int32_t stream_id; int32_t weight; uint8_t exclusive; } nghttp2_priority_spec;
typedef enum {
    NGHTTP2_HCAT_REQUEST = 0, NGHTTP2_HCAT_RESPONSE = 1,
    NGHTTP2_HCAT_PUSH_RESPONSE = 2, NGHTTP2_HCAT_HEADERS = 3
} nghttp2_headers_category;
typedef struct {
    nghttp2_frame_hd hd; size_t padlen; nghttp2_priority_spec pri_spec;
    nghttp2_nv *nva; size_t nvlen; nghttp2_headers_category cat;
} nghttp2_headers;
typedef struct { nghttp2_frame_hd hd; nghttp2_priority_spec pri_spec; } nghttp2_priority;
typedef struct { nghttp2_frame_hd hd; uint32_t error_code; } nghttp2_rst_stream;
typedef struct { int32_t settings_id; uint32_t value; } nghttp2_settings_entry;
typedef struct { nghttp2_frame_hd hd; size_t niv; nghttp2_settings_entry *iv; } nghttp2_settings;
typedef struct {
    nghttp2_frame_hd hd; size_t padlen; nghttp2_nv *nva; size_t nvlen;
    int32_t promised_stream_id; uint8_t reserved;
} nghttp2_push_promise;
typedef struct { nghttp2_frame_hd hd; uint8_t opaque_data[8]; } nghttp2_ping;
typedef struct {
    nghttp2_frame_hd hd; int32_t last_stream_id; uint32_t error_code;
    char *opaque_data; size_t opaque_data_len; uint8_t reserved;
} nghttp2_goaway;
typedef struct {
    nghttp2_frame_hd hd; int32_t window_size_increment; uint8_t reserved;
} nghttp2_window_update;
typedef struct { nghttp2_frame_hd hd; void *payload; } nghttp2_extension;
typedef union {
    nghttp2_frame_hd hd; nghttp2_data data; nghttp2_headers headers;
    nghttp2_priority priority; nghttp2_rst_stream rst_stream; nghttp2_settings settings;
    nghttp2_push_promise push_promise; nghttp2_ping ping; nghttp2_goaway goaway;
    nghttp2_window_update window_update; nghttp2_extension ext;
} nghttp2_frame;

typedef int (*nghttp2_on_frame_recv_callback)(nghttp2_session *, const nghttp2_frame *, void *);
typedef int (*nghttp2_on_data_chunk_recv_callback)(
    nghttp2_session *, uint8_t, int32_t, const char *, size_t, void *);
typedef int (*nghttp2_on_stream_close_callback)(nghttp2_session *, int32_t, uint32_t, void *);
typedef int (*nghttp2_on_header_callback)(
    nghttp2_session *, const nghttp2_frame *, const char *, size_t, const char *, size_t,
    uint8_t, void *);
typedef int (*nghttp2_on_begin_frame_callback)(nghttp2_session *, const nghttp2_frame_hd *, void *);

nghttp2_info *nghttp2_version(int least_version);
const char *nghttp2_strerror(int lib_error_code);

int nghttp2_session_callbacks_new(nghttp2_session_callbacks **callbacks_ptr);
void nghttp2_session_callbacks_set_on_frame_recv_callback(
    nghttp2_session_callbacks *, nghttp2_on_frame_recv_callback);
void nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
    nghttp2_session_callbacks *, nghttp2_on_data_chunk_recv_callback);
void nghttp2_session_callbacks_set_on_stream_close_callback(
    nghttp2_session_callbacks *, nghttp2_on_stream_close_callback);
void nghttp2_session_callbacks_set_on_header_callback(
    nghttp2_session_callbacks *, nghttp2_on_header_callback);
void nghttp2_session_callbacks_set_on_invalid_header_callback(
    nghttp2_session_callbacks *, nghttp2_on_header_callback);
void nghttp2_session_callbacks_set_on_begin_frame_callback(
    nghttp2_session_callbacks *, nghttp2_on_begin_frame_callback);

int nghttp2_option_new(nghttp2_option **option_ptr);
void nghttp2_option_del(nghttp2_option *option);
void nghttp2_option_set_no_auto_window_update(nghttp2_option *option, int val);
void nghttp2_option_set_max_outbound_ack(nghttp2_option *option, size_t val);
void nghttp2_option_set_max_settings(nghttp2_option *option, size_t val);
void nghttp2_option_set_max_deflate_dynamic_table_size(nghttp2_option *option, size_t val);
void nghttp2_option_set_max_continuations(nghttp2_option *option, size_t val);
void nghttp2_option_set_stream_reset_rate_limit(nghttp2_option *option, uint64_t burst,
                                                uint64_t rate);

int nghttp2_session_server_new2(nghttp2_session **session_ptr,
                                const nghttp2_session_callbacks *callbacks,
                                void *user_data, const nghttp2_option *option);
void nghttp2_session_del(nghttp2_session *session);
ssize_t nghttp2_session_mem_recv(nghttp2_session *session, const char *in, size_t inlen);
ssize_t nghttp2_session_mem_send(nghttp2_session *session, const char **data_ptr);
int nghttp2_session_want_read(nghttp2_session *session);
int nghttp2_session_want_write(nghttp2_session *session);
int nghttp2_session_resume_data(nghttp2_session *session, int32_t stream_id);
int nghttp2_session_consume(nghttp2_session *session, int32_t stream_id, size_t size);
int nghttp2_session_consume_connection(nghttp2_session *session, size_t size);
int32_t nghttp2_session_get_stream_remote_window_size(nghttp2_session *session,
                                                      int32_t stream_id);
int32_t nghttp2_session_get_remote_window_size(nghttp2_session *session);
int32_t nghttp2_session_get_last_proc_stream_id(nghttp2_session *session);
int nghttp2_session_get_stream_local_close(nghttp2_session *session, int32_t stream_id);
int nghttp2_submit_settings(nghttp2_session *session, uint8_t flags,
                            const nghttp2_settings_entry *iv, size_t niv);
int nghttp2_submit_window_update(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                                 int32_t window_size_increment);
int32_t nghttp2_submit_headers(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                               const nghttp2_priority_spec *pri_spec, const nghttp2_nv *nva,
                               size_t nvlen, void *stream_user_data);
int nghttp2_submit_response(nghttp2_session *session, int32_t stream_id,
                            const nghttp2_nv *nva, size_t nvlen,
                            const nghttp2_data_provider *data_prd);
int nghttp2_submit_rst_stream(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                              uint32_t error_code);
int nghttp2_submit_goaway(nghttp2_session *session, uint8_t flags, int32_t last_stream_id,
                          uint32_t error_code, const char *opaque_data,
                          size_t opaque_data_len);
"""

# Return codes and flags of nghttp2.h.
ERR_DEFERRED = -508
ERR_TEMPORAL_CALLBACK_FAILURE = -521
ERR_NOMEM = -901
ERR_CALLBACK_FAILURE = -902
ERR_BAD_CLIENT_MAGIC = -903
ERR_FLOODED = -904
ERR_TOO_MANY_CONTINUATIONS = -905
DATA_FLAG_EOF = 0x01

# Frame types and flags (RFC 9113 section 6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS = 0x0, 0x1, 0x2, 0x3, 0x4
PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0x5, 0x6, 0x7, 0x8, 0x9
FLAG_END_STREAM = 0x01
FLAG_ACK = 0x01
FLAG_END_HEADERS = 0x04
HCAT_REQUEST = 0
HCAT_HEADERS = 3

# SETTINGS identifiers (RFC 9113 section 6.5.2, RFC 8441 section 3).
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE = 0x6
SETTINGS_ENABLE_CONNECT_PROTOCOL = 0x8


class H2Unavailable(Exception):
    """libnghttp2 (or cffi) is missing; the message says what to install."""


@frozen
class Nghttp2:
    """The loaded library: its cffi namespace, the options it has."""

    ffi: Any
    lib: Any
    # cffi's C functions behind the FFI methods of the same names (unpack,
    # memmove, from_handle): those methods are Python wrappers, one call
    # more on the per-frame path.
    backend: Any
    version: str
    has_max_continuations: bool
    has_stream_reset_rate_limit: bool


_loaded: Nghttp2 | None = None


def load() -> Nghttp2:
    """Open libnghttp2 once per process; H2Unavailable if it is not there."""
    global _loaded
    if _loaded is None:
        _loaded = _open()
    return _loaded


def _open() -> Nghttp2:
    try:
        import cffi  # type: ignore[import-untyped]
    except ImportError as error:  # pragma: no cover - cffi is a dependency
        raise H2Unavailable(f"HTTP/2 needs the cffi package: {error}") from error
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    lib = None
    for name in nghttp2_library.names(SONAME):
        try:
            lib = ffi.dlopen(name)
            break
        except OSError:
            continue
    if lib is None:
        raise H2Unavailable(f"HTTP/2 needs libnghttp2 ({SONAME}), not installed: {INSTALL_HINT}")
    info = lib.nghttp2_version(0)
    return Nghttp2(
        ffi=ffi,
        lib=lib,
        backend=getattr(ffi, "_backend", ffi),
        version=ffi.string(info.version_str).decode("ascii", "replace"),
        has_max_continuations=_has(lib, "nghttp2_option_set_max_continuations"),
        has_stream_reset_rate_limit=_has(lib, "nghttp2_option_set_stream_reset_rate_limit"),
    )


def _has(lib: Any, symbol: str) -> bool:
    """Whether the loaded library exports `symbol` (declared is not enough)."""
    try:
        getattr(lib, symbol)
    except AttributeError:
        return False
    return True
