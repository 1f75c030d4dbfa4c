"""Hardening: what a broken tool can still do (issue 13, items 1-5).

However a tool misbehaves (hangs, raises SystemExit or KeyboardInterrupt, returns NaN or
10 MB), the agent gets a ``tool.result`` it can read, the call goes on and the process exits
when the call is over. And a config line can only name functions their author marked as tools.

The process-level cases run the real ``botrun wav`` command against the simulator on loopback,
with the tools in a module on ``PYTHONPATH``; the wire-level cases use the scripted agent
server (tests/agent_server.py) and botrun's real agent client."""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from agent_server import AgentServer, Conn
from helpers_cli import run_botrun
from speech import read_wav, speak

from botrun.core.client import AgentClient
from botrun.core.config import AgentConfig, load_config
from botrun.core.errors import ConfigError
from botrun.core.protocol import ReplyDone, ReplyStarted, ToolCall, ToolResult, session_payload
from botrun.core.sim import Simulator
from botrun.core.sim.scenario import scenario_from_dict
from botrun.core.tools import ToolRegistry, load_tools, make_spec, tool

EXIT_WAIT_S = 60.0  # generous: the call itself takes a few seconds

HOSTILE_TOOLS = '''
import asyncio
import sys
import threading

from botrun.core.tools import tool


@tool
def hang_forever() -> str:
    """Never returns."""
    threading.Event().wait()
    return "never"


@tool
def exit_sync() -> str:
    """Calls sys.exit in its worker thread."""
    sys.exit(3)


@tool
async def exit_async() -> str:
    """Calls sys.exit on the event loop."""
    await asyncio.sleep(0)
    sys.exit(4)


@tool
async def interrupt_async() -> str:
    """Raises KeyboardInterrupt on the event loop."""
    await asyncio.sleep(0)
    raise KeyboardInterrupt


def not_marked() -> str:
    """A plain function nobody declared a tool."""
    return "ran"
'''


@pytest.fixture(scope="module")
def question(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("speech") / "question.wav"
    speak("Can you check that for me, please?", path)
    return path


def _bot_files(tmp_path: Path, tools: list[str], timeout_s: float = 5.0) -> Path:
    (tmp_path / "hostile_tools.py").write_text(HOSTILE_TOOLS)
    cfg = tmp_path / "bot.toml"
    cfg.write_text(
        textwrap.dedent(
            f"""\
            [agent]
            greeting = ""
            tools = {json.dumps(tools)}
            tool_timeout_s = {timeout_s}

            [bridge]
            leave_grace_s = 1.0
            """
        )
    )
    return cfg


@dataclass
class BotRun:
    returncode: int | None
    stdout: str
    stderr: str
    tool_results: list[dict[str, Any]]
    recording: Any


async def _run_bot(tmp_path: Path, question: Path, tool_name: str, timeout_s: float) -> BotRun:
    """``botrun wav`` with one hostile tool that the simulator calls on the first turn; waits
    (generously) for the process to exit and kills it if it does not."""
    cfg = _bot_files(tmp_path, [f"hostile_tools:{tool_name}"], timeout_s)
    scenario = scenario_from_dict(
        {
            "reply": {"ms_per_char": 5},
            "turns": [{"audio": "tone", "tool": {"name": tool_name, "arguments": {}}}],
        }
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    async with Simulator(scenario) as sim:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "botrun.bots.cli",
            "wav",
            "--input",
            str(question),
            "--output",
            str(tmp_path / "o.wav"),
            "--agent-url",
            sim.url,
            "--config",
            str(cfg),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=tmp_path,
            env=env,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), EXIT_WAIT_S)
        except TimeoutError:
            proc.kill()
            out, err = await proc.communicate()
            pytest.fail(
                f"botrun still running {EXIT_WAIT_S:.0f} s after starting a few-second call "
                f"(tool {tool_name}); stderr:\n{err.decode()[-2000:]}"
            )
        results = list(sim.session().tool_results)
    recording = None
    if (tmp_path / "o.wav").exists() and (tmp_path / "o.wav").stat().st_size > 44:
        recording, _ = read_wav(tmp_path / "o.wav")
    return BotRun(proc.returncode, out.decode(), err.decode(), results, recording)


