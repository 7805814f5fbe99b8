"""A live per-table view of sizes, insert/sample rates and blocking, refreshed in place."""

import contextlib
import dataclasses
import os
import select
import sys
import termios
import time
import tty
from typing import Any, Callable, Dict, Iterator, List, Optional, TextIO

from replay._inspect.tables import LimiterState, format_number

_HOME, _CLEAR_LINE, _CLEAR_BELOW, _CLEAR_SCREEN = "\x1b[H", "\x1b[K", "\x1b[J", "\x1b[2J"


@dataclasses.dataclass(frozen=True)
class TableRates:
    """One table's activity between two server_info() snapshots."""

    name: str
    size: int
    max_size: int
    inserts_per_second: float
    samples_per_second: float
    configured_samples_per_insert: Optional[float]  # None when the limiter enforces no ratio.
    blocked: str  # "inserts", "samples", "inserts+samples" or "-".

    @property
    def observed_samples_per_insert(self) -> Optional[float]:
        if self.inserts_per_second <= 0:
            return None
        return self.samples_per_second / self.inserts_per_second


def measure(before: Dict[str, Any], after: Dict[str, Any], seconds: float) -> List[TableRates]:
    """Rates per table from two server_info() results taken `seconds` apart."""
    rates = []
    for name in sorted(after):
        now = LimiterState.of(after[name])
        then = LimiterState.of(before[name]) if name in before else now
        blocked = [
            what
            for what, reason in (("inserts", now.insert_block_reason()), ("samples", now.sample_block_reason()))
            if reason
        ]
        rates.append(
            TableRates(
                name=name,
                size=now.size,
                max_size=after[name].max_size,
                inserts_per_second=max(0, now.inserts - then.inserts) / seconds,
                samples_per_second=max(0, now.samples - then.samples) / seconds,
                configured_samples_per_insert=now.samples_per_insert if now.limits_ratio else None,
                blocked="+".join(blocked) or "-",
            )
        )
    return rates


def _optional(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.2f}"


def render_frame(address: str, rates: List[TableRates], seconds: float, footer: str) -> str:
    """The text of one frame: a header line and one row per table."""
    name_width = max([5] + [len(r.name) for r in rates])
    lines = [
        f"encore-inspect top  {address}  rates over {seconds:.1f}s  {footer}".rstrip(),
        f"{'TABLE':<{name_width}}  {'SIZE':>17}  {'INSERT/S':>9}  {'SAMPLE/S':>9}  "
        f"{'SPI OBS':>7}  {'SPI CFG':>7}  BLOCKED",
    ]
    for r in rates:
        size = f"{r.size}/{r.max_size}"
        spi_cfg = "-" if r.configured_samples_per_insert is None else format_number(r.configured_samples_per_insert)
        lines.append(
            f"{r.name:<{name_width}}  {size:>17}  {r.inserts_per_second:>9.1f}  "
            f"{r.samples_per_second:>9.1f}  {_optional(r.observed_samples_per_insert):>7}  "
            f"{spi_cfg:>7}  {r.blocked}"
        )
    return "\n".join(lines)


@contextlib.contextmanager
def _keypresses(stdin: TextIO, enabled: bool) -> Iterator[Callable[[float], bool]]:
    """Yields wait(seconds) -> True when `q` was pressed; stdin is read in cbreak mode only if it is a tty."""
    if not (enabled and stdin.isatty()):
        yield lambda seconds: bool(time.sleep(seconds))
        return
    fd = stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def wait(seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if select.select([fd], [], [], left)[0] and os.read(fd, 1) in (b"q", b"Q"):
                return True
        return False

    try:
        yield wait
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def run(
    fetch: Callable[[], Dict[str, Any]],
    address: str,
    interval: float,
    once: bool,
    out: TextIO = sys.stdout,
    stdin: TextIO = sys.stdin,
) -> None:
    """Shows frames every `interval` seconds until `q` or Ctrl-C; with `once`, prints a single frame."""
    live = not once and out.isatty()
    footer = "" if once else ("(q quits)" if stdin.isatty() else "(Ctrl-C quits)")
    with _keypresses(stdin, enabled=not once) as wait:
        if live:
            out.write(f"{_CLEAR_SCREEN}{_HOME}encore-inspect top  {address}  measuring rates over {interval:g}s\n")
            out.flush()
        before, then = fetch(), time.monotonic()
        try:
            while True:
                if wait(interval):
                    return
                after, now = fetch(), time.monotonic()
                frame = render_frame(address, measure(before, after, now - then), now - then, footer)
                if live:
                    out.write(_HOME + frame.replace("\n", _CLEAR_LINE + "\n") + _CLEAR_LINE + "\n" + _CLEAR_BELOW)
                else:
                    out.write(frame + ("\n" if once else "\n\n"))
                out.flush()
                if once:
                    return
                before, then = after, now
        except KeyboardInterrupt:
            return
