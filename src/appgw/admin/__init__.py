"""The admin listener: /metrics, /healthz, /backend-health and the status page."""
