"""Start Jupyter kernels one at a time across processes, so that parallel notebooks cannot collide.

jupyter_client picks a kernel's five TCP ports by binding port 0 and letting go; the kernel binds
them a second or two later. Two kernels started at once (``python -m imse_study.study -j 2``) can
be handed the same port in that window, which kills a heartbeat or a whole kernel ("Address
already in use"). :class:`SerialStartKernelManager` holds an exclusive file lock from choosing the
ports until the kernel listens on all of them. Written here because jupyter_client has no such
option; IPC transport would avoid ports, but its socket files are named from the working folder,
which parallel notebooks share.
"""

from __future__ import annotations

import asyncio
import fcntl
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager

LOCK_FILE = Path(tempfile.gettempdir()) / "imse-study-kernel-start.lock"


def _listening(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((ip, port)) == 0


class SerialStartKernelManager(AsyncKernelManager):
    """An :class:`AsyncKernelManager` whose kernel start is serialised by a lock file."""

    ready_timeout = 60.0  # seconds to wait for the kernel's ports before letting the next start go

    async def _async_start_kernel(self, **kw: Any) -> None:
        with open(LOCK_FILE, "a") as lock:
            await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)
            try:
                await super()._async_start_kernel(**kw)
                ports = [self.shell_port, self.iopub_port, self.stdin_port, self.hb_port, self.control_port]
                deadline = time.monotonic() + self.ready_timeout
                while time.monotonic() < deadline and not all(_listening(self.ip, p) for p in ports):
                    if not await self.is_alive():
                        break  # the kernel died: let nbclient report it
                    await asyncio.sleep(0.1)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    start_kernel = _async_start_kernel  # type: ignore[assignment]


__all__ = ["LOCK_FILE", "SerialStartKernelManager"]
