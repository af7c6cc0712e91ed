"""Network checks for the code paths that download data or weights on an online machine."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Callable


def online(host: str = "github.com", timeout: float = 3.0) -> bool:
    """Whether ``host`` answers on port 443 (offline machines get False within ``timeout``)."""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


# `invbench data NAME`: what each dataset's fetcher does on an online machine and prints
# offline. A fetcher takes the data root and the offline flag (INVBENCH_OFFLINE) and returns a line on what it found or did; when
# the user has to act it raises MissingDataError naming the archive, its source and checksum,
# and the folder to put it in.
DATASETS: dict[str, Callable[[Path, bool], str]] = {}


def dataset(name: str):
    def register(fetch: Callable[[Path, bool], str]) -> Callable[[Path, bool], str]:
        DATASETS[name] = fetch
        return fetch

    return register
