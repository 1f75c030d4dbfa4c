"""Scenario files (loading, validation messages, shipped examples) and the agent-sim command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from botrun.core.errors import ConfigError
from botrun.core.sim import Simulator, load_scenario
from botrun.core.sim.scenario import builtin_scenarios
from tests.sim_support import RawClient, utterance


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "scenario.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_shipped_scenarios_all_load() -> None:
    shipped = builtin_scenarios()
    assert {"echo", "weather", "flaky_network", "interruptions", "phone"} <= set(shipped)
    for name, path in shipped.items():
        assert load_scenario(path).name == name
    assert load_scenario("weather").turns[0].tool is not None  # bare name = shipped file


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[reply]\ndefualt = 'tone'\n", "unknown key 'reply.defualt' (did you mean 'default'?)"),
        ("[faults]\ndrop_after_s = -1\n", "'faults.drop_after_s': input should be greater than"),
        ("[faults]\nsample_rate = 'maybe'\n", "'faults.sample_rate'"),
        ("[[turns]]\naudio = 'wav'\n", "needs a 'wav' file"),
        ("[[turns]]\nwav = 'missing.wav'\naudio = 'wav'\n", "'turns.0.wav': file not found"),
        ("[reply\n", "invalid TOML"),
        ("[faults]\ndrop_after_s = inf\n", "'faults.drop_after_s': input should be a finite"),
        ("[faults]\ndrop_after_s = 1e300\n", "'faults.drop_after_s': input should be less"),
        ("[faults]\nready_delay_s = nan\n", "'faults.ready_delay_s': input should be a finite"),
        ("[session]\nmax_duration_s = inf\n", "'session.max_duration_s': input should be a fin"),
        (
            "[[turns]]\ntool = {name = 't', arguments = {a = [nan]}}\n",
            "arguments must not hold inf or nan",
        ),
    ],
)
def test_bad_scenario_files_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    assert str(path) in str(info.value) and message in str(info.value)


def _wav_file(path: Path, *, width: int = 2, rate: int = 16000, frames: int = 800) -> Path:
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(b"\x01" * width * frames)
    return path


def _zero_rate(path: Path) -> Path:
    data = bytearray(_wav_file(path).read_bytes())
    data[24:28] = (0).to_bytes(4, "little")  # the fmt chunk's sample rate
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_text("not a WAV file\n") and p, "cannot read WAV file"),
        (lambda p: _wav_file(p, width=1), "only 16-bit PCM WAV files are supported"),
        (lambda p: _wav_file(p, width=3), "only 16-bit PCM WAV files are supported"),
        (lambda p: p.write_bytes(b"RIFF\x00\x00") and p, "cannot read WAV file"),
        (_zero_rate, "sample rate 0 Hz"),
        (lambda p: p.mkdir() or p, "not a file"),
    ],
)
def test_a_wav_reply_the_agent_cannot_play_fails_at_load(
    tmp_path: Path, make: Callable[[Path], object], message: str
) -> None:
    make(tmp_path / "reply.wav")
    path = write(tmp_path, "[[turns]]\nreply = 'x'\naudio = 'wav'\nwav = 'reply.wav'\n")
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    assert str(info.value).startswith(f"{path}: 'turns.0.wav': ")
    assert message in str(info.value)


def test_a_truncated_last_frame_is_dropped_not_fatal(tmp_path: Path) -> None:
    wav = _wav_file(tmp_path / "reply.wav", frames=100)
    wav.write_bytes(wav.read_bytes()[:-1])  # half a sample at the end
    scenario = load_scenario(write(tmp_path, "[[turns]]\naudio = 'wav'\nwav = 'reply.wav'\n"))
    samples, rate = scenario.wav_audio(scenario.turns[0])
    assert (len(samples), rate) == (99, 16000)


def test_missing_scenario_lists_shipped_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"scenario file not found.*weather"):
        load_scenario(tmp_path / "nope.toml")


async def test_scenario_file_drives_the_conversation(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
name = "two-turns"
[reply]
default = "tone"
delay_ms = 0
[[turns]]
user = "Hello agent"
reply = "Hello human"
""",
    )
    async with Simulator(load_scenario(path), speed=8) as sim:
        c = await RawClient.connect(sim.url)
        await c.start(input={"turn_detection": {"min_silence": 300}})
        await c.send_audio(utterance(400, 100, 400))
        assert (await c.wait("transcript.user"))["text"] == "Hello agent"
        assert (await c.wait("transcript.agent"))["text"] == "Hello human"
        await c.send_audio(utterance(400, 100, 400))  # beyond the script: the default reply
        assert (await c.wait("transcript.agent"))["text"] == "I heard you."
        await c.close()


