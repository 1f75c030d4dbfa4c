"""The files botrun writes (``--output``, ``--transcript``, ``--record DIR``, ``botrun report
-o``) when they cannot be written or would overwrite each other (files probe, items 1-6): one
line, a non-zero exit, never a traceback, never a recording claimed that is not on disk."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_cli import run_botrun

from botrun.bots.demo import sample_path
from botrun.core.recording import CallRecorder
from botrun.core.sim import Simulator

UNREACHABLE = "ws://127.0.0.1:9/"  # refused before anything connects: never reached


def _botrun(
    *args: str, cwd: Path, file_size_limit: int | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`botrun ARGS` as a user runs it; with ``file_size_limit`` (bytes) a regular file
    cannot grow past it (RLIMIT_FSIZE: the write fails with EFBIG, as on a full disk)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # (the write fails instead of a kill)
        assert file_size_limit is not None
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return subprocess.run(
        [sys.executable, "-m", "botrun.bots.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit if file_size_limit is not None else None,
    )


def _no_traceback(res: subprocess.CompletedProcess[str]) -> None:
    for noise in ("Traceback", "Exception ignored", "Wave_write"):
        assert noise not in res.stderr, res.stderr


# ------------------------------------------------------------------ item 1: --record
async def test_a_record_file_that_cannot_be_opened_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "rz" / "bot.wav").mkdir(parents=True)
    async with Simulator(speed=8.0) as sim:
        res = await asyncio.to_thread(
            _botrun, "wav", "--input", str(sample_path()), "--output", "o.wav",
            "--record", "rz", "--speed", "8", "--agent-url", sim.url, cwd=tmp_path,
        )  # fmt: skip
        assert not sim.sessions, "the call ran with a recording that cannot be written"
    _no_traceback(res)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines() == [
        "botrun: error: cannot record to rz/bot.wav: Is a directory"
    ]
    assert "recorded" not in res.stdout


async def test_a_recording_that_fails_mid_call_stops_once_and_is_not_claimed(
    tmp_path: Path,
) -> None:
    async with Simulator(speed=8.0) as sim:
        res = await asyncio.to_thread(
            _botrun, "wav", "--input", str(sample_path()), "--output", "/dev/null",
            "--record", "rec", "--speed", "8", "--agent-url", sim.url,
            cwd=tmp_path, file_size_limit=30000,  # mix.wav: 24 kHz, past it in 0.7 s
        )  # fmt: skip
    _no_traceback(res)
    assert res.returncode == 1, res.stdout + res.stderr
    failed = [ln for ln in res.stderr.splitlines() if "failed" in ln]
    assert len(failed) == 2, res.stderr  # logged once when it fails, and the command's error
    assert "botrun.recording: recording to rec failed" in failed[0]
    assert "File too large" in failed[0]
    assert res.stderr.strip().splitlines()[-1] == (
        "botrun: error: the recording to rec failed (rec: File too large)"
    )
    assert "call recorded" not in res.stdout, res.stdout
    assert (tmp_path / "rec" / "mix.wav").stat().st_size <= 30000


# ------------------------------------------------------------------ item 2: --output
@pytest.mark.parametrize("output", ["/dev/full", "/proc/version", "/proc/x.wav"])
async def test_a_bot_wav_that_cannot_be_written_is_one_line_and_fails(
    tmp_path: Path, output: str
) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this machine")
    before = Path("/proc/version").read_text()
    async with Simulator(speed=8.0) as sim:
        res = await asyncio.to_thread(
            _botrun, "wav", "--input", str(sample_path()), "--output", output,
            "--speed", "8", "--agent-url", sim.url, cwd=tmp_path,
        )  # fmt: skip
    _no_traceback(res)
    assert res.returncode in (1, 2), res.stdout + res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith(f"botrun: error: cannot write {output}")
    assert "bot voice recorded" not in res.stdout and "no bot audio" not in res.stdout
    assert Path("/proc/version").read_text() == before


def test_demo_with_a_bot_wav_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    res = _botrun("demo", "--output", "/proc/x.wav", cwd=tmp_path)
    _no_traceback(res)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("botrun: error: cannot write /proc/x.wav")


async def test_a_bot_wav_that_fails_mid_call_ends_it_with_one_line(tmp_path: Path) -> None:
    async with Simulator(speed=8.0) as sim:
        res = await asyncio.to_thread(
            _botrun, "wav", "--input", str(sample_path()), "--output", "o.wav",
            "--speed", "8", "--agent-url", sim.url,
            cwd=tmp_path, file_size_limit=20000,  # 16 kHz: past it in 0.7 s of the bot's voice
        )  # fmt: skip
    _no_traceback(res)
    assert res.returncode == 1, res.stdout + res.stderr
    assert res.stderr.strip().splitlines()[-1] == (
        "botrun: error: cannot write o.wav: File too large"
    )
    assert sum("cannot write o.wav" in ln for ln in res.stderr.splitlines()) == 2  # log + error
    assert "bot voice recorded" not in res.stdout and "no bot audio" not in res.stdout


# ------------------------------------------------------------------ item 3: report -o
def _recording(directory: Path) -> Path:
    rec = CallRecorder(directory, transport="wav")
    rec.heard(b"\1\0" * 2400, 24000)
    rec.spoken(b"\2\0" * 1600, 16000)
    rec.close("done")
    return directory


@pytest.mark.parametrize("name", ["mix.wav", "bot.wav", "events.jsonl"])
def test_report_refuses_to_overwrite_the_recording_it_reads(tmp_path: Path, name: str) -> None:
    rec = _recording(tmp_path / "rr")
    before = {p.name: p.read_bytes() for p in rec.iterdir()}
    res = run_botrun("report", "rr", "-o", f"rr/{name}", cwd=tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.strip().splitlines() == [
        f"botrun: error: --output rr/{name} is the recording's {name}: botrun would overwrite "
        "it (write the report to another file)"
    ]
    assert {p.name: p.read_bytes() for p in rec.iterdir()} == before


# ------------------------------------------------------------------ item 4: collisions
@pytest.mark.parametrize(
    ("flags", "first", "second"),
    [
        (["--output", "same.out", "--transcript", "same.out"], "--output same.out",
         "--transcript same.out"),
        (["--output", "rq2/bot.wav", "--record", "rq2"], "--output rq2/bot.wav",
         "--record's bot.wav rq2/bot.wav"),
        (["--output", "o.wav", "--record", "rq2", "--transcript", "rq2/events.jsonl"],
         "--transcript rq2/events.jsonl", "--record's events.jsonl rq2/events.jsonl"),
        (["--output", "o.wav", "--record", "rq2", "--transcript", "./rq2"],
         "--transcript rq2", "--record rq2"),
        (["--output", "rq2/report.html", "--record", "rq2"], "--output rq2/report.html",
         "--record's report.html rq2/report.html"),
    ],
)  # fmt: skip
def test_outputs_that_are_one_file_are_refused(
    tmp_path: Path, flags: list[str], first: str, second: str
) -> None:
    wav = "in.wav"
    (tmp_path / wav).write_bytes(sample_path().read_bytes())
    res = run_botrun("wav", "--input", wav, *flags, "--agent-url", UNREACHABLE, cwd=tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.strip().splitlines() == [
        f"botrun: error: {first} and {second} are the same file: one would overwrite the "
        "other (write them to different files)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [wav]  # nothing written


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (["--output", "same.out", "--transcript", "same.out"],
         "--output same.out and --transcript same.out are the same file: one would overwrite "
         "the other (write them to different files)"),
        (["--output", "./same.out", "--transcript", "same.out"],
         "--output same.out and --transcript same.out are the same file: one would overwrite "
         "the other (write them to different files)"),
        (["--transcript", "demo-output.wav"],  # (--output's default)
         "--output demo-output.wav and --transcript demo-output.wav are the same file: one "
         "would overwrite the other (write them to different files)"),
        (["--input", "in.wav", "--transcript", "in.wav"],
         "--transcript in.wav is also an input file (--input): botrun would overwrite it "
         "(write to another file)"),
    ],
)  # fmt: skip
def test_demo_refuses_outputs_that_are_one_file_like_wav(
    tmp_path: Path, flags: list[str], error: str
) -> None:
    """(probe4 item 1) `botrun demo` wrote its transcript and then the bot's WAV over it."""
    wav = "in.wav"
    (tmp_path / wav).write_bytes(sample_path().read_bytes())
    res = run_botrun("demo", *flags, cwd=tmp_path)  # (the local simulator: nothing external)
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.strip().splitlines() == [f"botrun: error: {error}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [wav]  # nothing written
    assert (tmp_path / wav).read_bytes() == sample_path().read_bytes()


# ------------------------------------------------------------------ item 5: a second recording
def test_recording_again_removes_the_previous_calls_report(tmp_path: Path) -> None:
    rec = _recording(tmp_path / "rr")
    assert run_botrun("report", "rr", cwd=tmp_path).returncode == 0
    assert (rec / "report.html").is_file()
    _recording(rec)
    assert sorted(p.name for p in rec.iterdir()) == ["bot.wav", "events.jsonl", "mix.wav"]


# ------------------------------------------------------------------ item 6: the rest
def test_report_names_an_empty_wav_and_an_events_folder(tmp_path: Path) -> None:
    from botrun.bots.report import load_recording

    rec = _recording(tmp_path / "rr")
    (rec / "mix.wav").write_bytes(b"")
    (rec / "bot.wav").write_bytes(b"RIFF")
    (rec / "events.jsonl").unlink()
    (rec / "events.jsonl").mkdir()
    problems = load_recording(rec).problems
    assert problems[0].startswith("events.jsonl is a directory, not a file:"), problems
    assert "mix.wav is empty (0 bytes): no waveform of the participants." in problems
    assert "()" not in " ".join(problems), problems
    assert any(p.startswith("bot.wav is unreadable (its header is cut short)") for p in problems)


def test_an_input_named_in_a_wav_table_is_named_plainly(tmp_path: Path) -> None:
    (tmp_path / "s16.wav").write_bytes(sample_path().read_bytes())
    (tmp_path / "wt3.toml").write_text('[wav]\ninput = ["s16.wav"]\n')
    res = run_botrun(
        "wav", "--config", "wt3.toml", "--output", "s16.wav", "--agent-url", UNREACHABLE,
        cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines() == [
        "botrun: error: --output s16.wav is also an input file (wt3.toml: [wav] input): "
        "botrun would overwrite it (write to another file)"
    ]


def test_a_wav_table_with_fewer_at_values_than_inputs_is_refused(tmp_path: Path) -> None:
    for name in ("a.wav", "b.wav"):
        (tmp_path / name).write_bytes(sample_path().read_bytes())
    (tmp_path / "bot.toml").write_text('[wav]\ninput = ["a.wav", "b.wav"]\nat = [2.5]\n')
    res = run_botrun(
        "wav", "--config", "bot.toml", "--output", "o.wav", "--agent-url", UNREACHABLE,
        cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines() == [
        "botrun: error: bot.toml: [wav] at has 1 value(s) for 2 inputs: give one per input, "
        "in the same order (0 for one that starts at once)"
    ]


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ('participant = ["Ann"]',
         'participant has 1 value(s) for 2 inputs: give one per input, in the same order ("" '
         "for one named after its file)"),
        ('participant = ["Ann", "Bob", "Cy"]',
         'participant has 3 value(s) for 2 inputs: give one per input, in the same order ("" '
         "for one named after its file)"),
        ('phone = ["+14155550123"]',
         'phone has 1 value(s) for 2 inputs: give one per input, in the same order ("" for one '
         "that is not a phone caller)"),
        ('phone = ["", "+14155550123", ""]',
         'phone has 3 value(s) for 2 inputs: give one per input, in the same order ("" for one '
         "that is not a phone caller)"),
    ],
)  # fmt: skip
def test_a_wav_table_with_participant_or_phone_lists_unlike_its_inputs_is_refused(
    tmp_path: Path, line: str, error: str
) -> None:
    """(probe4 item 2) A shorter list was accepted silently: every later input took its
    file's name or no number, whatever the user meant the list to pair with."""
    for name in ("a.wav", "b.wav"):
        (tmp_path / name).write_bytes(sample_path().read_bytes())
    (tmp_path / "bot.toml").write_text(f'[wav]\ninput = ["a.wav", "b.wav"]\n{line}\n')
    res = run_botrun(
        "wav", "--config", "bot.toml", "--output", "o.wav", "--agent-url", UNREACHABLE,
        cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines() == [f"botrun: error: bot.toml: [wav] {error}"]
    assert not (tmp_path / "o.wav").exists()


def test_a_wav_table_with_one_participant_and_phone_per_input_is_taken() -> None:
    """ "" in a full-length list: the input keeps its file's name / is no phone caller."""
    from botrun.transports.wav.transport import WavTransport

    wav = sample_path()
    labels = {k: f"bot.toml: [wav] {k}" for k in ("input", "participant", "phone")}
    opts = {
        "input": [wav, wav],
        "participant": ["", "Bob"],
        "phone": ["", "+14155550123"],
        "output": Path("unused.wav"),  # (not opened: nothing joins)
    }
    transport = WavTransport.from_options(opts, labels)
    assert [(i.name, i.phone) for i in transport.inputs] == [
        (wav.stem, None),
        ("Bob", "+14155550123"),
    ]


async def test_sigterm_mid_call_exits_143(tmp_path: Path) -> None:
    async with Simulator(speed=1.0) as sim:
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
        env["PYTHONUNBUFFERED"] = "1"
        argv = ["wav", "--input", str(sample_path()), "--output", "o.wav", "--agent-url", sim.url]

        def run() -> tuple[int, str]:
            proc = subprocess.Popen(
                [sys.executable, "-m", "botrun.bots.cli", *argv],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            seen = []
            try:
                assert proc.stdout is not None
                for line in proc.stdout:  # the call is running once someone joined
                    seen.append(line)
                    if " joined" in line:
                        break
                proc.send_signal(signal.SIGTERM)
                rest, err = proc.communicate(timeout=60)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            return proc.returncode, "".join(seen) + rest + err

        code, output = await asyncio.to_thread(run)
    assert code == 143, output
    assert "Traceback" not in output


def test_a_recording_that_cannot_start_when_the_page_joins_fails_the_call(tmp_path: Path) -> None:
    """The browser transport's recorder starts at the first join: a folder it cannot write
    then is logged and the command exits non-zero (no silent missing recording)."""
    from botrun.bots.runner import finish_recording
    from botrun.core import events as ev
    from botrun.core.bridge import CallSummary
    from botrun.core.recording import RecorderOnJoin, RecordingFailed

    (tmp_path / "rec" / "mix.wav").mkdir(parents=True)
    rec = RecorderOnJoin(tmp_path / "rec", transport=None)
    rec(ev.ParticipantJoined("p1", "Ann"))
    summary = CallSummary(reason="done")
    finish_recording(rec, summary)
    assert isinstance(summary.error, RecordingFailed)
    assert str(summary.error) == f"cannot record to {tmp_path / 'rec' / 'mix.wav'}: Is a directory"
    assert summary.exit_code == 1
