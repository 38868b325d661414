"""Killing the rendering command (SIGKILL of the parent) leaves no orphan worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import multiprocessing, sys, time
    from sealbill.documents.render import render_many
    from tests.unit.documents.samples import domestic
    rendered = render_many(iter([domestic()] * 400), workers=2, chunk_size=1)
    next(rendered)  # the pool is up and working
    print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
    for _ in rendered:
        pass
    time.sleep(60)
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split(") ")[1].startswith("Z"))


def test_render_workers_exit_when_their_parent_is_killed() -> None:
    root = Path(__file__).parents[2]
    env = {**os.environ, "PYTHONPATH": f"{root / 'src'}{os.pathsep}{root}"}
    parent = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE,
                              text=True, env=env, cwd=root)
    workers: list[int] = []
    try:
        assert parent.stdout is not None
        workers = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(workers) >= 2 and all(_alive(pid) for pid in workers)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in workers)
    finally:
        parent.kill()
        for pid in workers:  # on failure, the orphans this test made go too
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