# ---- the command ------------------------------------------------------------------------
def _botrun(*args: str, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "botrun.bots.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )  # type: ignore[call-overload]


def _refused(*args: str, **kwargs: object) -> tuple[int, str, str]:
    """Run a command that must refuse to start: (exit code, stdout, stderr). One that starts
    serving instead is killed (and the test fails)."""
    proc = _botrun(*args, **kwargs)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"botrun {' '.join(args)} started instead of refusing: {err}")
    return proc.returncode, out, err


def test_cli_bad_scenario_exits_2_with_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[faults]\nbogus = 1\n")
    proc = _botrun("agent-sim", "--port", "0", "--scenario", str(path))
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "unknown key 'faults.bogus'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["agent-sim", "demo"])
def test_cli_wav_reply_that_is_not_a_wav_exits_2_with_one_line(
    tmp_path: Path, command: str
) -> None:
    (tmp_path / "fake.wav").write_text("hello\n")
    path = write(tmp_path, '[[turns]]\nuser="hi"\nreply="x"\naudio="wav"\nwav="fake.wav"\n')
    args = ("--port", "0") if command == "agent-sim" else ("--output", str(tmp_path / "o.wav"))
    code, out, err = _refused(command, *args, "--scenario", str(path), cwd=tmp_path)
    assert code == 2, err
    prefix = f"botrun: error: {path}: 'turns.0.wav': {tmp_path / 'fake.wav'}: cannot read WAV"
    assert err.startswith(prefix) and len(err.strip().splitlines()) == 1, err
    assert out == ""


def test_cli_bad_speed_is_a_usage_error() -> None:
    proc = _botrun("agent-sim", "--speed", "0")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "--speed" in err


@pytest.mark.parametrize(
    ("option", "value", "why"),
    [
        ("--speed", "inf", "inf is not a finite number"),
        ("--speed", "nan", "nan is not a finite number"),
        ("--speed", "1e308", "1e+308 is not in 0.01..100"),
        ("--speed", "-1", "-1 is not in 0.01..100"),
        ("--speed", "fast", "'fast' is not a number"),
        ("--drop-after", "nan", "nan is not a finite number"),
        ("--drop-after", "inf", "inf is not a finite number"),
        ("--resume-window", "inf", "inf is not a finite number"),
        ("--resume-window", "-1", "-1 is not in 0..86400"),
        ("--ready-delay", "nan", "nan is not a finite number"),
        ("--go-away-after", "inf", "inf is not a finite number"),
        ("--go-away-after", "nan", "nan is not a finite number"),
        ("--port", "70000", "70000 is not in 0..65535"),
        ("--fail-first", "-1", "-1 is < 0"),
        ("--drop-at-audio", "1.5", "'1.5' is not a whole number"),
    ],
)
def test_cli_numbers_must_be_finite_and_in_range(option: str, value: str, why: str) -> None:
    code, out, err = _refused("agent-sim", "--port", "0", option, value)
    assert code == 2, err
    assert err.strip() == f"botrun: error: {option}: {why}" and out == ""


@pytest.mark.parametrize(
    "kwargs",
    [
        {"speed": float("inf")},
        {"speed": float("nan")},
        {"resume_window_s": float("inf")},
        {"resume_window_s": float("nan")},
        {"go_away_after_s": float("inf")},
    ],
)
def test_simulator_refuses_non_finite_settings(kwargs: dict[str, float]) -> None:
    from botrun.core.errors import UsageError

    with pytest.raises(UsageError, match="is not a finite number"):
        Simulator(**kwargs)  # type: ignore[arg-type]