# -- item 1: a hanging sync tool does not keep the process alive --------------------------------


async def test_hanging_sync_tool_does_not_keep_the_process_alive(
    tmp_path: Path, question: Path
) -> None:
    run = await _run_bot(tmp_path, question, "hang_forever", timeout_s=1.0)
    assert run.returncode == 0, run.stderr
    (result,) = run.tool_results
    assert json.loads(result["result"]) == {"error": "tool 'hang_forever' timed out after 1 s"}
    assert "Traceback" not in run.stderr


def test_sync_tools_run_in_daemon_threads() -> None:
    seen: list[bool] = []

    def probe() -> bool:
        import threading

        seen.append(threading.current_thread().daemon)
        return True

    reg = ToolRegistry([make_spec(probe)])
    assert json.loads(asyncio.run(reg.call("probe", {}))) is True
    assert seen == [True]


# -- item 2: SystemExit / KeyboardInterrupt from a tool become its error result ---------------


@pytest.mark.parametrize(
    ("tool_name", "raised"),
    [
        ("exit_sync", "SystemExit: 3"),
        ("exit_async", "SystemExit: 4"),
        ("interrupt_async", "KeyboardInterrupt"),
    ],
)
async def test_tool_raising_base_exception_does_not_end_the_bot(
    tmp_path: Path, question: Path, tool_name: str, raised: str
) -> None:
    run = await _run_bot(tmp_path, question, tool_name, timeout_s=5.0)
    assert run.returncode == 0, run.stderr
    (result,) = run.tool_results
    assert json.loads(result["result"])["error"].startswith(f"tool '{tool_name}' failed: {raised}")
    # the call went on: the agent's answer to the result was recorded, and the summary printed
    assert run.recording is not None and abs(run.recording).max() > 1000
    assert "agent repl" in run.stdout  # (1 agent reply, 2 agent replies)
    assert "interrupted" not in run.stderr.lower()
    assert f"tool {tool_name}(" in run.stdout and "failed" in run.stdout
    # new-user probe item 1: one WARNING line naming the tool and the error, no traceback at
    # the default log level
    assert "Traceback" not in run.stderr, run.stderr
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert (
        len(lines) == 1 and f"WARNING botrun.tools: tool {tool_name} failed: {raised}" in (lines[0])
    ), run.stderr


class _CustomBase(BaseException):
    pass


@pytest.mark.parametrize(
    "exc",
    [SystemExit(2), KeyboardInterrupt(), GeneratorExit(), _CustomBase("odd")],
    ids=lambda e: type(e).__name__,
)
async def test_every_base_exception_becomes_an_error_result(exc: BaseException) -> None:
    def sync_tool() -> str:
        raise exc

    async def async_tool() -> str:
        await asyncio.sleep(0)
        raise exc

    reg = ToolRegistry([make_spec(sync_tool), make_spec(async_tool)])
    for name in ("sync_tool", "async_tool"):
        try:
            result = json.loads(await reg.call(name, {}))
        except BaseException as escaped:  # the bug this test catches
            pytest.fail(f"{name}: {escaped!r} escaped the registry")
        assert result["error"].startswith(f"tool '{name}' failed: {type(exc).__name__}")
    assert reg.stats.errors == 2
    outcome = await reg.run("sync_tool", {})
    assert outcome.error is not None and json.loads(outcome.result) == {"error": outcome.error}


async def test_async_tool_that_ignores_cancellation_cannot_hold_the_call() -> None:
    async def stubborn() -> str:
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue  # ignores being cancelled

    reg = ToolRegistry([make_spec(stubborn, timeout_s=0.05)])
    result = await asyncio.wait_for(reg.call("stubborn", {}), 30)
    assert json.loads(result) == {"error": "tool 'stubborn' timed out after 0.05 s"}
    for task in asyncio.all_tasks():  # let the test loop close
        if task is not asyncio.current_task() and "_guarded" in repr(task.get_coro()):
            task.get_coro().close()  # type: ignore[union-attr]


