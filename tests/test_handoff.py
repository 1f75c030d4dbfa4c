"""core/handoff.py: items from foreign threads reach the loop in order, batched on the loop's
clock; threads wake the loop only when that clock has stopped."""

from __future__ import annotations

import asyncio
import threading

from botrun.core.handoff import IDLE_TICKS, Handoff


async def wait_until(cond, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async def poll() -> None:
        while not cond():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout)


async def test_items_put_together_arrive_in_one_batch_per_consumer_in_order() -> None:
    loop = asyncio.get_running_loop()
    a: list[list[int]] = []
    b: list[list[int]] = []
    ha: Handoff[int] = Handoff(loop, a.append)
    hb: Handoff[int] = Handoff(loop, b.append)
    for i in range(50):
        ha.put(i)
        hb.put(100 + i)
    assert ha.pending == 50 and hb.pending == 50
    await wait_until(lambda: a and b)
    assert a == [list(range(50))]
    assert b == [list(range(100, 150))]
    assert ha.pending == 0


async def test_puts_while_the_clock_runs_do_not_wake_the_loop() -> None:
    loop = asyncio.get_running_loop()
    got: list[int] = []
    h: Handoff[int] = Handoff(loop, got.extend)
    h.put(0)
    await wait_until(lambda: got == [0])
    woken = h.wakeups
    for i in range(1, 6):  # the clock is running: these ride on its ticks
        h.put(i)
        await wait_until(lambda i=i: got[-1] == i)
    assert h.wakeups == woken
    assert got == list(range(6))


async def test_the_clock_stops_when_idle_and_the_next_put_restarts_it() -> None:
    loop = asyncio.get_running_loop()
    got: list[str] = []
    h: Handoff[str] = Handoff(loop, got.extend)
    inbox = h._inbox
    h.put("a")
    await wait_until(lambda: got == ["a"])
    await wait_until(lambda: not inbox.ticking)  # IDLE_TICKS empty periods later
    assert inbox.idle == 0 and IDLE_TICKS > 0
    woken = h.wakeups
    h.put("b")
    assert h.wakeups == woken + 1
    await wait_until(lambda: got == ["a", "b"])


async def test_puts_from_threads_keep_order_and_lose_nothing() -> None:
    loop = asyncio.get_running_loop()
    got: list[tuple[int, int]] = []
    done = asyncio.Event()
    per_thread = 3000

    def consume(items: list[tuple[int, int]]) -> None:
        got.extend(items)
        if len(got) == 2 * per_thread:
            done.set()

    h: Handoff[tuple[int, int]] = Handoff(loop, consume)

    def producer(k: int) -> None:
        for i in range(per_thread):
            h.put((k, i))

    threads = [threading.Thread(target=producer, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    await asyncio.wait_for(done.wait(), 30)
    for t in threads:
        t.join()
    for k in range(2):  # each thread's items in the order it put them
        assert [i for kk, i in got if kk == k] == list(range(per_thread))


async def test_a_failing_consumer_is_logged_and_others_still_get_theirs(caplog) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    good: list[int] = []

    def bad(items: list[int]) -> None:
        raise ValueError("consumer bug")

    hb: Handoff[int] = Handoff(loop, bad)
    hg: Handoff[int] = Handoff(loop, good.extend)
    hb.put(1)
    hg.put(2)
    await wait_until(lambda: good == [2])
    hg.put(3)  # the clock survived the failure
    await wait_until(lambda: good == [2, 3])
    assert "consumer bug" in caplog.text


def test_put_after_the_loop_closed_is_dropped_quietly() -> None:
    loop = asyncio.new_event_loop()
    h: Handoff[int] = Handoff(loop, lambda items: None)
    loop.close()
    h.put(1)  # no exception: the call is over
    assert h.pending == 1


def test_a_finished_loop_is_not_kept_alive_by_its_inbox() -> None:
    import gc
    import weakref

    loop = asyncio.new_event_loop()
    Handoff(loop, lambda items: None).put(1)
    ref = weakref.ref(loop)
    loop.close()
    del loop
    gc.collect()
    assert ref() is None
