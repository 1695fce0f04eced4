"""appgw: an application gateway for HTTP/1.1 and WebSocket."""

__version__ = "0.1.0"
