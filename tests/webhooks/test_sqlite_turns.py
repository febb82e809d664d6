"""SQLite writers of the server process take turns (first come, first served) instead of racing in
SQLite's busy handler; turns always come back, readers never queue."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import OperationalError

from store import make_engine, make_session_factory, read_session, upgrade
from store.db import FileTurn, TurnQueue, writer_waiting
from store.models import Lead


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    url = f"sqlite:///{tmp_path / 'turns.db'}"
    upgrade(url)
    engine = make_engine(url)  # queues the file's writers itself
    yield engine
    engine.dispose()


def test_turns_are_handed_over_in_arrival_order() -> None:
    turns = TurnQueue()
    assert turns.acquire(1)
    order: list[int] = []

    def wait_turn(number: int) -> None:
        assert turns.acquire(5)
        order.append(number)
        turns.release()

    threads = []
    for number in range(5):
        thread = threading.Thread(target=wait_turn, args=(number,))
        thread.start()
        threads.append(thread)
        time.sleep(0.05)  # each one queues behind the previous
    turns.release()
    for thread in threads:
        thread.join(5)
    assert order == [0, 1, 2, 3, 4]


def test_a_wait_that_runs_out_gives_up_its_place() -> None:
    turns = TurnQueue()
    assert turns.acquire(1)
    assert turns.acquire(0.05) is False
    turns.release()
    assert turns.acquire(0.05) is True


def test_a_process_waiting_for_the_file_turn_gets_it_while_the_holder_keeps_asking(
    tmp_path: Path,
) -> None:
    """Between processes (each `FileTurn` opens its own file descriptions, as a process does):
    one that takes the turn again right after each release, as a drain working through a backlog
    does, lets the one waiting in after one more turn at most."""
    path = str(tmp_path / "turns.db-writers")
    busy, waiting = FileTurn(path), FileTurn(path)
    turns_taken = 0
    stop = threading.Event()

    def work_through_a_backlog() -> None:
        nonlocal turns_taken
        while not stop.is_set() and turns_taken < 500:
            assert busy.acquire(5)
            turns_taken += 1
            time.sleep(0.003)  # a transaction
            busy.release()  # and straight on to the next one

    worker = threading.Thread(target=work_through_a_backlog)
    worker.start()
    try:
        while turns_taken < 3:
            time.sleep(0.001)
        asked_at = turns_taken
        assert waiting.acquire(5)
        waited_through = turns_taken - asked_at
        waiting.release()
    finally:
        stop.set()
        worker.join(10)
    assert waited_through <= 2


def test_a_writer_waiting_for_the_file_turn_is_seen_by_another_process(tmp_path: Path) -> None:
    """`someone_waits` (what the drain gives way to): true while a writer waits for the turn,
    false once it has had it; looking does not take the waiting writer's place."""
    path = str(tmp_path / "turns.db-writers")
    holder, writer, looker = FileTurn(path), FileTurn(path), FileTurn(path)
    assert not looker.someone_waits()
    assert holder.acquire(5)
    assert not looker.someone_waits()  # a holder alone is not waiting
    got: list[bool] = []
    waiting = threading.Thread(target=lambda: got.append(writer.acquire(5)))
    waiting.start()
    deadline = time.monotonic() + 5
    while not looker.someone_waits():
        assert time.monotonic() < deadline, "the waiting writer was never seen"
        time.sleep(0.001)
    assert looker.someone_waits()  # looking again changes nothing
    holder.release()
    waiting.join(5)
    assert got == [True]
    writer.release()
    assert not looker.someone_waits()


def test_only_a_sqlite_files_engine_can_have_a_writer_waiting(tmp_path: Path) -> None:
    file_engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    memory_engine = make_engine("sqlite://")
    try:
        assert writer_waiting(file_engine) is False
        assert writer_waiting(memory_engine) is False  # one shared connection: nobody queues
    finally:
        file_engine.dispose()
        memory_engine.dispose()


def test_a_gate_that_cannot_be_opened_leaves_the_decision_to_sqlite_and_no_descriptor_open(
    tmp_path: Path,
) -> None:
    """The turn's file is there (an earlier version made it) but the gate cannot be opened: every
    write goes on without the turn, and none leaves a file descriptor behind."""
    path = tmp_path / "turns.db-writers"
    path.touch()
    (tmp_path / "turns.db-writers-gate").mkdir()  # not a file: opening it fails
    turn = FileTurn(str(path))
    open_before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    assert not any(turn.acquire(1) for _ in range(50))
    if open_before is not None:
        assert len(os.listdir("/proc/self/fd")) <= open_before


def test_many_writers_all_commit_and_the_turn_comes_back(engine: Engine) -> None:
    session_factory = make_session_factory(engine)
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for index in range(15):
                with session_factory.begin() as session:
                    session.add(
                        Lead(
                            name=f"w{worker}-{index}",
                            score_factors=[],
                            interests=[],
                            objections=[],
                            tags=[],
                            custom_fields={},
                        )
                    )
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with read_session(session_factory) as session:
        assert session.scalar(select(func.count(Lead.id))) == 90


def test_rollbacks_and_errors_give_the_turn_back(engine: Engine) -> None:
    session_factory = make_session_factory(engine)

    def fail_half_way() -> None:
        with session_factory.begin() as session:
            session.execute(text("UPDATE leads SET name = 'x'"))
            raise RuntimeError("the request failed half-way")

    with pytest.raises(RuntimeError):
        fail_half_way()
    with pytest.raises(OperationalError), session_factory.begin() as session:
        session.execute(text("SELECT * FROM no_such_table"))
    with session_factory() as session:  # autobegun and closed without commit
        session.execute(text("UPDATE leads SET name = 'y'"))
    started = time.monotonic()
    with session_factory.begin() as session:
        session.execute(text("UPDATE leads SET name = 'z'"))
    assert time.monotonic() - started < 2, "nobody kept the turn"


def test_readers_do_not_wait_for_a_writer(engine: Engine) -> None:
    session_factory = make_session_factory(engine)
    with session_factory.begin() as writer:
        writer.execute(text("UPDATE leads SET name = 'held'"))
        done = threading.Event()

        def read() -> None:
            with read_session(session_factory) as session:
                session.scalar(select(func.count(Lead.id)))
            done.set()

        thread = threading.Thread(target=read)
        thread.start()
        assert done.wait(2), "a read snapshot runs while the writer holds its turn"
        thread.join(2)
