"""The embedded default: a cluster of N nodes on this machine.

Each node is a sandbox directory with its own loopback address (127.h.x.y, where h comes from the
service's home and x.y from the node's id, so TensorFlow's per-node ports 2222/2223 collide neither
between nodes nor between two services on one machine) and its own CPU slots. Tasks run as
detached process groups under the runtime wrapper, each inside bubblewrap where it can run
(local_sandbox.py: what a task sees there), with a clean environment (ports/compute.task_base_env).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..ports.compute import (
    BackendContext,
    ChecksClusters,
    ClusterRef,
    ClusterSpecRef,
    ComputeBackend,
    LoadSample,
    NodeExec,
    NodeLoad,
    NodePlacement,
    NodeRef,
    TaskLaunch,
    TaskStatus,
    task_base_env,
)
from ..runtime import mpi_agent, wrapper
from ..storage.native_mounts import mount_points_under, run_local_script, unmount_under_script
from . import local_sandbox
from .local_launcher import Launcher
from .local_load import LocalLoad

MPI_AGENT_PATH = os.path.abspath(mpi_agent.__file__)
log = logging.getLogger("batchai")
# A task whose wrapper never wrote its pid within this long after launch is lost.
START_GRACE_SECONDS = 15.0


def node_address(node_id: int, home: str = "") -> str:
    """127.h.x.y: h (1..254) from the home, x.y from the node id (ids past 65535 wrap)."""
    home_byte = 1 + hashlib.sha256(os.path.realpath(home).encode()).digest()[0] % 254 if home else 1
    return str(ipaddress.IPv4Address((127 << 24) + (home_byte << 16) + node_id % 65536))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(run_dir: str) -> int | None:
    try:
        with open(os.path.join(run_dir, "pid")) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def _mpi_tools(root: str) -> dict:
    """The node's bin/mpirun and the variables that make OpenMPI start ranks as the node they name.

    The agent is copied into the node (it is seen at the same path in a job's container) and started by
    the service's Python, or by the image's own in a container (where the service's is not)."""
    bin_dir = os.path.join(root, "bin")
    os.makedirs(bin_dir, exist_ok=True)
    agent = os.path.join(bin_dir, "mpi_agent.py")
    shutil.copyfile(MPI_AGENT_PATH, agent)
    python = f'py="{sys.executable}"; [ -x "$py" ] || py=$(command -v python3 || command -v python)\n'
    for name, mode in (("mpirun", "--mpirun"), ("mpi-rsh", "--rsh")):
        script = os.path.join(bin_dir, name)
        with open(script, "w") as handle:
            handle.write(f'#!/bin/sh\n{python}exec "$py" -S "{agent}" {mode} "$@"\n')
        os.chmod(script, 0o755)
    return {
        "bin": bin_dir,
        "env": {"OMPI_MCA_plm_rsh_agent": os.path.join(bin_dir, "mpi-rsh"), "BATCHAI_NODE_BIN": bin_dir},
        # what runs a task's container and starts ranks in the other nodes' containers (mpi_agent.relay)
        "mpi_relay": [sys.executable, "-S", agent, "--relay"],
    }


class LocalBackend(ComputeBackend, NodeExec, NodeLoad, ChecksClusters):
    name = "local"

    def __init__(
        self,
        node_root: Callable[[ClusterRef, NodeRef], str],
        heartbeat_seconds: float = 2.0,
        home: str = "",
        options: Mapping[str, Any] | None = None,
    ):
        self._node_root = node_root
        self._home = home
        self._options = dict(options or {})
        self._hidden = local_sandbox.hidden_paths(home) if home else []
        self._heartbeat_seconds = heartbeat_seconds
        self._wakeup: Callable[[], None] = lambda: None
        self._launcher = Launcher(lambda: self._wakeup())
        self._load = LocalLoad()

    def set_wakeup(self, callback: Callable[[], None]) -> None:
        self._wakeup = callback

    def close(self) -> None:
        self._launcher.close()

    def check_cluster(self, spec: ClusterSpecRef) -> None:
        """Refuses a cluster that requires the sandbox where bwrap cannot run; says loudly when its tasks
        will run without one."""
        isolation = local_sandbox.isolation(local_sandbox.mode(self._options, spec.backend_options))
        if isolation == "none":
            why = local_sandbox.bwrap_problem() or "backendOptions.sandbox is off"
            log.warning(
                "batchai: a local cluster's tasks run UNSANDBOXED (isolation: none): %s. They can read the "
                "service's home, its store and every job's files; backendOptions.sandbox: required refuses this",
                why,
            )

    def provision(self, cluster: ClusterRef, node: NodeRef) -> NodePlacement:
        isolation = local_sandbox.isolation(local_sandbox.mode(self._options, cluster.spec.backend_options))
        root = self._node_root(cluster, node)
        for sub in ("mounts", "jobs", "run"):
            os.makedirs(os.path.join(root, sub), exist_ok=True)
        spec = cluster.spec
        cpus = int(spec.cpus_per_node or 1)
        gpus = int(spec.gpus_per_node or 0)
        address = node_address(node.id, self._home)
        # Its address is its MPI host name too: OpenMPI starts ranks there through our remote shell, as
        # the node (runtime/mpi_agent.py), and the node's `mpirun` understands -hosts $AZ_BATCH_HOST_LIST.
        return NodePlacement(address, address, cpus, gpus, root, extra={**_mpi_tools(root), "isolation": isolation})

    def release(self, cluster: ClusterRef, node: NodeRef) -> None:
        root = self._node_root(cluster, node)
        self._load.forget(root)
        code, output = run_local_script(unmount_under_script(root)) if mount_points_under(root) else (0, "")
        if mount_points_under(root):  # removing the tree would delete what the storage holds
            log.warning(
                "batchai: node %s keeps %s: something is still mounted there (%s)",
                node.name,
                root,
                output.strip()[-300:],
            )
            return
        if code != 0:
            log.warning("batchai: node %s: %s", node.name, output.strip()[-300:])
        shutil.rmtree(root, ignore_errors=True)

    def node_load(self, node: NodeRef) -> LoadSample | None:
        root = node.info.get("root")
        return self._load.sample(root) if root else None

    def start_task(self, node: NodeRef, run_dir: str, launch: TaskLaunch) -> None:
        os.makedirs(run_dir, exist_ok=True)
        task = {
            "command": launch.command,
            "env": dict(launch.env),
            "cwd": launch.cwd,
            "stdout": launch.stdout,
            "stderr": launch.stderr,
            "heartbeat_seconds": self._heartbeat_seconds,
        }
        if launch.exclusive:  # this machine's nodes share it: one lock for all of them (and other services)
            task["lock"] = os.path.join(tempfile.gettempdir(), f"batchai-{launch.exclusive}.lock")
        if self._isolation(node) == "bwrap" and not launch.in_container:  # an image isolates its task itself
            # What the service says the task needs, never what the task's variables or links (which a
            # task may have written) name.
            root = node.info.get("root", "")
            visible = [root, launch.cwd, os.path.dirname(launch.stdout), os.path.dirname(launch.stderr)]
            visible += [directory.on_node for directory in launch.directories]
            # Its node's run/ holds the task files (with their secret values) of other jobs of the node.
            hidden = [*self._hidden, os.path.join(root, "run")] if root else self._hidden
            task["sandbox"] = local_sandbox.argv(visible, hidden, launch.cwd)
        # Whole or not at all: a wrapper that a dead service handed the task to may be taking it up now.
        task_file = os.path.join(run_dir, "task.json")
        descriptor = os.open(task_file + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(json.dumps(task))  # json.dump would encode in Python, a write per piece
        os.replace(task_file + ".tmp", task_file)
        self._launcher.launch(run_dir)

    def _isolation(self, node: NodeRef) -> str:
        """The node's, as provisioned; a node placed before sandboxes were made gets one where bwrap runs
        (unless the service's options say sandbox: off)."""
        isolation = node.info.get("isolation")
        if isolation is None:
            off = local_sandbox.mode(self._options, None) == "off"
            isolation = "bwrap" if not off and local_sandbox.bwrap_problem() is None else "none"
        return str(isolation)

    def task_started(self, node: NodeRef, run_dir: str) -> bool:
        """A task.json alone was handed to no wrapper yet, or to one of a launcher a dead service left,
        which then may still take it up: handing it over again is safe (the first to rename it runs it)."""
        if self._launcher.running(run_dir):
            return True
        return any(os.path.exists(os.path.join(run_dir, name)) for name in ("pid", "exit", wrapper.TASK_CLAIMED))

    def poll_task(self, node: NodeRef, run_dir: str, launched_at: float) -> TaskStatus:
        exit_file = os.path.join(run_dir, "exit")
        try:
            with open(exit_file) as handle:
                record = json.load(handle)
            no_space = f"no space left on {record['no_space']}" if record.get("no_space") else ""
            return TaskStatus("exited", int(record["exit_code"]), no_space)
        except FileNotFoundError:
            pass
        if self._launcher.running(run_dir):
            return TaskStatus("running")
        pid = _read_pid(run_dir)
        if pid is not None and _pid_alive(pid):
            return TaskStatus("running")
        if os.path.exists(exit_file):  # it finished between the two checks
            return self.poll_task(node, run_dir, launched_at)
        if pid is None and time.time() - launched_at < START_GRACE_SECONDS:
            return TaskStatus("running")
        return TaskStatus("lost", None, "the task's wrapper process is gone without recording an exit code")

    def kill_task(self, node: NodeRef, run_dir: str, force: bool = False) -> None:
        """Signals the task whole: its process group and whatever it started that left it (the
        wrapper's marker); with force also after the task exited, for what it left running."""
        wrapper.kill_task_processes(run_dir, signal.SIGKILL if force else signal.SIGTERM)

    def exec(self, node: NodeRef, command: str, timeout: float = 300.0) -> tuple[int, str, str]:
        """`cluster node exec` / `job node exec`: `command` in the node's sandbox, as the node: its address
        (AZ_BATCHAI_NODE_IP, where its jobs listen), name and mount root. A command still running at
        `timeout` is killed whole and ends with 124, as timeout(1) does."""
        root = node.info["root"]
        env = task_base_env(os.environ)
        env.update(
            AZ_BATCHAI_NODE_NAME=node.name,
            AZ_BATCHAI_NODE_IP=node.ip,
            AZ_BATCHAI_MOUNT_ROOT=os.path.join(root, "mounts"),
        )
        child = subprocess.Popen(
            ["/bin/bash", "-c", command],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            out, err = child.communicate()
            err += f"batchai: the command ran past its timeout of {timeout:g}s and was killed\n".encode()
            return 124, out.decode(errors="replace"), err.decode(errors="replace")
        return child.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    def write_text(self, node: NodeRef, path: str, text: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(text)


def create(context: BackendContext) -> LocalBackend:
    layout = context.layout

    def node_root(cluster: ClusterRef, node: NodeRef) -> str:
        return layout.local_node(cluster.workspace, cluster.name, node.name)

    local_sandbox.mode(context.options, None)  # a wrong service-wide setting stops the service at its start
    return LocalBackend(node_root, context.heartbeat_seconds, layout.root, context.options)


def kill_unfinished_tasks(nodes_dir: str) -> None:
    """SIGKILLs every process of every task under `nodes_dir` that started: what a test or
    benchmark left behind when it stopped its service mid-job."""
    for root, dirs, files in os.walk(nodes_dir):
        # never into a mount: a container holds no task of ours, and walking it may be slow or hang
        dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(root, d))]
        if "pid" in files:
            wrapper.kill_task_processes(root, signal.SIGKILL)
