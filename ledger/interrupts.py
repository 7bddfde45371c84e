"""Ctrl-C held back over code that an interrupt part way through would leave broken."""

from __future__ import annotations

# `_signal`: `signal`'s own functions without its enum wrapping, which costs some 10 us a
# swap of handlers (an exception raised and caught inside).
import _signal  # type: ignore[import-not-found]
import signal
import threading
from types import FrameType, TracebackType


class CtrlCHeld:
    """Ctrl-C (SIGINT) held back until the block ends, then delivered as it came
    (`with ctrl_c_held(): ...`). Its handler is swapped, not the signal blocked: a signal
    blocked in this thread alone would go to another (the parse process's executor runs
    threads here), whose handler still raises in this one. Nothing is done outside the
    main thread (where Ctrl-C is never raised), when SIGINT is ignored, or inside a
    block that holds it already (this one included: one hold may be entered again, inside
    itself or after). Costs two handler swaps, a few microseconds."""

    __slots__ = ("came", "depth", "previous")

    def __init__(self) -> None:
        self.came = False
        self.depth = 0  # blocks of this hold entered and not yet left
        self.previous: object = _signal.SIG_IGN  # nothing to restore

    def __call__(self, _signum: int, _frame: FrameType | None) -> None:
        self.came = True

    def __enter__(self) -> None:
        self.depth += 1
        # By ident: current_thread() on a thread Python no longer tracks (a finalizer run
        # as a thread ends) registers a stand-in for it that is never removed, and
        # `ledger apply` forks its helper processes only where no other thread is known.
        if self.depth > 1 or threading.get_ident() != threading.main_thread().ident:
            return
        previous = _signal.getsignal(signal.SIGINT)
        if previous == _signal.SIG_IGN or isinstance(previous, CtrlCHeld):
            return
        _signal.signal(signal.SIGINT, self)
        self.previous = _signal.SIG_DFL if previous is None else previous

    def __exit__(self, _type: type[BaseException] | None, _error: BaseException | None,
                 _traceback: TracebackType | None) -> None:
        self.depth -= 1
        if self.depth or self.previous == _signal.SIG_IGN:
            return
        # Restored first: a Ctrl-C still pending is told to this hold before the swap.
        _signal.signal(signal.SIGINT, self.previous)
        self.previous = _signal.SIG_IGN
        came, self.came = self.came, False
        if came:
            signal.raise_signal(signal.SIGINT)


def ctrl_c_held() -> CtrlCHeld:
    """A block with Ctrl-C held back (CtrlCHeld)."""
    return CtrlCHeld()
