"""A small progress display with rate and ETA for long scoring runs (stderr)."""

import sys
import time


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    """Counts finished items; redraws one line on a terminal, else logs a line every 10 %
    of the total or every minute, whichever comes first.

    The rate excludes the first update (which includes XLA compilation), so the ETA
    reflects steady-state speed.
    """

    def __init__(self, total: int, label: str, unit: str = "arch", stream=None, done: int = 0):
        self.total = max(total, 1)
        self.label = label
        self.unit = unit
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.done = done  # items finished before (a resumed run)
        self.start = time.perf_counter()
        self._steady = None  # (time, done) after the first (compiling) update
        self._next_log = 0.1
        self._last_draw = 0.0

    def update(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if self._steady is None:
            self._steady = (now, self.done)
        if self.tty and now - self._last_draw < 0.25 and self.done < self.total:
            return
        if (
            not self.tty
            and self.done / self.total < self._next_log
            and now - self._last_draw < 60.0
            and self.done < self.total
        ):
            return
        self._next_log = (int(self.done / self.total * 10) + 1) / 10
        self._last_draw = now
        line = self._line(now)
        if self.tty:
            self.stream.write("\r" + line + ("\n" if self.done >= self.total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def rate(self) -> float:
        """Items per second after compilation (NaN before two updates)."""
        if self._steady is None:
            return float("nan")
        t0, d0 = self._steady
        elapsed = time.perf_counter() - t0
        return (self.done - d0) / elapsed if elapsed > 0 and self.done > d0 else float("nan")

    def first_update_seconds(self) -> float:
        """Seconds from the start to the first update (tracing and compilation of the
        first call included; NaN before it)."""
        return float("nan") if self._steady is None else self._steady[0] - self.start

    def _line(self, now: float) -> str:
        rate = self.rate()
        eta = (self.total - self.done) / rate if rate == rate and rate > 0 else float("nan")
        rate_s = f"{rate:.2f} {self.unit}/s" if rate == rate else "compiling"
        eta_s = _clock(eta) if eta == eta else "--:--"
        return (
            f"[{self.label}] {self.done}/{self.total} {self.unit}s  {rate_s}  "
            f"elapsed {_clock(now - self.start)}  ETA {eta_s}"
        )
