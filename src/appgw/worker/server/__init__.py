"""Client connections: the HTTP/1.1 server loop and its one error boundary."""
