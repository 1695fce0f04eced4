"""The Web Application Firewall: ModSecurity v3 with the OWASP Core Rule Set.

Nothing here is imported by a gateway without a WAF policy: the worker
builds a `Firewall` (firewall.py) only when the configuration has one.
"""
