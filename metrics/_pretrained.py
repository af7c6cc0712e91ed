"""The metrics' pretrained networks (FID's Inception-v3, LPIPS' AlexNet), built once per process.

A sweep's worker process scores many cells: building these networks took 0.75 s of the 0.9 s an
instant attack's digits cell spends (their random initialisation before the weights load), and a
failed load (an offline machine's download) was retried by every cell. A network is kept per
weights file, keyed by its path, size and modification time, so a file that is written, replaced
or removed later is loaded anew; a failure is kept too and raised again, with its message, to
every later caller of the same key. Callers use the network under ``torch.no_grad()`` in eval
mode and never change it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

_NETWORKS: dict[tuple, Any] = {}


def load_once(weights: Path, build: Callable[[], Any]) -> Any:
    """``build()``'s network for the weights file ``weights``, built on the first call in this
    process; the exception it raised, raised again, when it failed."""
    stat = weights.stat() if weights.exists() else None
    key = (str(weights), None if stat is None else (stat.st_size, stat.st_mtime_ns))
    if key not in _NETWORKS:
        try:
            _NETWORKS[key] = build()
        except Exception as error:
            _NETWORKS[key] = error
    found = _NETWORKS[key]
    if isinstance(found, Exception):
        raise found
    return found
