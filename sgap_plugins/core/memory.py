"""Peak anonymous memory of a process, sampled from ``/proc``.

Out-of-core work maps large files; their clean pages count in the resident set (and in
``ru_maxrss``) but the kernel can drop them at any time, so they are not memory the job
*needs*. What it needs is anonymous memory: ``RssAnon + RssShmem`` of
``/proc/<pid>/status``. :class:`PeakAnonMemory` samples that in a background thread.

Linux only (``/proc``); elsewhere :func:`anon_bytes` raises ``OSError``.
"""

from __future__ import annotations

import os
import threading
from types import TracebackType


def anon_bytes(pid: int | None = None) -> int:
    """Current ``RssAnon + RssShmem`` of process ``pid`` (default: this one), in bytes."""
    path = f"/proc/{pid or os.getpid()}/status"
    total = 0
    with open(path) as f:
        for line in f:
            if line.startswith(("RssAnon:", "RssShmem:")):
                total += int(line.split()[1]) * 1024  # the kernel reports kB
    return total


class PeakAnonMemory:
    """Context manager sampling the peak anonymous memory of a process.

    ``with PeakAnonMemory() as m: work()`` then ``m.peak`` (bytes, the maximum sample,
    taken every ``interval`` seconds, plus one at entry and one at exit) and ``m.baseline``
    (the sample at entry). ``pid`` measures another process (e.g. a subprocess), which may
    exit while sampled.
    """

    def __init__(self, pid: int | None = None, interval: float = 0.002) -> None:
        self.pid = pid
        self.interval = interval
        self.baseline = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        try:
            self.peak = max(self.peak, anon_bytes(self.pid))
        except (OSError, ValueError):  # the process has exited
            self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> PeakAnonMemory:
        self.baseline = self.peak = anon_bytes(self.pid)
        self._thread = threading.Thread(target=self._run, name="peak-anon-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._stop.is_set():
            self._sample()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
