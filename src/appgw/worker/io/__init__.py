"""The bottom of the worker: a connection's bytes and their deadlines."""