# -- item 3: results that would break the wire ----------------------------------------------------


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, {"temp": -math.inf}, [1.0, math.nan]], ids=repr
)
async def test_non_finite_numbers_are_a_clear_error(value: Any) -> None:
    def weird() -> Any:
        return value

    reg = ToolRegistry([make_spec(weird)])
    result = await reg.call("weird", {})
    payload = json.loads(result, parse_constant=lambda c: pytest.fail(f"{c} sent to the agent"))
    message = "tool 'weird' returned a number JSON cannot carry (NaN or infinity)"
    assert payload == {"error": message}
    assert (await reg.run("weird", {})).error == message


@pytest.mark.parametrize("limit", [1024, 16 * 1024])
@pytest.mark.parametrize(
    "value",
    ["x" * 10_000_000, {"rows": [{"name": 'quote " and ü', "n": i} for i in range(100_000)]}],
    ids=["10MB-string", "big-object"],
)
async def test_big_results_are_cut_to_the_limit_with_a_note(value: Any, limit: int) -> None:
    def huge() -> Any:
        return value

    reg = ToolRegistry([make_spec(huge)], max_result_bytes=limit)
    result = await reg.call("huge", {})
    size = len(result.encode())
    assert size <= limit, f"{size} bytes sent"  # (a message: no introspection of 10 MB)
    payload = json.loads(result)
    assert payload["truncated"] is True
    assert "more than the" in payload["note"] and str(limit) in payload["note"]
    assert json.dumps(value, ensure_ascii=False).startswith(payload["partial"])
    assert len(payload["partial"]) > limit // 4
    outcome = await reg.run("huge", {})
    assert outcome.truncated and outcome.error is None and reg.stats.truncated == 2


async def test_small_results_are_untouched() -> None:
    def small() -> dict[str, str]:
        return {"a": "b"}

    reg = ToolRegistry([make_spec(small)], max_result_bytes=1024)
    assert await reg.call("small", {}) == '{"a": "b"}'


def test_result_limit_is_configurable(tmp_path: Path) -> None:
    path = tmp_path / "bot.toml"
    path.write_text("[agent]\ntool_result_max_bytes = 4096\n")
    assert load_config(path).agent.tool_result_max_bytes == 4096
    assert AgentConfig().tool_result_max_bytes == 16 * 1024
    path.write_text("[agent]\ntool_result_max_bytes = 10\n")
    with pytest.raises(ConfigError, match="tool_result_max_bytes"):
        load_config(path)


async def _serve_one_tool_call(
    registry: ToolRegistry, calls: list[dict[str, Any]]
) -> list[ToolResult | Any]:
    """The real agent client against a scripted agent that sends ``calls`` (raw tool.call
    messages) in one reply; returns the messages the client answered with."""
    got: list[Any] = []

    async def script(conn: Conn) -> None:
        await conn.ready("s1")
        await conn.send(ReplyStarted("r1"))
        for call in calls:
            await conn.send({"type": "tool.call", **call})
        await conn.send(ReplyDone("r1"))
        for _ in calls:
            got.append(await conn.next(timeout=30))

    async with AgentServer([script]) as srv:
        client = AgentClient(
            srv.url, session_payload(AgentConfig(), registry.specs), tools=registry
        )
        await client.start()

        async def wait() -> None:
            while len(got) < len(calls):
                await asyncio.sleep(0.01)

        try:
            await asyncio.wait_for(wait(), 30)
        finally:
            await client.close()
    return got


async def test_a_10mb_result_reaches_the_agent_cut_to_size() -> None:
    def dump() -> str:
        return "y" * 10_000_000

    registry = ToolRegistry([make_spec(dump)])
    (res,) = await _serve_one_tool_call(
        registry, [{"call_id": "c1", "name": "dump", "arguments": {}}]
    )
    assert isinstance(res, ToolResult) and res.call_id == "c1"
    size = len(res.result.encode())
    assert size <= registry.max_result_bytes, f"{size} bytes sent"
    assert json.loads(res.result)["truncated"] is True