async def test_cli_serves_prints_url_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    record = tmp_path / "rec"
    proc = _botrun(
        "agent-sim",
        "--port",
        "0",
        "--speed",
        "8",
        "--scenario",
        "echo",
        "--record",
        str(record),
        "--api-key",
        "sk_cli_secret_999",
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("ws://127.0.0.1:")
        c = await RawClient.connect(
            url, additional_headers={"Authorization": "Bearer sk_cli_secret_999"}
        )
        sid = await c.start()
        await c.send_audio(utterance(300, 100, 200))
        await c.send("session.end")
        await c.wait("session.ended")
        await c.close()
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "sk_cli_secret_999" not in err
    assert (record / f"{sid}.wav").stat().st_size == 44 + 600 * 48
    assert (record / f"{sid}.json").is_file()


async def test_a_wav_reply_unreadable_at_play_time_is_one_logged_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A Scenario built in code skips the loader's check: a bad file is then one error line
    (no traceback) and the session goes on."""
    import asyncio

    from botrun.core.sim.scenario import ReplySettings, Scenario, Turn

    (tmp_path / "fake.wav").write_text("not a WAV file\n")
    scenario = Scenario(
        base_dir=tmp_path,
        reply=ReplySettings(delay_ms=0),
        turns=(Turn(reply="x", audio="wav", wav=Path("fake.wav")),),
    )
    caplog.set_level("INFO", logger="botrun.sim")
    async with Simulator(scenario, speed=8) as sim:
        c = await RawClient.connect(sim.url)
        await c.start(input={"turn_detection": {"min_silence": 300}})
        await c.send_audio(utterance(300, 100, 400))
        for _ in range(500):
            failed = [r for r in caplog.records if "cannot build a reply" in r.getMessage()]
            if failed:
                break
            await asyncio.sleep(0.01)
        assert len(failed) == 1 and failed[0].exc_info is None
        assert "fake.wav: cannot read WAV file" in failed[0].getMessage()
        await c.send_audio(utterance(300, 100, 400))  # the next turn is answered (echo)
        assert (await c.wait("reply.done"))["status"] == "completed"
        await c.close()


@pytest.mark.parametrize("where", ["file/sub", "missing/sub", "/proc/botrun-sim-rec"])
def test_cli_record_to_a_folder_it_cannot_make_is_a_usage_error(tmp_path: Path, where: str) -> None:
    (tmp_path / "file").write_text("x\n")
    record = where if where.startswith("/") else str(tmp_path / where)
    code, out, err = _refused("agent-sim", "--port", "0", "--record", record)
    assert code == 2, err
    assert err.startswith(f"botrun: error: cannot record to {record}: ")
    assert len(err.strip().splitlines()) == 1 and out == ""


async def test_a_recording_that_cannot_be_saved_is_one_logged_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import shutil

    record = tmp_path / "rec"
    caplog.set_level("INFO", logger="botrun.sim")
    async with Simulator(speed=8, record_dir=record) as sim:
        assert record.is_dir()  # made at start
        shutil.rmtree(record)
        (tmp_path / "rec").write_text("now a file\n")  # saving into it must fail
        c = await RawClient.connect(sim.url)
        sid = await c.start()
        await c.send("session.end")
        await c.wait("session.ended")
        await c.close()
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].exc_info is None
    assert (
        errors[0]
        .getMessage()
        .startswith(f"simulator: cannot save the recording of {sid} to {record}: ")
    )


def test_cli_announces_a_nameless_scenario_by_its_file_name(tmp_path: Path) -> None:
    path = tmp_path / "front-desk.toml"
    path.write_text("[reply]\ndefault = 'tone'\n", encoding="utf-8")
    assert load_scenario(path).name == "front-desk"
    assert load_scenario(write(tmp_path, "name = 'mine'\n")).name == "mine"  # a name wins
    proc = _botrun("agent-sim", "--port", "0", "--scenario", str(path))
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("ws://")
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert "serving scenario 'front-desk' on ws://" in err, err


def test_toml_files_with_a_utf8_byte_order_mark_load(tmp_path: Path) -> None:
    """Some Windows editors start UTF-8 files with a BOM: scenario and bot config both load
    (core/config.read_toml reads both)."""
    from botrun.core.config import load_config

    scenario = tmp_path / "bom.toml"
    scenario.write_bytes(b"\xef\xbb\xbfname = 'bom'\n[reply]\ndefault = 'tone'\n")
    assert load_scenario(scenario).reply.default == "tone"
    config = tmp_path / "bot.toml"
    config.write_bytes(b"\xef\xbb\xbf[bot]\nname = 'Bommy'\n")
    assert load_config(config).bot.name == "Bommy"
    utf16 = tmp_path / "utf16.toml"
    utf16.write_bytes("name = 'x'\n".encode("utf-16"))
    with pytest.raises(ConfigError, match="not a UTF-8 text file"):
        load_scenario(utf16)
