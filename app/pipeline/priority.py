"""CPU priority of the page workers: below the API process, so probes and uploads never queue behind OCR.

With every core converting, the API process competes with the workers for CPU time; at equal priority the
kernel gives it a core only in turn, and a probe waits for that turn (tens to hundreds of ms under load). A nice
value of 10 leaves the workers all the idle CPU there is, while whatever the API process needs runs first.
Raising one's own nice value needs no privilege, so this works in any container.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def lower_priority(nice: int) -> None:
    """Set this process's nice value to at least `nice` (never raises priority, never fails the caller)."""
    try:
        current = os.getpriority(os.PRIO_PROCESS, 0)
        if nice > current:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError as exc:  # a sandbox without setpriority: run at normal priority rather than not at all
        log.warning("could not lower the worker's CPU priority to nice %d: %s", nice, exc)
