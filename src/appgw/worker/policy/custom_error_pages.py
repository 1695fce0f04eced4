"""Which page the gateway sends with an error it answers itself (pure).

Custom error pages (config/error_pages.py) are configured on the gateway
and on listeners; a listener's page for a status wins over the gateway's.
The listener is the one that takes the request's Host on the socket it
came in on; before a Host is known (a request that could not be read), the
socket's listener for any host. Without a custom page for the status, the
gateway's own small page is used (errorpage.py).

Only answers the gateway makes itself go through here: a backend's error
response is relayed as the backend sent it.
"""

from __future__ import annotations

from collections.abc import Iterable

from appgw.config.model import Config, ErrorPage
from appgw.worker.policy.routing import BoundAddress, Router

Page = tuple[bytes, bytes]  # (body, content type)


def _table(pages: Iterable[ErrorPage]) -> dict[int, Page]:
    return {page.status: (page.body, page.content_type.encode("latin-1")) for page in pages}


class CustomErrorPages:
    """The configured pages, by listener, built once per configuration."""

    def __init__(self, config: Config, router: Router) -> None:
        self.router = router
        self.gateway = _table(config.error_pages)
        self.listeners = {
            name: self.gateway | _table(listener.error_pages)
            for name, listener in config.listeners.items()
        }
        self.any = bool(self.gateway) or any(
            listener.error_pages for listener in config.listeners.values()
        )

    def page(self, bound: BoundAddress, host: bytes | None, status: int) -> Page | None:
        """The custom page for an error answered on `bound` for `host`, or None."""
        if not self.any:
            return None
        listener = self.router.listener(bound, host)
        table = self.gateway if listener is None else self.listeners[listener.name]
        return table.get(status)
