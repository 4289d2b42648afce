"""One task of a Slurm job, as an srun step on its node:

    python -S slurm_step.py RUN_DIR

Creates the task's node-local directories, puts the step's own environment (SLURM_*, the node's
PATH...) under the task's variables, and runs the task under the runtime wrapper (shipped beside
this file), which leaves pid / heartbeat / exit files in RUN_DIR on the shared file system.
"""

from __future__ import annotations

import json
import os
import sys

# The directories a task expects to exist on its node (the local backend makes them at provisioning).
NODE_DIRECTORIES = ("AZ_BATCHAI_MOUNT_ROOT", "AZ_BATCHAI_JOB_TEMP", "AZ_BATCHAI_JOB_MOUNT_ROOT")


def main(run_dir: str) -> int:
    task_file = os.path.join(run_dir, "task.json")
    with open(task_file) as handle:
        task = json.load(handle)
    env = {**os.environ, **task["env"]}
    for name in NODE_DIRECTORIES:
        if env.get(name):
            os.makedirs(env[name], exist_ok=True)
    if task.get("cwd"):
        os.makedirs(task["cwd"], exist_ok=True)
    task["env"] = env
    temporary = task_file + ".tmp"
    with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        json.dump(task, handle)
    os.replace(temporary, task_file)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import wrapper  # noqa: E402 (the runtime wrapper, shipped beside this file)

    return wrapper.run(run_dir)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
