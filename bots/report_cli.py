"""``botrun report DIR``: render a call recorded with ``--record DIR`` (bots/report.py)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write the HTML file [default: DIR/report.html]; never one of the "
    "recording's own files.",
)
def command(directory: Path, output: Path | None) -> None:
    """Render a recorded call as one self-contained HTML file: both sides' waveforms on one
    time axis, what each side said, barge-ins, tool calls, per-turn latency and the call
    summary. A recording cut short still renders; the report says what is missing."""
    from botrun.bots.report import is_recording, load_recording, write_report
    from botrun.core.errors import UsageError

    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory (record a call with --record DIR)")
    if output is not None:
        from botrun.core.paths import check_output_file

        check_output_file(output, "--output")
        from botrun.core.paths import same_path
        from botrun.core.recording import BOT_WAV, EVENTS, MIX_WAV

        for name in (MIX_WAV, BOT_WAV, EVENTS):  # (botrun never overwrites what it reads)
            if same_path(output, directory / name):
                raise UsageError(
                    f"--output {output} is the recording's {name}: botrun would overwrite it "
                    "(write the report to another file)"
                )
    rec = load_recording(directory)
    if not is_recording(rec):
        raise UsageError(f"{directory} is not a --record directory: no events.jsonl or recordings")
    try:
        path, rec = write_report(directory, output, rec)
    except OSError as exc:
        raise UsageError(f"cannot write the report: {exc.strerror or exc}") from None
    for problem in rec.problems:
        click.echo(f"warning: {problem}", err=True)
    click.echo(f"report written to {path}")
