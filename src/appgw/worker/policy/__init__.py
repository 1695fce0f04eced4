"""What the gateway decides about a request, pure: routing, rewrites,
variables, forwarded headers, balancing, passive health, custom error pages."""
