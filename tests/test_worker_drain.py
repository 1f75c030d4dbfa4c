"""The fleet worker's drain ends arq's loop even when arq's own cancellation is lost."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from arq.worker import Worker, func

from botrun.bots.worker import engine


async def _noop(ctx: dict[str, Any]) -> None:
    return None


class LosesFirstCancel(Worker):
    """arq's worker whose loop loses the first cancellation, as a Python 3.11
    ``asyncio.wait_for`` inside it can (CPython gh-86296): the stand-in for that race,
    which cannot be produced on demand."""

    cancels = 0

    async def main(self) -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.cancels += 1
                if self.cancels >= 2:
                    raise


def _worker() -> LosesFirstCancel:
    return LosesFirstCancel(functions=[func(_noop, name="noop")], handle_signals=False)


async def _started(worker: Worker) -> None:
    while worker.main_task is None:
        await asyncio.sleep(0.01)


async def test_a_lost_cancellation_after_the_drain_is_made_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # SIGTERM during a call: the call ended, arq cancelled its loop at the end of the
    # drain, the cancellation was lost, and the worker never exited.
    monkeypatch.setattr(engine, "ARQ_STOP_GRACE_S", 0.2)
    worker = _worker()
    stop = asyncio.Event()
    run = asyncio.create_task(engine.run_until_drained(worker, stop))
    await _started(worker)
    stop.set()
    assert worker.main_task is not None
    worker.main_task.cancel()  # what arq does when the drain is over
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(run, 10)
    assert worker.cancels == 2


async def test_no_second_cancellation_before_the_stop_or_while_a_job_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine, "ARQ_STOP_GRACE_S", 0.1)
    worker = _worker()
    stop = asyncio.Event()
    run = asyncio.create_task(engine.run_until_drained(worker, stop))
    await _started(worker)
    job = asyncio.create_task(asyncio.sleep(3600))
    worker.tasks["job-1"] = job  # a call still running
    await asyncio.sleep(1.5)  # no stop yet: arq's loop is left alone
    stop.set()
    await asyncio.sleep(1.5)  # stopping, but a job still runs: left alone too
    assert worker.cancels == 0 and not run.done()
    job.cancel()
    await asyncio.wait({job})
    with pytest.raises(asyncio.CancelledError):  # no job left: stopped
        await asyncio.wait_for(run, 10)
    assert worker.cancels == 2


async def test_cancelling_the_caller_stops_arqs_loop() -> None:
    worker = _worker()
    stop = asyncio.Event()
    run = asyncio.create_task(engine.run_until_drained(worker, stop))
    await _started(worker)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    # the loop lost the first cancellation (the stand-in always does): it was made again
    assert worker.main_task is not None and worker.main_task.done()
    assert worker.cancels == 2
