"""Wire formats, pure: HTTP/1.1 and WebSocket (readers, the request value,
strict rules, heads, frames, the gateway's own error pages) and HTTP/2
(h2_session.py: libnghttp2 behind sans-IO events, bound in nghttp2_lib.py)."""
