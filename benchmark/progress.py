"""What a user sees while cells run: the progress bar every long loop of a method shows (quiet
when the cell says ``progress=false``), and, over a sweep, one progress line.

``invbench bench`` shows its cells' progress (done / to run, failed, elapsed, ETA) as one line,
redrawn in place on a terminal and printed every few cells or every minute otherwise, plus one
line per failed cell. Its cells tell it that they finished through a folder of small event files
(``sweep_events``, on the results' file system, which a cluster's jobs share), and print nothing
themselves; their tqdm bars are off, since several workers' bars and the line would overwrite each
other. With ``progress=false`` the sweep shows no line and each cell prints its own summary line,
as ``invbench run`` does: the plain log, e.g. for a program that reads the output.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from tqdm import tqdm

EVENTS_KEY = "sweep_events"  # the cell's config key naming the sweep's events folder
FAILURE_CHARS = 240  # a failed cell's line shows the first line of its error, cut to this


def progress_bar(total: int, desc: str, enabled: bool) -> tqdm:
    from tqdm.auto import tqdm  # 0.3 s (it imports asyncio): not for `invbench list`

    return tqdm(
        total=total,
        desc=desc,
        leave=False,
        disable=None if enabled else True,
        mininterval=1.0,
        dynamic_ncols=True,
    )


def report_cell(
    cfg: Any, status: str, label: str, line: str, error: str | None = None, record: Any = None
) -> None:
    """A cell has finished (``status``: ok, failed, cached or n/a): tell the sweep that watches it
    (an event file in ``cfg.sweep_events``), or else print ``line``."""
    folder = cfg.get(EVENTS_KEY)
    if not folder:
        print(line, flush=True)
        return
    event = {"label": label, "status": status, "error": error, "record": str(record or "")}
    path = Path(str(folder)) / f"{hashlib.sha256(label.encode()).hexdigest()[:20]}.json"
    partial = path.with_name(f".{path.name}.{os.getpid()}")  # hidden: the sweep skips it
    partial.write_text(json.dumps(event))
    os.replace(partial, path)


def clock(seconds: float) -> str:
    """``1:02:03``, ``2:03``: hours only when there are some."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def failure_line(event: dict) -> str:
    error = (event.get("error") or "no error text").strip().splitlines()[0]
    if len(error) > FAILURE_CHARS:
        error = error[: FAILURE_CHARS - 3] + "..."
    where = f" (record: {event['record']})" if event.get("record") else ""
    return f"[failed] {event['label']}: {error}{where}"


class SweepProgress:
    """The sweep's progress line, read from its cells' event files by a background thread while
    the launcher waits on its workers (or, with jobs=1, runs the cells itself).

    Use as a context manager around the launch; the last line is printed on exit."""

    def __init__(
        self,
        total: int,
        events: Path,
        stream: TextIO | None = None,
        every_seconds: float = 60.0,
        poll_seconds: float = 0.5,
    ):
        self.total, self.events = total, Path(events)
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every_cells = max(1, math.ceil(total / 20))  # at most ~20 lines for a whole sweep
        self.every_seconds, self.poll_seconds = every_seconds, poll_seconds
        self.counts = {"ok": 0, "failed": 0, "cached": 0, "n/a": 0}
        self.seen: set[str] = set()
        self.started = time.monotonic()
        self.last_line = (0, self.started)  # (cells done, time) when a line was last printed
        self.drawn = ""
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="sweep-progress", daemon=True)

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def line(self, now: float | None = None) -> str:
        elapsed = (now or time.monotonic()) - self.started
        ran = self.counts["ok"] + self.counts["failed"]  # cached cells take no time: not in ETA
        eta = clock(elapsed / ran * (self.total - self.done)) if ran else "--"
        cached = f", {self.counts['cached']} cached" if self.counts["cached"] else ""
        return (
            f"progress: {self.done}/{self.total} cells done, {self.counts['failed']} failed"
            f"{cached} | {clock(elapsed)} elapsed, ETA {eta}"
        )

    def poll(self) -> None:
        """Read the new event files: print each failure, then the line when it is due."""
        with self.lock:
            for event in self._new_events():
                status = event.get("status", "failed")
                self.counts[status if status in self.counts else "failed"] += 1
                if status == "failed":
                    self._print(failure_line(event))
            self._show()

    def _new_events(self) -> list[dict]:
        events = []
        try:
            names = sorted(os.listdir(self.events))
        except FileNotFoundError:
            return []
        for name in names:
            if name.startswith(".") or name in self.seen:
                continue
            try:
                events.append(json.loads((self.events / name).read_text()))
            except (OSError, ValueError):  # not written completely yet: read it next time
                continue
            self.seen.add(name)
        return events

    def _print(self, text: str) -> None:
        if self.tty and self.drawn:
            self.stream.write("\r\x1b[K")
            self.drawn = ""
        self.stream.write(text + "\n")
        self.stream.flush()

    def _show(self, final: bool = False) -> None:
        now = time.monotonic()
        text = self.line(now)
        if self.tty:
            if final or text != self.drawn:
                self.stream.write("\r\x1b[K" + text + ("\n" if final else ""))
                self.stream.flush()
                self.drawn = "" if final else text
            return
        last_done, last_time = self.last_line
        due = (
            self.done - last_done >= self.every_cells
            or (now - last_time >= self.every_seconds)
            or (final and self.done != last_done)
        )
        if due or (final and last_done == 0):
            self._print(text)
            self.last_line = (self.done, now)

    def _watch(self) -> None:
        while not self.stop.wait(self.poll_seconds):
            self.poll()

    def __enter__(self) -> "SweepProgress":
        self.events.mkdir(parents=True, exist_ok=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        self.poll()
        with self.lock:
            self._show(final=True)
