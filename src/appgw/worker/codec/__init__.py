"""HTTP/1.1 and WebSocket wire formats, pure: readers, the request value,
strict rules, heads, frames, the gateway's own error pages."""
