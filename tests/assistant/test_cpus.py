"""The assistant keeps off the CPUs a managed vLLM's model is bound to (assistant.llm._cpus).

Each case runs in its own Python process, so that moving threads never touches the
test runner's CPUs. The "model" is a child process that binds one of its threads to
the first CPU, as vLLM's CPU build binds its model worker. tests/test_vllm.py checks
the same with the real vLLM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CPUS = sorted(os.sched_getaffinity(0))

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="CPU placement reads Linux's /proc")


def run(script: str) -> dict:
    """Run ``script`` in a fresh interpreter at the project root; it prints one JSON line."""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def placement_script(bind_to: str) -> str:
    """A process that starts a model stand-in (a parent whose child binds a thread to
    ``bind_to``, as vLLM's server starts its worker), calls keep_off_model_cpus and
    reports where everything runs."""
    return textwrap.dedent(f"""
        import json, os, subprocess, sys, textwrap, threading, time
        from assistant.llm._cpus import keep_off_model_cpus, process_tree
        worker = textwrap.dedent('''
            import os, sys, threading, time
            def bound():
                os.sched_setaffinity(0, {bind_to})
                time.sleep(600)
            threading.Thread(target=bound, daemon=True).start()
            time.sleep(0.5)
            print("bound", flush=True)
            time.sleep(600)
        ''')
        # A parent that starts the worker, as vLLM's server starts its engine and worker.
        parent = subprocess.Popen([sys.executable, "-c",
                                   "import subprocess, sys; subprocess.run([sys.executable, '-c', sys.argv[1]])", worker],
                                  stdout=subprocess.PIPE, text=True)
        assert parent.stdout.readline().strip() == "bound"
        before = threading.Thread(target=time.sleep, args=(5,), daemon=True)
        before.start()
        left = keep_off_model_cpus(parent.pid)
        later = {{}}
        after = threading.Thread(target=lambda: later.update(cpus=sorted(os.sched_getaffinity(0))))
        after.start(); after.join()
        tree = process_tree(parent.pid)
        mine = {{tid: sorted(os.sched_getaffinity(int(tid))) for tid in os.listdir("/proc/self/task")}}
        worker_threads = [sorted(os.sched_getaffinity(int(t))) for pid in tree[1:]
                          for t in os.listdir(f"/proc/{{pid}}/task")]
        for pid in tree[::-1]:
            os.kill(pid, 9)
        print(json.dumps({{"left": sorted(left) if left is not None else None, "tree": len(tree),
                          "mine": list(mine.values()), "later": later["cpus"], "worker": worker_threads}}))
    """)


def test_the_assistant_moves_off_the_model_cpus_and_its_new_threads_follow():
    if len(CPUS) < 2:
        pytest.skip("needs two CPUs: with one, there is no CPU to move to")
    model_cpu = CPUS[0]
    others = [c for c in CPUS if c != model_cpu]

    seen = run(placement_script(f"{{{model_cpu}}}"))

    assert seen["tree"] == 2  # the parent and its child, found through /proc
    assert seen["left"] == others
    assert all(cpus == others for cpus in seen["mine"])  # every thread this process had
    assert seen["later"] == others  # and one started afterwards
    assert [model_cpu] in seen["worker"]  # the model keeps its CPU


def test_a_model_bound_to_every_cpu_changes_nothing():
    """vLLM leaves no CPU free (e.g. a one-CPU machine) or binds nothing: the assistant keeps all."""
    seen = run(placement_script(repr(set(CPUS))))

    assert seen["left"] is None
    assert all(cpus == CPUS for cpus in seen["mine"]) and seen["later"] == CPUS


def test_a_managed_child_started_after_the_move_gets_every_cpu_back():
    """vLLM restarted by the supervisor must bind its model as it did the first time."""
    if len(CPUS) < 2:
        pytest.skip("needs two CPUs: with one, there is no CPU to move to")
    seen = run(textwrap.dedent(f"""
        import json, os, sys
        from assistant.llm._process import Supervised
        from tests.assistant.test_vllm_backend import HEALTH_SERVER
        from tests.conftest import free_port
        port = free_port()
        child = Supervised("child", lambda: [sys.executable, "-c", HEALTH_SERVER, str(port)],
                           f"http://127.0.0.1:{{port}}/health", startup_timeout=30)
        os.sched_setaffinity(0, {{{CPUS[-1]}}})  # the assistant moved off the model's CPUs
        child.start()
        try:
            print(json.dumps({{"child": sorted(os.sched_getaffinity(child.pid)),
                              "mine": sorted(os.sched_getaffinity(0))}}))
        finally:
            child.stop()
    """))

    assert seen == {"child": CPUS, "mine": [CPUS[-1]]}
