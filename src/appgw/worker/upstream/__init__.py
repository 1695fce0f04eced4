"""Connections to backends and the worker's pool of them."""
