"""The memory of careers-edge's processes, each counted once: RSS and PSS by role.

RSS counts every page a process maps, shared or not, so after a fork the workers'
RSS summed counts the pages they still share with the supervisor (and each other)
once per process. PSS (`/proc/PID/smaps_rollup`) divides each page by the number of
processes mapping it, so PSS summed over the tree is what the tree really holds. The
split into anonymous (heaps, arenas, Python objects) and file-backed (code, shared
libraries, the SQLite WAL index `-shm`) says which kind grew.

Roles: the supervisor (the process started, when it forks workers), the workers
(the processes that serve), and the writer processes (`proxy.writer_process`,
children of a worker).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ROLES = ("supervisor", "workers", "writers")


@dataclass(frozen=True)
class Memory:
    """kB, from smaps_rollup: RSS, PSS and PSS split into anonymous and file/shmem."""

    rss: int = 0
    pss: int = 0
    pss_anon: int = 0
    pss_file: int = 0
    anon: int = 0            # anonymous pages resident (shared after a fork counted whole)

    def __add__(self, other: Memory) -> Memory:
        return Memory(self.rss + other.rss, self.pss + other.pss,
                      self.pss_anon + other.pss_anon, self.pss_file + other.pss_file,
                      self.anon + other.anon)


def read_memory(pid: int) -> Memory:
    """One process's memory; an empty `Memory` if it is gone."""
    fields: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return Memory()
    for line in text.splitlines()[1:]:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[name] = int(parts[0])
    return Memory(fields.get("Rss", 0), fields.get("Pss", 0), fields.get("Pss_Anon", 0),
                  fields.get("Pss_File", 0) + fields.get("Pss_Shmem", 0),
                  fields.get("Anonymous", 0))


def children(pid: int) -> list[int]:
    """The processes `pid` started."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append(int(stat.parent.name))
    return found


def _is_writer(pid: int) -> bool:
    try:
        return b"proxy.writer_process" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@dataclass
class Tree:
    """The pids of one careers-edge by role."""

    supervisor: list[int] = field(default_factory=list)
    workers: list[int] = field(default_factory=list)
    writers: list[int] = field(default_factory=list)


def tree(root: int, workers: int) -> Tree:
    """`root` is the one worker, or with `workers` > 1 the supervisor of its children."""
    found = Tree()
    if workers > 1:
        found.supervisor.append(root)
        serving = [pid for pid in children(root) if not _is_writer(pid)]
    else:
        serving = [root]
    for pid in serving:
        found.workers.append(pid)
        found.writers.extend(c for c in children(pid) if _is_writer(c))
    return found


@dataclass(frozen=True)
class Sample:
    """Each role's memory, summed over its processes, and how many processes."""

    by_role: dict[str, Memory]
    count: dict[str, int]
    workers: list[Memory]        # each worker's own, in pid order

    @property
    def total(self) -> Memory:
        out = Memory()
        for memory in self.by_role.values():
            out = out + memory
        return out

    def __getitem__(self, role: str) -> Memory:
        return self.by_role[role]


def sample(root: int, workers: int) -> Sample:
    pids = tree(root, workers)
    by_role: dict[str, Memory] = {}
    count: dict[str, int] = {}
    each = [read_memory(pid) for pid in sorted(pids.workers)]
    for role in ROLES:
        total = Memory()
        members = getattr(pids, role)
        for pid in members:
            total = total + read_memory(pid)
        by_role[role], count[role] = total, len(members)
    return Sample(by_role, count, each)


def mb(kb: int) -> float:
    return kb / 1024


def describe(s: Sample) -> str:
    """One segment's figures: the workers' RSS as before, then PSS by role."""
    w = s["workers"]
    parts = [f"workers RSS {mb(w.rss):.1f} PSS {mb(w.pss):.1f} "
             f"(anon {mb(w.pss_anon):.1f} file {mb(w.pss_file):.1f})"]
    if len(s.workers) > 1:
        parts.append("each worker's anon " + " ".join(f"{mb(m.anon):.1f}" for m in s.workers))
    for role in ("supervisor", "writers"):
        if s.count[role]:
            parts.append(f"{role} ×{s.count[role]} PSS {mb(s[role].pss):.1f}")
    parts.append(f"all PSS {mb(s.total.pss):.1f} MB")
    return " | ".join(parts)
