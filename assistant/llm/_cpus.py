"""Keep the assistant's threads off the CPUs a managed vLLM's model runs on.

vLLM's CPU build binds its model worker's threads to a set of CPUs: by default
all but one, which it leaves to its own scheduler and HTTP server. Threads of the
assistant that land on a model CPU compete with the model's compute, and in a
profiled run some of them waited there a long time before the kernel moved them
back; a turn's routing or last token waited with them (measured:
benchmarks/README.md, CPU profile at 16 streams). Once vLLM is up,
:func:`keep_off_model_cpus` finds the CPUs its threads are bound to and moves
every thread of this process to the others. Threads started later inherit that.
Where vLLM binds nothing (a GPU host, or ``VLLM_CPU_OMP_THREADS_BIND=nobind``) or
would leave no CPU, nothing changes.

Linux only: it reads ``/proc`` and uses ``sched_setaffinity``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

__all__ = ["allowed_cpus", "bound_cpus", "keep_off_model_cpus", "process_tree"]

log = logging.getLogger(__name__)

_PROC = Path("/proc")


def allowed_cpus() -> set[int] | None:
    """The CPUs this thread may run on, or None where the platform cannot say."""
    return set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def process_tree(root: int) -> list[int]:
    """``root`` and every process descended from it (Linux, from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(parent, []).append(int(entry.name))
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending += parents.get(pid, [])
    return tree


def bound_cpus(pids: list[int], allowed: set[int]) -> set[int]:
    """The CPUs that threads of ``pids`` are bound to: the union of every thread mask
    narrower than ``allowed`` (an unbound thread may run anywhere and says nothing)."""
    bound: set[int] = set()
    for pid in pids:
        try:
            tids = [int(t) for t in os.listdir(_PROC / str(pid) / "task")]
        except OSError:
            continue
        for tid in tids:
            try:
                mask = set(os.sched_getaffinity(tid))
            except OSError:
                continue
            if mask < allowed:
                bound |= mask
    return bound


def keep_off_model_cpus(model_pid: int) -> set[int] | None:
    """Move this process's threads off the CPUs the threads of ``model_pid``'s
    process tree are bound to. Returns the CPUs it now runs on, or None if nothing
    changed (no binding found, or no CPU would be left)."""
    allowed = allowed_cpus()
    if allowed is None or not _PROC.is_dir():
        return None
    model = bound_cpus(process_tree(model_pid), allowed)
    left = allowed - model
    if not model or not left:
        log.info("the model's processes are bound to %s of CPUs %s: the assistant keeps all of them",
                 sorted(model) or "none", sorted(allowed))
        return None
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), left)
        except OSError:  # a thread that ended meanwhile
            continue
    log.info("the model runs on CPUs %s; the assistant's threads now keep to CPUs %s", sorted(model), sorted(left))
    return left
