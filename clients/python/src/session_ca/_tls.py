"""A ``requests`` transport adapter that uses a given ``ssl.SSLContext``, switching when it changes."""

from __future__ import annotations

import ssl
import threading
from typing import Any, Callable, Dict, Optional

from requests.adapters import DEFAULT_POOLBLOCK, DEFAULT_POOLSIZE, HTTPAdapter


class ContextAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose HTTPS connections use the context ``context_provider()`` returns.

    The provider is called before every request; when it returns a different
    context (a renewed certificate), the adapter drops its connection pools
    so that the next connections handshake with the new one. Trust comes
    only from the context: ``requests``' ``verify`` (and its certifi bundle)
    and ``cert`` are not used, and verification is always required.
    """

    def __init__(self, context_provider: Callable[[], ssl.SSLContext], **kwargs: Any) -> None:
        self._provider = context_provider
        self._context: Optional[ssl.SSLContext] = None
        self._switch_lock = threading.Lock()
        super().__init__(**kwargs)

    def __getstate__(self) -> Dict[str, Any]:
        raise TypeError("a session-ca adapter holds an in-memory key and cannot be pickled")

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        if self._context is not None:
            pool_kwargs["ssl_context"] = self._context
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        if self._context is not None:
            proxy_kwargs["ssl_context"] = self._context
        return super().proxy_manager_for(proxy, **proxy_kwargs)

    def _use(self, context: ssl.SSLContext) -> None:
        with self._switch_lock:
            if context is self._context:
                return
            self._context = context
            self.poolmanager.clear()
            for manager in self.proxy_manager.values():
                manager.clear()
            self.proxy_manager.clear()
            self.init_poolmanager(
                getattr(self, "_pool_connections", DEFAULT_POOLSIZE),
                getattr(self, "_pool_maxsize", DEFAULT_POOLSIZE),
                block=getattr(self, "_pool_block", DEFAULT_POOLBLOCK),
            )

    # requests >= 2.32.2 picks the pool by these attributes; put the context in
    # explicitly and drop every other source of trust or client certificate.
    def build_connection_pool_key_attributes(self, request: Any, verify: Any, cert: Any = None) -> Any:
        host_params, kwargs = super().build_connection_pool_key_attributes(request, True, None)
        pool_kwargs: Dict[str, Any] = dict(kwargs)
        for name in ("ca_certs", "ca_cert_dir", "cert_file", "key_file"):
            pool_kwargs.pop(name, None)
        pool_kwargs["cert_reqs"] = "CERT_REQUIRED"
        if self._context is not None:
            pool_kwargs["ssl_context"] = self._context
        return host_params, pool_kwargs

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        # Never let requests add its CA bundle (certifi) to our context.
        conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = None
        conn.ca_cert_dir = None

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("cert", None)
        self._use(self._provider())
        return super().send(request, *args, **kwargs)
