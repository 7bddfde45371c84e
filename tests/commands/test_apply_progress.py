"""`ledger apply`'s progress bar on a terminal: drawn from the batch loop (no refresh thread
of its own, as a forked parse process needs), no more often than ten times a second of
the run, whatever the batch size."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from commands import render


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    screen = io.StringIO()
    consoles = (Console(file=screen, force_terminal=True, width=80),
                Console(file=io.StringIO(), force_terminal=True, width=80))
    monkeypatch.setattr(render, "_consoles", lambda: consoles)
    return screen


class FakeClock:
    """Seconds that move on by `step` at every reading."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_batches_of_one_line_redraw_the_bar_ten_times_a_second_not_at_every_batch(
        terminal: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(0.001)  # a batch of one line settled every millisecond
    monkeypatch.setattr(render, "monotonic", clock)
    with render.apply_progress(5_000, batch_size=1) as progress:
        for _ in range(5_000):
            progress(1)
    drawn = terminal.getvalue().count("applying")
    assert 45 <= drawn <= 55, drawn  # five seconds of batches


def test_every_large_batch_redraws_the_bar(terminal: io.StringIO,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render, "monotonic", FakeClock(0.5))  # a batch every half second
    with render.apply_progress(20_000, batch_size=2_000) as progress:
        for _ in range(10):
            progress(2_000)
    assert terminal.getvalue().count("applying") >= 10
    assert "20000/20000" in terminal.getvalue()
