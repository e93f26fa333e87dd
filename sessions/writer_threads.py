"""The writer threads: an executor whose priority follows its queue (issue 24).

The encoders run on CPU time the stream reader does not want: a reader that falls behind makes the rig
skip frames, lost for good, while an encode can always wait. So the writers run at nice 19
(:data:`WRITER_NICE`), below the reader (nice 0) and the frame pool's grower (nice 10). At nice 19 on
two cores shared with a busy reader and rig they get about 1.5 % of a core each when every core is
busy: frames pile up in memory, and cheaper encodings (sessions.encode_ladder) only help if the
encoders get some CPU at all.

A thread's priority cannot be raised again once lowered without privileges (``RLIMIT_NICE`` is 0 for
most users: ``setpriority`` to a lower nice fails with EACCES), so priority cannot follow the queue by
renicing a thread. Instead the executor has threads of two fixed priorities and the queue decides
which take work:

- ``workers`` threads at :data:`WRITER_NICE` take every job in submission order, as a
  ``ThreadPoolExecutor`` would;
- ``catchup`` threads at :data:`CATCHUP_NICE` (default 1) take the oldest job only once it has waited
  ``catchup_after_s``: while frames pile up, the encoders get a bounded share (one thread at nice 10
  gets about a tenth of a core that the reader also wants; the reader keeps the rest), and none when
  they keep up.

Jobs run in submission order whichever thread takes them. ``shutdown`` behaves as
``ThreadPoolExecutor.shutdown``. The threads are daemons: the owner shuts the executor down (the
service does, at stop, waiting for the writes).
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from camera.pool import lower_thread_priority

WRITER_NICE = 19
CATCHUP_NICE = 10  # below the reader; the same as the pool's grower (camera.pool.GROWER_NICE)
CATCHUP_AFTER_S = 1.0  # the ladder moves at 0.5 s (sessions.encode_ladder): cheaper encodings first

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(eq=False, slots=True)
class _Job:
    future: concurrent.futures.Future[Any]
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    submitted: float


class WriterThreads(concurrent.futures.Executor):
    """``workers`` threads at ``nice`` and ``catchup`` threads at ``catchup_nice`` that help only while
    the oldest job has waited ``catchup_after_s`` (see the module's docstring)."""

    def __init__(
        self,
        workers: int,
        catchup: int = 1,
        *,
        nice: int = WRITER_NICE,
        catchup_nice: int = CATCHUP_NICE,
        catchup_after_s: float = CATCHUP_AFTER_S,
        name: str = "writer",
    ) -> None:
        if workers < 1 or catchup < 0:
            raise ValueError(
                f"need at least one worker and no negative catch-up threads: {workers}, {catchup}"
            )
        self.catchup_after_s = catchup_after_s
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)  # workers: a job was submitted
        self._late = threading.Condition(self._lock)  # catch-up threads: a first job waits, or shutdown
        self._jobs: deque[_Job] = deque()
        self._shutdown = False
        self.catchup_jobs = 0  # jobs the catch-up threads ran
        self._threads = [
            threading.Thread(target=self._run, args=(nice, False), name=f"{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        self._threads += [
            threading.Thread(
                target=self._run, args=(catchup_nice, True), name=f"{name}-catchup-{i}", daemon=True
            )
            for i in range(catchup)
        ]
        for thread in self._threads:
            thread.start()

    def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._jobs.append(_Job(future, fn, args, kwargs, time.monotonic()))
            self._ready.notify()
            if len(self._jobs) == 1:
                self._late.notify_all()  # catch-up threads time the new oldest job
        return future

    def backlog_s(self) -> float:
        """How long the oldest job not started yet has waited (0 when none waits)."""
        with self._lock:
            return time.monotonic() - self._jobs[0].submitted if self._jobs else 0.0

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                while self._jobs:
                    self._jobs.popleft().future.cancel()
            self._ready.notify_all()
            self._late.notify_all()
        if wait:
            for thread in self._threads:
                if thread is not threading.current_thread():
                    thread.join()

    def _run(self, nice: int, catchup: bool) -> None:
        lower_thread_priority(nice)
        while (job := self._next(catchup)) is not None:
            if not job.future.set_running_or_notify_cancel():
                continue
            try:
                result = job.fn(*job.args, **job.kwargs)
            except BaseException as exc:  # the future carries it, as ThreadPoolExecutor's do
                job.future.set_exception(exc)
            else:
                job.future.set_result(result)
            del job  # drop the job's arguments (a frame's pixels) before waiting for the next

    def _next(self, catchup: bool) -> _Job | None:
        """The next job for this thread, or None once shut down with nothing left to run."""
        with self._lock:
            while True:
                if not self._jobs:
                    if self._shutdown:
                        return None
                    (self._late if catchup else self._ready).wait()
                    continue
                waited = time.monotonic() - self._jobs[0].submitted
                if not catchup or waited >= self.catchup_after_s or self._shutdown:
                    if catchup:
                        self.catchup_jobs += 1
                    return self._jobs.popleft()
                self._late.wait(self.catchup_after_s - waited)


__all__ = ["CATCHUP_AFTER_S", "CATCHUP_NICE", "WRITER_NICE", "WriterThreads"]
