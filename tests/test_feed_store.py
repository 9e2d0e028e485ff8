"""The SQLite job store: memory reads, batched background writes, persistence."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from proxy.feed import jobs as jobs_module
from proxy.feed.jobs import JobStore
from proxy.feed.jsonld import Job

T0 = 1_714_556_800.0


def job(n: int, **extra: object) -> Job:
    values: dict = {"key": f"id:{n}", "path": f"/jobs/{n}", "title": f"Job {n}",
                    "date": T0, "referencenumber": str(n), "description": "<p>é</p>"}
    values.update(extra)
    return Job(**values)


def rows(path: Path) -> dict[str, tuple]:
    with sqlite3.connect(path) as db:
        return {r[0]: r[1:] for r in db.execute(
            "SELECT key, first_seen, last_seen FROM feed_jobs")}


async def test_persists_across_a_new_store_on_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "state.db"          # parent directory created on load
    store = JobStore(str(path))
    await store.load()
    assert store.upsert(job(1), T0)
    assert store.upsert(job(2), T0 + 1)
    assert store.upsert(job(1, title="Job 1, senior"), T0 + 500)
    await store.close()

    again = JobStore(str(path))
    await again.load()
    by_key = {e.job.key: e for e in again.all()}
    assert set(by_key) == {"id:1", "id:2"}
    assert by_key["id:1"].job == job(1, title="Job 1, senior")
    assert (by_key["id:1"].first_seen, by_key["id:1"].last_seen) == (T0, T0 + 500)
    assert by_key["id:2"].job == job(2)
    await again.close()


async def test_reads_are_from_memory_and_writes_are_batched(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = JobStore(str(path))
    await store.load()
    for n in range(50):
        store.upsert(job(n), T0)
    assert len(list(store.all())) == 50             # visible at once, before any write
    assert rows(path) == {}                         # nothing written on the caller's path
    await store.flush()
    assert len(rows(path)) == 50
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    await store.close()


async def test_first_seen_kept_last_seen_advanced_and_version(tmp_path: Path) -> None:
    store = JobStore(str(tmp_path / "s.db"))
    await store.load()
    store.upsert(job(1), T0)
    v = store.version
    store.upsert(job(1), T0 + 10)                   # unchanged, seen again within a minute
    assert store.version == v and store.get("id:1").last_seen == T0  # type: ignore[union-attr]
    store.upsert(job(1), T0 + 3600)
    entry = store.get("id:1")
    assert entry is not None and (entry.first_seen, entry.last_seen) == (T0, T0 + 3600)
    assert store.version > v
    store.upsert(job(1), T0 - 100)                  # an older sighting: first_seen only
    entry = store.get("id:1")
    assert entry is not None and (entry.first_seen, entry.last_seen) == (T0 - 100, T0 + 3600)
    await store.close()


async def test_prune_removes_from_memory_and_disk(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = JobStore(str(path))
    await store.load()
    store.upsert(job(1), T0)
    store.upsert(job(2), T0 + 100)
    await store.flush()
    assert store.prune(T0 + 50) == 1
    assert [e.job.key for e in store.all()] == ["id:2"]
    await store.close()
    assert set(rows(path)) == {"id:2"}


async def test_two_processes_sharing_the_file_converge(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    a, b = JobStore(path), JobStore(path)
    await a.load()
    await b.load()
    a.upsert(job(1), T0)
    b.upsert(job(1), T0 + 3600)
    b.upsert(job(2), T0)
    await a.flush()
    await b.flush()
    await a.refresh()
    entry = a.get("id:1")
    assert entry is not None and (entry.first_seen, entry.last_seen) == (T0, T0 + 3600)
    assert a.get("id:2") is not None
    await a.close()
    await b.close()


async def test_a_full_store_refuses_new_jobs(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs_module, "MAX_JOBS", 2)
    store = JobStore(str(tmp_path / "s.db"))
    await store.load()
    assert store.upsert(job(1), T0) and store.upsert(job(2), T0)
    assert not store.upsert(job(3), T0)
    assert store.upsert(job(1, title="changed"), T0)     # known jobs still update
    await store.close()


async def test_shares_the_database_with_other_tables(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE outbox (id INTEGER PRIMARY KEY, body TEXT)")
        db.execute("INSERT INTO outbox (body) VALUES ('x')")
    store = JobStore(str(path))
    await store.load()
    store.upsert(job(1), T0)
    await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT body FROM outbox").fetchall() == [("x",)]
        assert db.execute("SELECT count(*) FROM feed_jobs").fetchone() == (1,)
