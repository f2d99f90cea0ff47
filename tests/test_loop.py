"""Reaching the event loop from any thread (gracekit._loop.LoopBinding): gates and events from
worker threads act on the loop, in its thread."""

from __future__ import annotations

import asyncio
import threading

import anyio
import anyio.to_thread
import pytest

from gracekit import Lifecycle
from gracekit._loop import LoopBinding
from gracekit.events import LifecycleEvent
from tests.support.asgi import eventually

pytestmark = pytest.mark.anyio


def test_unbound_it_runs_now_or_not_at_all() -> None:
    binding, ran = LoopBinding(), []
    binding.call(lambda: ran.append("now"))
    binding.call(lambda: ran.append("soon"), soon=True)  # no loop to run it on
    assert ran == ["now"]


async def test_on_the_loop_it_runs_now_or_after_the_current_step() -> None:
    binding, ran = LoopBinding(), []
    binding.bind()
    binding.call(lambda: ran.append("now"))
    binding.call(lambda: ran.append("soon"), soon=True)
    assert ran == ["now"]
    await eventually(lambda: ran == ["now", "soon"])


async def test_from_another_thread_it_runs_in_the_loops_thread() -> None:
    binding, threads = LoopBinding(), []
    binding.bind()
    await anyio.to_thread.run_sync(binding.call, lambda: threads.append(threading.get_ident()))
    await eventually(lambda: threads)
    assert threads == [threading.get_ident()]


def test_a_closed_loop_is_not_an_error() -> None:
    binding, ran = LoopBinding(), []
    loop = asyncio.new_event_loop()

    async def bind() -> None:
        binding.bind()

    loop.run_until_complete(bind())
    loop.close()
    worker = threading.Thread(target=binding.call, args=(lambda: ran.append(1),))
    worker.start()
    worker.join()
    assert ran == []


async def test_a_gate_opened_in_a_worker_thread_is_reported_from_the_loop() -> None:
    lifecycle = Lifecycle(handle_signals=False)
    gate = lifecycle.gate("warm")
    seen: list[tuple[str, int]] = []

    @lifecycle.on_event
    def listen(event: LifecycleEvent) -> None:
        seen.append((event.kind, threading.get_ident()))

    async with lifecycle.run():
        await eventually(lambda: lifecycle.startup().ok)
        assert not lifecycle.readiness().ok
        await anyio.to_thread.run_sync(gate.open)
        await eventually(lambda: ("ready", threading.get_ident()) in seen)
        lifecycle.shutdown(delay=0)
    assert {thread for _, thread in seen} == {threading.get_ident()}
