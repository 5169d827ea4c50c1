"""Worker processes of the local runner end when the process that started them dies."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PARENT = '''
import os, sys, time
from pathlib import Path
from cvgr.experiments.runner import run_jobs

def slow(job, root, options):
    Path(root, "pid-" + job["id"]).write_text(str(os.getpid()))
    time.sleep(300)
    return {"id": job["id"], "seconds": 0.0, "summary": {}}

if __name__ == "__main__":
    jobs = [{"id": f"j{i}", "task": "evaluate", "config": {}, "deps": [], "cost": 1.0}
            for i in range(2)]
    run_jobs(jobs, sys.argv[1], 2, execute_fn=slow, log=lambda m: None)
'''


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_killed_parent_takes_its_workers_along(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    root = tmp_path / "root"
    root.mkdir()
    parent = subprocess.Popen([sys.executable, str(script), str(root)])
    try:
        deadline = time.monotonic() + 120
        while len(list(root.glob("pid-*"))) < 2:
            assert parent.poll() is None, "the parent exited early"
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.2)
        pids = [int(p.read_text()) for p in root.glob("pid-*")]
        assert all(_alive(p) for p in pids)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 15
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [p for p in pids if _alive(p)]
    finally:
        if parent.poll() is None:
            parent.kill()
    for p in left:  # clean up before failing
        os.kill(p, signal.SIGKILL)
    assert not left, f"workers {left} outlived their killed parent"