# -- item 4: tool.call arguments that are not an object -------------------------------------------


async def test_tool_call_with_non_object_arguments_gets_an_error_result() -> None:
    ran: list[Any] = []

    def echo(text: str = "") -> str:
        ran.append(text)
        return text

    registry = ToolRegistry([make_spec(echo)])
    bad = {"c1": [1, 2], "c2": "not json at all", "c3": 5, "c4": "[1, 2]"}
    calls = [{"call_id": cid, "name": "echo", "arguments": a} for cid, a in bad.items()]
    calls.append({"call_id": "c5", "name": "echo", "arguments": {"text": "fine"}})
    results = await _serve_one_tool_call(registry, calls)
    by_id = {r.call_id: json.loads(r.result) for r in results if isinstance(r, ToolResult)}
    assert set(by_id) == {"c1", "c2", "c3", "c4", "c5"}
    for cid in bad:
        assert by_id[cid]["error"].startswith("tool 'echo': field 'arguments'"), by_id[cid]
    assert by_id["c5"] == "fine"
    assert ran == ["fine"]  # the tool never ran on bad arguments


def test_decoder_keeps_the_call_id_of_a_call_with_bad_arguments() -> None:
    from botrun.core.protocol import decode

    ev = decode(json.dumps({"type": "tool.call", "call_id": "c9", "name": "x", "arguments": 3}))
    assert isinstance(ev, ToolCall)
    assert ev.call_id == "c9" and ev.arguments == {}
    assert ev.bad_arguments == "field 'arguments' must be an object, got int"
    raw = {"type": "tool.call", "call_id": "c8", "name": "x", "arguments": "{bad"}
    ev = decode(json.dumps(raw))
    assert isinstance(ev, ToolCall) and ev.bad_arguments is not None
    assert "is a string that is not JSON" in ev.bad_arguments


# -- item 5: a config names only functions marked as tools -------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("os:system", "'os' is a standard-library module"),
        ("subprocess:getoutput", "'subprocess' is a standard-library module"),
        ("os.path:join", "'os.path' is a standard-library module"),
        ("builtins:eval", "'builtins' is a standard-library module"),
        ("hostile_tools:not_marked", "'not_marked' is not marked as a tool"),
        ("json:loads", "standard-library module"),
    ],
)
def test_config_can_only_name_marked_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str, expected: str
) -> None:
    (tmp_path / "hostile_tools.py").write_text(HOSTILE_TOOLS)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError) as info:
        load_tools([path])
    assert expected in str(info.value)
    assert "@tool" in str(info.value)


def test_marked_tools_and_plugin_tools_still_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "hostile_tools.py").write_text(HOSTILE_TOOLS)
    monkeypatch.syspath_prepend(str(tmp_path))

    def plugin_fn(q: str) -> str:
        """A plugin author offers this one through the botrun_tools hook."""
        return q

    reg = load_tools(["hostile_tools:exit_sync"], [plugin_fn])
    assert reg.names == ["exit_sync", "plugin_fn"]


def test_tool_decorator_is_what_the_examples_use() -> None:
    from botrun.bots.examples import scheduler, support

    for fn in (support.lookup_order, scheduler.check_slots, scheduler.book):
        assert getattr(fn, "__botrun_tool__", None) is not None
    assert tool is not None


def test_cli_refuses_os_system_with_a_config_error(tmp_path: Path, question: Path) -> None:
    cfg = _bot_files(tmp_path, ["os:system"])
    res = run_botrun(
        "wav",
        "--input",
        str(question),
        "--output",
        str(tmp_path / "o.wav"),
        "--agent-url",
        "ws://127.0.0.1:9/",
        "--config",
        str(cfg),
        cwd=tmp_path,
    )
    assert res.returncode == 2, res.stderr
    assert "tool 'os:system'" in res.stderr and "standard-library module" in res.stderr
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
