"""Measuring a cell's cost: wall seconds, peak resident memory of the process, and on a GPU its
peak allocated memory."""

from __future__ import annotations

import threading
import time

import psutil
import torch


class PeakMemory:
    """Samples this process's RSS in a background thread; ``peak_mb`` after the block. Given a
    CUDA ``device``, it also drains the device at both ends (so ``seconds`` covers the work
    queued there) and reads its peak allocated memory, ``peak_gpu_mb``."""

    def __init__(self, interval: float = 0.05, device: torch.device | None = None):
        self.interval = interval
        self.peak_bytes = 0
        self.device = device if device is not None and device.type == "cuda" else None
        self.peak_gpu_bytes: int | None = None
        self._stop = threading.Event()
        self._process = psutil.Process()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._process.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        if self.device is not None:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self.peak_bytes = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device is not None:
            torch.cuda.synchronize(self.device)
            self.peak_gpu_bytes = torch.cuda.max_memory_allocated(self.device)
        self.seconds = time.perf_counter() - self.started
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self._process.memory_info().rss)

    @property
    def peak_mb(self) -> float:
        return round(self.peak_bytes / 2**20, 1)

    @property
    def peak_gpu_mb(self) -> float | None:
        return None if self.peak_gpu_bytes is None else round(self.peak_gpu_bytes / 2**20, 1)
