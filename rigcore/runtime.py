"""The one owner of the asyncio event loop (STYLE habit 1).

The loop runs in a background thread; Flask views stay synchronous and reach it only through
:meth:`LoopRuntime.submit`. Shutdown cancels the tasks, stops the loop, then joins the thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class LoopRuntime:
    def __init__(self, name: str = "rigcapture-loop") -> None:
        self._name = name
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("runtime not started")
        return self._loop

    def start(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("event loop did not start")

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        loop.call_soon(self._ready.set)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def submit(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30.0) -> T:
        """Run ``coro`` on the loop from another thread and return its result."""
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except TimeoutError:
            fut.cancel()
            raise

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Start a named background task on the loop (thread-safe); shutdown cancels it."""

        def create() -> None:
            task = self.loop.create_task(coro, name=name)
            self._tasks.add(task)
            task.add_done_callback(self._task_done)

        self.loop.call_soon_threadsafe(create)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s died", task.get_name(), exc_info=task.exception())

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is None or self._thread is None:
            return

        async def cancel_all() -> None:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.submit(cancel_all(), timeout)
        except Exception:  # the loop may already be wedged; stopping it is still right
            log.exception("cancelling background tasks failed")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._thread = None
