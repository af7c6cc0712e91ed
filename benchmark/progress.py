"""The progress bar every long loop of a method shows (quiet when the cell says progress=false)."""

from __future__ import annotations

from tqdm.auto import tqdm


def progress_bar(total: int, desc: str, enabled: bool) -> tqdm:
    return tqdm(
        total=total,
        desc=desc,
        leave=False,
        disable=None if enabled else True,
        mininterval=1.0,
        dynamic_ncols=True,
    )
