"""The example bots: their configs load, their tools work, and they run end to end through
the agent client against a loopback server."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from agent_server import AgentServer, Conn

from botrun.bots.examples import scheduler, support
from botrun.core.client import AgentClient
from botrun.core.config import load_config
from botrun.core.protocol import (
    ReplyDone,
    ReplyStarted,
    SessionUpdate,
    ToolCall,
    ToolResult,
    session_payload,
)
from botrun.core.tools import load_tools

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _keys(d: dict[str, Any], prefix: str = "") -> set[str]:
    out = set()
    for k, v in d.items():
        out.add(prefix + k)
        if isinstance(v, dict):
            out |= _keys(v, prefix + k + ".")
    return out


@pytest.mark.parametrize("name", ["support", "scheduler"])
def test_example_configs_load_and_choose_only_their_own_keys(name: str) -> None:
    path = CONFIGS / f"{name}.toml"
    cfg = load_config(path)
    # An example writes what makes it that bot, never a [bridge] key (a written key beats
    # the transport's own default: issue 12 item 2); default.toml documents the rest.
    example = tomllib.loads(path.read_text())
    assert "bridge" not in example
    assert {"bot.name", "agent.system_prompt", "agent.tools"} <= _keys(example)
    registry = load_tools(cfg.agent.tools, [], timeout_s=cfg.agent.tool_timeout_s)
    assert len(registry) == len(cfg.agent.tools) >= 1
    session = session_payload(cfg.agent, registry.specs)
    for t in session["tools"]:
        assert t["type"] == "function" and t["description"] and t["parameters"]["required"]


def test_lookup_order_found_normalised_and_missing() -> None:
    found = support.lookup_order(" a-1001 ")
    assert found["found"] and found["order_id"] == "A1001" and found["status"] == "shipped"
    missing = support.lookup_order("Z9")
    assert missing == {"found": False, "order_id": "Z9", "message": missing["message"]}
    assert "A1001" in missing["message"]


MONDAY = dt.date(2026, 11, 23)


def make_scheduler() -> scheduler.Scheduler:
    return scheduler.Scheduler(today=lambda: MONDAY)


def test_check_slots_follows_opening_hours() -> None:
    s = make_scheduler()
    monday = s.check_slots("today")
    assert monday["weekday"] == "monday"
    assert monday["free"][:2] == ["09:00", "09:30"] and monday["free"][-1] == "16:30"
    assert "12:00" not in monday["free"] and "12:30" not in monday["free"]  # lunch
    assert s.check_slots("2026-11-25")["free"][-1] == "11:30"  # wednesday: 9-13 less lunch
    sunday = s.check_slots("2026-11-29")
    assert sunday["free"] == [] and "closed" in sunday["note"]


def test_book_takes_a_slot_once() -> None:
    s = make_scheduler()
    ok = s.book("tomorrow", "9:30", "Ana Silva")
    assert ok == {
        "booked": True,
        "confirmation": "BK-1001",
        "date": "2026-11-24",
        "time": "09:30",
        "name": "Ana Silva",
    }
    again = s.book("2026-11-24", "09:30", "Ben")
    assert not again["booked"] and "taken" in again["reason"] and "09:30" not in again["free"]
    assert "09:30" not in s.check_slots("tomorrow")["free"]
    closed = s.book("2026-11-24", "12:00", "Ben")
    assert not closed["booked"] and "not a bookable time" in closed["reason"]


@pytest.mark.parametrize(
    ("date", "msg"),
    [
        ("next friday", "not YYYY-MM-DD"),
        ("2026-11-01", "in the past"),
        ("2027-06-01", "at most 60 days"),
    ],
)
def test_bad_dates_raise_for_the_agent(date: str, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        make_scheduler().check_slots(date)


async def test_scheduler_tools_report_errors_as_results() -> None:
    registry = load_tools(["botrun.bots.examples.scheduler:book"])
    out = json.loads(await registry.call("book", {"date": "someday", "time": "09:00", "name": "X"}))
    assert "not YYYY-MM-DD" in out["error"]


async def test_support_bot_end_to_end_through_the_client() -> None:
    cfg = load_config(CONFIGS / "support.toml")
    registry = load_tools(cfg.agent.tools, [], timeout_s=cfg.agent.tool_timeout_s)
    results: list[dict[str, Any]] = []

    async def script(conn: Conn) -> None:
        first = await conn.ready("s1")
        assert isinstance(first, SessionUpdate)
        assert first.session["tools"][0]["name"] == "lookup_order"
        assert first.session["greeting"] == cfg.agent.greeting
        await conn.send(ReplyStarted("r1"))
        await conn.send(ToolCall("c1", "lookup_order", {"order_id": "A1002"}))
        await conn.send(ReplyDone("r1"))
        res = await conn.next()
        assert isinstance(res, ToolResult) and res.call_id == "c1"
        results.append(json.loads(res.result))

    async with AgentServer([script]) as srv:
        client = AgentClient(srv.url, session_payload(cfg.agent, registry.specs), tools=registry)
        await client.start()

        async def wait() -> None:
            while not results:
                await asyncio.sleep(0.005)

        await asyncio.wait_for(wait(), 5)
        await client.close()
    assert results[0]["status"] == "processing" and results[0]["customer"] == "Jonas Weber"


async def test_scheduler_bot_end_to_end_through_the_client() -> None:
    cfg = load_config(CONFIGS / "scheduler.toml")
    registry = load_tools(cfg.agent.tools, [], timeout_s=cfg.agent.tool_timeout_s)
    day = dt.date.today() + dt.timedelta(days=1)
    while day.weekday() >= 4:  # a monday-thursday with morning hours
        day += dt.timedelta(days=1)
    got: list[dict[str, Any]] = []

    async def script(conn: Conn) -> None:
        await conn.ready("s1")
        await conn.send(ReplyStarted("r1"))
        await conn.send(ToolCall("c1", "check_slots", {"date": day.isoformat()}))
        await conn.send(ReplyDone("r1"))
        free = json.loads((await conn.next()).result)["free"]  # type: ignore[union-attr]
        await conn.send(ReplyStarted("r2"))
        await conn.send(
            ToolCall(
                "c2", "book", {"date": day.isoformat(), "time": free[-1], "name": "Test Caller"}
            )
        )
        await conn.send(ReplyDone("r2"))
        got.append(json.loads((await conn.next()).result))  # type: ignore[union-attr]

    async with AgentServer([script]) as srv:
        client = AgentClient(srv.url, session_payload(cfg.agent, registry.specs), tools=registry)
        await client.start()

        async def wait() -> None:
            while not got:
                await asyncio.sleep(0.005)

        await asyncio.wait_for(wait(), 5)
        await client.close()
    assert got[0]["booked"] is True and got[0]["confirmation"].startswith("BK-")
