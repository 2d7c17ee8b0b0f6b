"""Parallel notebooks start their kernels one at a time (imse_study.study.kernel_start)."""

from __future__ import annotations

import asyncio
import fcntl

import pytest

from imse_study.study.kernel_start import LOCK_FILE, SerialStartKernelManager


@pytest.mark.slow
def test_kernel_start_waits_for_the_lock_and_ends_listening():
    async def start_while_locked() -> tuple[bool, bool]:
        km = SerialStartKernelManager(kernel_name="python3")
        with open(LOCK_FILE, "a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)  # another process is starting a kernel
            task = asyncio.ensure_future(km.start_kernel())
            await asyncio.sleep(1.0)
            waited = not task.done() and not km.has_kernel
            fcntl.flock(held, fcntl.LOCK_UN)
        await asyncio.wait_for(task, 120)
        from imse_study.study.kernel_start import _listening

        listening = _listening(km.ip, km.shell_port) and _listening(km.ip, km.hb_port)
        await km.shutdown_kernel(now=True)
        return waited, listening

    waited, listening = asyncio.run(start_while_locked())
    assert waited, "the kernel started although another start held the lock"
    assert listening, "start_kernel returned before the kernel listened on its ports"
