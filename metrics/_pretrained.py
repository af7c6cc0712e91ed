"""The metrics' pretrained networks (FID's Inception-v3, LPIPS' AlexNet), built once per process.

A sweep's worker process scores many cells: building these networks took 0.75 s of the 0.9 s an
instant attack's digits cell spends (their random initialisation before the weights load), and a
failed load (an offline machine's download) was retried by every cell. A network is kept per
weights file, keyed by its path, size and modification time, so a file that is written, replaced
or removed later is loaded anew; a failure is kept too and raised again, with its message, to
every later caller of the same key. Callers use the network under ``torch.no_grad()`` in eval
mode and never change it.

A sweep checks these weights once, in its launcher, before any cell runs (and fetches them there
when it is online); its cells then run under ``weight_downloads(False)``: a metric whose file is
absent is unavailable at once, with the reason, instead of one failed download per cell.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterator

_NETWORKS: dict[tuple, Any] = {}
_DOWNLOADS = {"allowed": True}


@contextlib.contextmanager
def weight_downloads(allowed: bool) -> Iterator[None]:
    """Whether a metric may download its absent weights within the block (a sweep's cell: no)."""
    saved = _DOWNLOADS["allowed"]
    _DOWNLOADS["allowed"] = allowed
    try:
        yield
    finally:
        _DOWNLOADS["allowed"] = saved


def may_download(offline: bool) -> bool:
    """Whether a metric whose weights file is absent tries to download it."""
    return _DOWNLOADS["allowed"] and not offline


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


def fetch_hub_weights(
    name: str, path: Path, url: str, missing: str, host: str, offline: bool
) -> str:
    """``invbench data NAME`` for a metric's weights file in torch's hub folder: present,
    downloaded from ``url`` (its hash prefix checked), or MissingDataError with ``missing``
    (where to put the file) when offline or when the download fails."""
    import torch

    from benchmark.downloads import online
    from benchmark.errors import MissingDataError

    if path.exists():
        return f"{name}: present at {path}"
    if offline or not online(host):
        raise MissingDataError(missing)
    try:
        torch.hub.load_state_dict_from_url(url, progress=False, check_hash=True)
    except Exception as error:  # unreachable host, a proxy's error page, a wrong hash
        raise MissingDataError(f"the download failed ({error}). {missing}") from None
    return f"{name}: downloaded to {path} (hash prefix checked)"
