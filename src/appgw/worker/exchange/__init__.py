"""One request through the gateway: the handler, the exchange with a backend,
the request body's buffer and upload, the WebSocket handshake, the response
body."""
