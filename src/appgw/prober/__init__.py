"""The prober: probes backend servers and publishes their health.

- targets.py  what to probe (pure): one Target per (pool, setting, server)
- probe.py    one probe of one target (trio + h11)
- health.py   the state table (pure): HealthTable on the prober's side,
              HealthView on the worker's
- main.py     the prober process: run_prober(config, out_fd)
- report.py   `appgw health` output, text and az-shaped JSON (pure)

Importing this package imports none of them, so a worker can take
appgw.prober.health alone.
"""
