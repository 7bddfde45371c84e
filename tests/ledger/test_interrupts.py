"""Ctrl-C held over a block: delivered once, to the handler there was, when the block
ends; nothing done off the main thread, when SIGINT is ignored, or inside a block that
holds it already."""

from __future__ import annotations

import _thread
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from ledger.interrupts import ctrl_c_held


@pytest.fixture(autouse=True)
def ctrl_c_raises() -> Iterator[None]:
    """SIGINT raising KeyboardInterrupt, as in an interactive run, whatever the runner set;
    the runner's handler back after."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def ctrl_c() -> None:
    signal.raise_signal(signal.SIGINT)


def test_ctrl_c_inside_the_block_is_delivered_once_when_it_ends() -> None:
    steps: list[str] = []

    def twice() -> None:
        with ctrl_c_held():
            ctrl_c()
            ctrl_c()
            steps.append("the block ran to its end")

    with pytest.raises(KeyboardInterrupt):
        twice()
    assert steps == ["the block ran to its end"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_handler_there_was_is_restored_and_told_once() -> None:
    told: list[int] = []

    def handler(signum: int, _frame: Any) -> None:
        told.append(signum)

    signal.signal(signal.SIGINT, handler)
    with ctrl_c_held():
        ctrl_c()
        assert told == []
    assert told == [signal.SIGINT]
    assert signal.getsignal(signal.SIGINT) is handler
    with ctrl_c_held():
        pass
    assert told == [signal.SIGINT]


def test_a_block_inside_a_holding_one_leaves_the_delivery_to_the_outer_one() -> None:
    steps: list[str] = []

    def nested() -> None:
        with ctrl_c_held():
            with ctrl_c_held():
                ctrl_c()
            steps.append("the inner block ended")

    with pytest.raises(KeyboardInterrupt):
        nested()
    assert steps == ["the inner block ended"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_with_sigint_ignored_nothing_is_held_or_delivered() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with ctrl_c_held():
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        ctrl_c()
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN


def test_off_the_main_thread_the_handler_is_left_alone() -> None:
    seen: list[object] = []

    def held() -> None:
        try:
            with ctrl_c_held():
                seen.append(signal.getsignal(signal.SIGINT))
        except BaseException as error:  # noqa: BLE001 - what the thread met is the finding
            seen.append(error)

    thread = threading.Thread(target=held)
    thread.start()
    thread.join()
    assert seen == [signal.default_int_handler]


def test_one_hold_entered_again_inside_itself_delivers_at_its_outer_end() -> None:
    held = ctrl_c_held()
    steps: list[str] = []

    def nested() -> None:
        with held:
            with held:
                ctrl_c()
            steps.append("the inner block ended")

    with pytest.raises(KeyboardInterrupt):
        nested()
    assert steps == ["the inner block ended"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_one_hold_used_for_two_blocks_delivers_only_what_came_in_each() -> None:
    held = ctrl_c_held()

    def interrupted() -> None:
        with held:
            ctrl_c()

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    with held:
        pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_thread_python_does_not_track_leaves_no_thread_registered_behind() -> None:
    """As a finalizer closing a store does on a thread that is ending: the hold must not
    register the thread with `threading`, which keeps such a stand-in for ever (and
    `ledger apply` forks its helper processes only where no other thread is known)."""
    before = threading.active_count()
    done = threading.Event()

    def untracked() -> None:
        with ctrl_c_held():
            pass
        done.set()

    _thread.start_new_thread(untracked, ())
    assert done.wait(10)
    assert threading.active_count() == before
