"""The directories a task is given on a node that sees the service's files: its node's sandbox, its working
directory and log directories, every directory the contract's variables name (AZ_BATCHAI_INPUT_*,
_OUTPUT_*, _STDOUTERR_DIR, _SHARED_JOB_TEMP, ...) and what the job's mounts link to. A container binds
them (core/job_containers.py); the local backend's sandbox shows them and hides the rest of the service's
home (backends/local_sandbox.py)."""

from __future__ import annotations

import os

from .compute import TaskLaunch


def contract_paths(task: TaskLaunch) -> list[str]:
    """The paths the contract's variables name (AZ_BATCHAI_INPUT_*, _OUTPUT_*, _STDOUTERR_DIR, ...)."""
    return [value for name, value in task.env.items() if name.startswith("AZ_BATCHAI_") and value.startswith("/")]


def link_targets(root: str) -> list[str]:
    """Where the links under `root` (a mount root: a job's mounts link to datastores) lead."""
    targets: list[str] = []
    for directory, dirs, files in os.walk(root) if root else ():
        # never into a mount (a Blob container, a share): it is seen through the node's own bind
        dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(directory, d))]
        for entry in dirs + files:
            path = os.path.join(directory, entry)
            if os.path.islink(path):
                targets.append(os.path.realpath(path))
    return targets


def task_paths(node_root: str, task: TaskLaunch) -> list[str]:
    """Every directory the task must see at its own path, on a node that is this machine."""
    paths = [node_root, task.cwd, os.path.dirname(task.stdout), os.path.dirname(task.stderr), *contract_paths(task)]
    for root in (task.env.get("AZ_BATCHAI_MOUNT_ROOT", ""), task.env.get("AZ_BATCHAI_JOB_MOUNT_ROOT", "")):
        paths += link_targets(root)
    return paths
