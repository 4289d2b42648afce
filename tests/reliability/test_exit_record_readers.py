"""The real wrapper (runtime/wrapper.py) runs a task that fills the small disk its task directory is on: its
exit record, written into the room it set aside, says where the disk was full, and what the SSH and Slurm
backends read of it says "no space left on <that directory>" beside the task's own exit code (the local
backend's reading is tested end to end in test_full_disk.py, SSH's on a real host in tests/ssh)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

from batchai_jupyter.backends import slurm_driver
from batchai_jupyter.ports.compute import exited_status
from batchai_jupyter.runtime import wrapper


def test_the_no_space_exit_record_of_the_real_wrapper_is_read_by_the_ssh_and_slurm_backends(small_disk):
    run_dir = os.path.join(small_disk.path, "run", "task-0")
    os.makedirs(run_dir)
    task = {
        "command": "head -c 20000000 /dev/zero",
        "env": {"PATH": os.environ["PATH"]},
        "cwd": small_disk.path,
        "stdout": os.path.join(small_disk.path, "stdout.txt"),
        "stderr": os.path.join(small_disk.path, "stderr.txt"),
        "heartbeat_seconds": 1,
    }
    with open(os.path.join(run_dir, "task.json"), "w") as handle:
        json.dump(task, handle)
    subprocess.run([sys.executable, "-S", wrapper.__file__, run_dir], check=False, timeout=120)
    assert small_disk.is_full()
    with open(os.path.join(run_dir, "exit")) as handle:
        record = json.load(handle)
    assert record["no_space"] == run_dir, record

    status = exited_status(record)  # the SSH backend's reading of `cat exit` on the host
    assert (status.state, status.exit_code, status.detail) == ("exited", 1, f"no space left on {run_dir}")

    code, no_space = slurm_driver._exit_record(run_dir)  # the Slurm driver's, on the allocation
    failure = slurm_driver._failure("main", SimpleNamespace(name="master", stdout_name="o", stderr_name="e"),
                                    SimpleNamespace(name="n1"), code, no_space)  # fmt: skip
    assert (failure["code"], failure["exit_code"]) == ("JobFailed", 1)
    assert f"exited with code 1 (no space left on {run_dir})" in failure["message"], failure
