"""Ids cut from 4 KB draws of the OS CSPRNG: unique, the right form, every bit random,
and never shared with a forked child or between threads."""

from __future__ import annotations

import os
import re
import sys
import threading
import uuid

import pytest

from proxy import random_ids
from proxy.random_ids import DRAW_BYTES, ID_BYTES, HexIds, visitor_id

PER_DRAW = DRAW_BYTES // ID_BYTES


@pytest.fixture
def draws(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the draws from `os.urandom` (which still makes each one)."""
    sizes: list[int] = []
    urandom = os.urandom

    def counted(n: int) -> bytes:
        sizes.append(n)
        return urandom(n)
    monkeypatch.setattr(random_ids.os, "urandom", counted)
    return sizes


def test_ids_are_unique_32_hex_digits_across_draws(draws: list[int]) -> None:
    ids = HexIds()
    taken = [ids() for _ in range(3 * PER_DRAW + 5)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in taken)
    assert len(set(taken)) == len(taken)
    assert draws == [DRAW_BYTES] * 4          # one system call per 256 ids, not one each
    # Every hex digit is random: none is stuck at one value.
    assert all(len({i[k] for i in taken}) == 16 for k in range(32))


def test_a_draw_is_used_up_before_the_next(draws: list[int]) -> None:
    ids = HexIds()
    first = [ids() for _ in range(PER_DRAW)]
    assert len(draws) == 1
    crossing = ids()
    assert len(draws) == 2 and crossing not in first
    # The draw's ids are its bytes in order: nothing skipped, nothing repeated.
    assert len("".join(first)) == 2 * DRAW_BYTES


def test_uuid4_ids_are_version_4_with_every_other_bit_random() -> None:
    ids = HexIds(uuid4=True)
    taken = [ids() for _ in range(2 * PER_DRAW + 3)]
    assert len(set(taken)) == len(taken)
    for i in taken:
        u = uuid.UUID(hex=i)
        assert u.hex == i and u.version == 4 and u.variant == uuid.RFC_4122
    free = [k for k in range(32) if k not in (12, 16)]
    assert all(len({i[k] for i in taken}) == 16 for k in free)
    assert {i[16] for i in taken} == set("89ab")


def test_the_module_ids_are_fresh_per_call() -> None:
    assert len({visitor_id() for _ in range(1000)}) == 1000


def _child_ids(ids: HexIds, n: int) -> list[str]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                         # the child: its next ids, then out
        try:
            os.write(write, "".join(ids() for _ in range(n)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        text = pipe.read().decode()
    os.waitpid(pid, 0)
    return [text[k:k + 32] for k in range(0, len(text), 32)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_replays_the_parents_draw() -> None:
    for ids in (HexIds(), HexIds(uuid4=True), visitor_id):
        ids()                             # the parent holds a draw with 255 ids left
        child = _child_ids(ids, 20)
        parent = [ids() for _ in range(20)]
        assert len(child) == 20 and not set(child) & set(parent)


def test_threads_never_share_an_id() -> None:
    ids = HexIds()
    per_thread: list[list[str]] = [[] for _ in range(8)]
    start = threading.Barrier(8)

    def take(out: list[str]) -> None:
        start.wait()
        for _ in range(3 * PER_DRAW):
            out.append(ids())
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)           # switch threads as often as possible
    try:
        threads = [threading.Thread(target=take, args=(out,)) for out in per_thread]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    taken = [i for out in per_thread for i in out]
    assert len(taken) == 8 * 3 * PER_DRAW and len(set(taken)) == len(taken)
