"""Network checks for the code paths that download data or weights on an online machine."""

from __future__ import annotations

import socket


def online(host: str = "github.com", timeout: float = 3.0) -> bool:
    """Whether ``host`` answers on port 443 (offline machines get False within ``timeout``)."""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False
