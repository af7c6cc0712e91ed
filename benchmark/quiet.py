"""Silence the libraries' chatter that tells a user of invbench nothing they can act on.

A sweep's output is the progress line and one line per failed cell; a deprecation warning that a
dependency raises about its own dependency (torch_geometric calling ``torch.jit.script``) buried
that among a dozen copies of the same message, one per worker process. Each filter matches one
exact message from one module, so a new warning, or the same text from another place, still
shows. They are installed in the launcher and in every cell (a worker process starts with the
default filters): :func:`quiet_libraries` is idempotent.

Warnings raised by a call of ours are silenced at that call instead (metrics/lpips_distance.py).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

# (category, the message's start as a regex, the module that raises it): the versions that
# raised each one when the filter was written are in the comment.
KNOWN_WARNINGS = (
    # torch 2.14: torch_geometric 2.8 scripts its pooling helpers at import
    (FutureWarning, r"`torch\.jit\.script` is deprecated", r"torch\.jit\._script"),
    # joblib 1.6: loky replaces a worker that its memory-leak check stopped; nothing is lost
    (UserWarning, r"A worker stopped while some jobs were given", r"joblib\.externals\.loky"),
)


def quiet_libraries() -> None:
    for category, message, module in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    # transformers' warnings are about its internals (5.x: "`loss_type=None` was set in the
    # config but it is unrecognized"), not about the cell; it reads its level from the
    # environment when it first logs (a worker imports it after this), errors still show
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.getLogger("transformers").setLevel(logging.ERROR)


def quiet_progress_bars() -> None:
    """The libraries' own progress bars (transformers 5's "Loading weights" on every model it
    loads), in a cell that shows none (``progress=false``: a sweep's cell, whose progress is the
    sweep's line). Through the environment for a worker that imports transformers later, and
    through transformers itself where it is imported already (``jobs=1``)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
