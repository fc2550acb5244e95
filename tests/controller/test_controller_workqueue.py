"""The work queue: dedupe, no concurrent processing of one key, dirty re-queue, delays."""

from __future__ import annotations

import threading

from controller.workqueue import WorkQueue


def test_dedupes_pending_keys() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    q.add("a")
    q.add("b")
    assert [q.get(), q.get()] == ["a", "b"]
    assert len(q) == 2  # both in processing


def test_key_added_while_processing_runs_again_after_done() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    assert q.get() == "a"
    q.add("a")
    q.add("b")
    assert q.get() == "b"  # "a" is not handed out twice at once
    q.done("a")
    assert q.get() == "a"


def test_add_after_delays() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add_after("late", 0.05)
    q.add("now")
    assert q.get() == "now"
    assert q.get() == "late"


def test_close_wakes_waiters() -> None:
    q: WorkQueue[str] = WorkQueue()
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(q.get()))
    t.start()
    q.close()
    t.join(5)
    assert got == [None]
