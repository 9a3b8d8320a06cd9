"""Ask supervisord (our parent in the image) what state the `vlm` program is in.

supervisord gives every child `SUPERVISOR_SERVER_URL` (its unix socket) when an RPC interface is configured.
A sidecar that failed to start too many times sits in FATAL and will not come back by itself; the API reports
that in /health instead of waiting forever. Outside supervisord (tests, `make run`) this answers None.
"""

from __future__ import annotations

import asyncio
import logging
import os
import xmlrpc.client
from dataclasses import dataclass

log = logging.getLogger(__name__)

PROGRAM = "vlm"


@dataclass(frozen=True)
class ProgramState:
    name: str  # STOPPED, STARTING, RUNNING, BACKOFF, STOPPING, EXITED, FATAL, UNKNOWN
    detail: str

    @property
    def gave_up(self) -> bool:
        return self.name == "FATAL"


def _query(server_url: str, program: str) -> ProgramState:
    from supervisor.xmlrpc import SupervisorTransport  # supervisor is a runtime dependency of the image

    proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=SupervisorTransport(None, None, server_url))
    info = proxy.supervisor.getProcessInfo(program)
    return ProgramState(name=str(info["statename"]), detail=str(info.get("spawnerr") or info.get("description") or ""))


async def program_state(program: str = PROGRAM, *, timeout_s: float = 2.0) -> ProgramState | None:
    """The program's supervisord state, or None when not under supervisord or when supervisord can't say."""
    url = os.environ.get("SUPERVISOR_SERVER_URL")
    if not url:
        return None
    try:
        return await asyncio.wait_for(asyncio.to_thread(_query, url, program), timeout_s)
    except Exception as exc:  # noqa: BLE001 - the answer is advisory; never let it break /health
        log.debug("supervisord state of %s unavailable: %s", program, exc)
        return None
