"""Text output off the event loop: the console and the transcript file hand their lines to a
small writer thread, so a slow terminal, a pipe nobody reads or a busy disk never stalls the
call (issue 15 bug 6: both used to write and flush on the loop for every event)."""

from __future__ import annotations

import logging
import queue
import threading
from typing import IO

log = logging.getLogger("botrun.writer")

_CLOSE = object()


class BackgroundWriter:
    """``write()`` only queues the text; a daemon thread writes whatever has queued up and
    flushes once per batch. :meth:`flush` waits until everything queued so far is written;
    :meth:`close` writes the rest, then stops (closing ``stream`` when ``owns_stream``).
    A failing stream (full disk, closed pipe) is logged once; later text is dropped."""

    def __init__(self, stream: IO[str], *, owns_stream: bool = False, name: str = "writer") -> None:
        self.stream = stream
        self._owns = owns_stream
        self._name = f"botrun-{name}"
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self.failed: OSError | ValueError | None = None

    def write(self, text: str) -> None:
        if self._closed:
            return
        self._ensure_thread()
        self._queue.put(text)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the text queued before this call is written; False on timeout."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop. Idempotent; call from any thread (not the
        loop's hot path: it waits for the thread)."""
        if self._closed:
            return
        self._closed = True
        thread = self._thread
        if thread is None:
            self._close_stream()
            return
        self._queue.put(_CLOSE)
        thread.join(timeout)
        if thread.is_alive():
            log.warning("%s: output not written within %.0f s", self._name, timeout)

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        stop = False
        while not stop:
            batch = [self._queue.get()]
            while True:  # everything that queued up meanwhile goes in one write + flush
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            text: list[str] = []
            marks: list[threading.Event] = []
            for item in batch:
                if item is _CLOSE:
                    stop = True
                elif isinstance(item, threading.Event):
                    marks.append(item)
                elif isinstance(item, str):
                    text.append(item)
            if text and self.failed is None:
                try:
                    self.stream.write("".join(text))
                    self.stream.flush()
                except (OSError, ValueError) as exc:  # full disk, closed pipe or file
                    self.failed = exc
                    log.warning("%s: cannot write (%s); further output dropped", self._name, exc)
            for mark in marks:
                mark.set()
        self._close_stream()

    def _close_stream(self) -> None:
        if self._owns:
            try:
                self.stream.close()
            except (OSError, ValueError) as exc:
                log.warning("%s: closing failed: %s", self._name, exc)
