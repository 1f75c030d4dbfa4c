"""Tool calls as the user sees them (issue 12 item 6): the console shows each call's real
outcome, the TOOL_CALL event carries result/error/duration, and ``--transcript`` holds one
``role: "tool"`` line per call, with secrets masked like in the logs.

Real components: espeak-ng speech through the WAV transport, the bridge, botrun's agent client
and the simulator on loopback, which calls the tool the scenario names."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from speech import speak
from test_bridge_e2e import config, run_wav_call

from botrun.core import events as ev
from botrun.core.console import Console
from botrun.core.secrets import register_secret
from botrun.core.sim.scenario import scenario_from_dict
from botrun.core.tools import ToolRegistry, tool

SECRET = "sk-tool-report-secret-4711"


@tool
def lookup_order(order_id: str) -> dict[str, Any]:
    """Look up an order.

    Args:
        order_id: The order number.
    """
    if order_id.startswith("bad"):
        raise RuntimeError(f"order database refused key {SECRET}")
    return {"found": True, "order_id": order_id, "note": f"token {SECRET}"}


@pytest.fixture(scope="module")
def question(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("speech") / "question.wav"
    speak("Where is my order, please?", path)
    return path


async def _call_with_tool(tmp_path: Path, question: Path, order_id: str) -> tuple[Any, ...]:
    register_secret(SECRET)
    scenario = scenario_from_dict(
        {
            "reply": {"ms_per_char": 5, "tool_result": "Done."},
            "turns": [
                {
                    "user": "Where is my order?",
                    "audio": "tone",
                    "tool": {"name": "lookup_order", "arguments": {"order_id": order_id}},
                }
            ],
        }
    )
    transcript = tmp_path / "t.jsonl"
    out = io.StringIO()
    console = Console(out, tty=False)
    summary, _wav, sim, rec, _ = await run_wav_call(
        tmp_path,
        [(question, 0.0, "Maria")],
        config(),
        scenario,
        transcript=transcript,
        tools=ToolRegistry([lookup_order.__botrun_tool__], timeout_s=5),  # type: ignore[attr-defined]
        observers=[console],
    )
    assert summary.error is None
    lines = [json.loads(x) for x in transcript.read_text().splitlines()]
    return rec.of(ev.TOOL_CALL), out.getvalue(), lines, transcript.read_text(), sim.session()


async def test_successful_tool_call_is_reported_with_its_result(
    tmp_path: Path, question: Path
) -> None:
    order_id = f"A1-{SECRET}"  # the agent passes a secret along: the transcript masks it
    calls, console, lines, raw, session = await _call_with_tool(tmp_path, question, order_id)
    (sent,) = session.tool_results
    (call,) = calls
    assert call.data["name"] == "lookup_order"
    assert call.data["arguments"] == {"order_id": order_id}
    assert call.data["error"] is None
    assert call.data["result"] == sent["result"]  # what the agent got
    assert call.data["duration_ms"] >= 0
    assert call.data["call_id"] == session.tool_calls[0]["call_id"]
    (tool_line,) = [x for x in lines if x["role"] == "tool"]
    assert tool_line["name"] == "lookup_order"
    assert tool_line["call_id"] == call.data["call_id"]
    assert tool_line["arguments"] == {"order_id": "A1-***"}
    assert json.loads(tool_line["result"]) == {
        "found": True,
        "order_id": "A1-***",
        "note": "token ***",
    }
    assert tool_line["error"] is None and tool_line["duration_ms"] >= 0
    assert SECRET not in raw and SECRET not in console
    assert "tool lookup_order(" in console and " -> " in console and " failed" not in console


async def test_failing_tool_call_is_reported_as_failed(tmp_path: Path, question: Path) -> None:
    calls, console, lines, raw, session = await _call_with_tool(tmp_path, question, "bad-1")
    (call,) = calls
    assert call.data["error"].startswith("tool 'lookup_order' failed: RuntimeError: order database")
    assert json.loads(call.data["result"]) == {"error": call.data["error"]}
    assert json.loads(session.tool_results[0]["result"]) == {"error": call.data["error"]}
    (tool_line,) = [x for x in lines if x["role"] == "tool"]
    assert tool_line["error"] == call.data["error"]
    assert "***" in tool_line["error"]
    assert SECRET not in raw and SECRET not in console
    (console_line,) = [x for x in console.splitlines() if "tool lookup_order(" in x]
    assert " failed (" in console_line and "RuntimeError" in console_line
    assert " -> " not in console_line
