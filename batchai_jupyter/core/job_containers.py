"""A job's image on its nodes: detecting each node's runtime, pulling the image before the attempt's tasks
start, and turning each task's launch into one that runs in the image (containers.py writes the scripts and
command lines)."""

from __future__ import annotations

import dataclasses
import functools
import os
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..ports.compute import NodeScript, TaskLaunch
from . import containers, launch, node_view
from .models import ContainerSettings, JobSpec
from .records import Node
from .store import Store

CDI_HINT = "nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml"
TASK_MARKER = "BATCHAI_TASK_DIR"  # runtime/wrapper.py's: what a kill finds a task's processes by
RELAY_VARIABLE = "BATCHAI_MPI_RELAY"  # runtime/mpi_agent.py's: the relay a task's remote shell asks
# How many characters of a failed pull's output its error quotes (the registry's reason is at its end).
REASON_CHARS = 600
# Runs a bash script with its stdin on a node, handing each line of its output to the sink as it comes;
# (exit code, all of the output).
StreamingScript = Callable[[str, str, Callable[[str], None]], tuple[int, str]]


def visible_gpus(spec: JobSpec, info: dict[str, Any]) -> int:
    """The GPUs a task of the job sees on a node (AZ_BATCHAI_NUM_GPUS): in an image, none when the node
    was found to have no way to give its GPUs to containers."""
    facts = info.get("containers")
    if spec.container is None or facts is None or facts.get("gpu"):
        return int(info["gpus"])
    return 0


def image_directory(node: Node) -> str:
    """Where a node keeps what its runtime needs of ours: apptainer's images, the pull's auth files."""
    return os.path.join(node.info["root"], "run", "images")


class JobContainers:
    def __init__(self, store: Store):
        self.store = store

    def settings(self, spec: JobSpec, node: Node) -> containers.RuntimeSettings:
        cluster = self.store.existing_cluster(spec.workspace, spec.cluster)
        facts = node.info.get("containers") or {}
        return containers.runtime_settings(cluster.spec.container_runtime, facts.get("runtimes", ()))

    def pull(
        self,
        spec: JobSpec,
        node_ids: Sequence[int],
        run: Callable[[int], NodeScript],
        log: Callable[[int, str], None],
        streaming: Callable[[int], StreamingScript] | None = None,
    ) -> None:
        """Makes the job's image present on each of its nodes (a node that has it already pulls nothing);
        ContainerError with the runtime's own words when a node cannot get it. With `streaming`, the
        pull's progress reaches the node's log while it pulls, else when it has ended."""
        container = spec.container
        assert container is not None
        for index, node_id in enumerate(node_ids):
            node = self._detected(node_id, run(index))
            settings = self.settings(spec, node)
            gpus = int(node.info.get("gpus", 0))
            if gpus and not (node.info.get("containers") or {}).get("gpu"):
                log(
                    index,
                    f"the node's {gpus} GPU(s) stay outside the container: no CDI spec ({CDI_HINT}), no nvidia hook",
                )
            private = image_directory(node)
            script, stdin = containers.pull_script(settings, container, private, private)
            script = f"mkdir -p -m 700 {shlex.quote(private)} || exit 1\n{script}"
            if streaming is not None:
                code, output = streaming(index)(script, stdin, functools.partial(_log_line, log, index, container))
            else:
                code, output = run(index)(script, stdin)
                for line in _scrub(output, container).strip().splitlines():
                    log(index, line)
            output = _scrub(output, container)
            if code != 0:
                raise containers.ContainerError(
                    f"image {containers.image_reference(container)} could not be pulled on node {node.name} "
                    f"with {settings.name} (exit code {code}): {output.strip()[-REASON_CHARS:]}"
                )

    def _detected(self, node_id: int, run: NodeScript) -> Node:
        """The node, with what it has for containers found once and kept in its info."""
        node = self.store.existing_node(node_id)
        if "containers" not in node.info:
            _code, output = run(containers.DETECT_SCRIPT, "")
            info = dict(node.info, containers=containers.node_facts(output))
            self.store.update("nodes", {"id": node_id}, info=info)
            node = self.store.existing_node(node_id)
        return node

    def task_launch(
        self, spec: JobSpec, node: Node, run_name: str, task: TaskLaunch, env_names: Sequence[str], remote: bool
    ) -> TaskLaunch:
        """`task` run in the job's image: the node's and the job's directories bound at the same paths,
        the task's variables passed by name, the task's marker too (so a kill finds its processes)."""
        container = spec.container
        assert container is not None
        facts = node.info.get("containers") or {}
        gpus, gpu_mode = int(node.info.get("gpus", 0)), str(facts.get("gpu", ""))
        gpu_env = containers.gpu_environment(gpus, gpu_mode)
        relay = node.info.get("mpi_relay") if spec.node_count > 1 else None
        relay_env = {RELAY_VARIABLE: f"batchai-mpi-{run_name}"} if relay else {}
        command = containers.task_command(
            self.settings(spec, node),
            container,
            command=task.command,
            env_names=[*env_names, *gpu_env, *relay_env, TASK_MARKER],
            binds=_remote_binds(node.info["root"], task) if remote else _binds(node.info["root"], task),
            cwd=task.cwd,
            name=run_name,
            cache_dir=image_directory(node),
            gpus=gpus,
            gpu_mode=gpu_mode,
        )
        if relay:  # mpirun in this container starts ranks in the other nodes' containers through it
            command = "exec " + shlex.join([*relay, relay_env[RELAY_VARIABLE]]) + " " + command.removeprefix("exec ")
        return dataclasses.replace(task, command=command, env={**task.env, **gpu_env, **relay_env}, in_container=True)

    def mpi_peer_commands(
        self,
        job_uuid: str,
        attempt: int,
        context: launch.JobContext,
        nodes: Sequence[launch.NodeContext],
        rows: Sequence[Node],
        node_paths: Callable[[int], node_view.NodePath] | None = None,
    ) -> list[dict[str, list[str]]]:
        """Per node of the job, the command line (less the shell command, its last word) that runs what
        mpirun's remote shell asks for in the job's image as that node ("container"): its directories
        bound, its own variables passed by name (the rest mpirun forwards to the ranks itself). With
        `node_paths` (nodes that are other machines), the directories as each host sees them, and how the
        master's host reaches the others (its node info "mpi_ssh" and theirs to it, "ssh")."""
        spec = context.spec
        assert spec.container is not None
        own = launch.node_specific_environment(context, nodes)
        entries = []
        for node, row, names in zip(nodes, rows, own, strict=True):
            if node_paths is None:
                env = launch.node_environment(context, nodes, node)
                # every node's bin too: mpirun hands its remote shell (in the master's) to the daemons
                tools = [other.bin_dir for other in nodes if other.bin_dir]
                paths = [row.info["root"], node.job_temp, context.stdouterr_dir, *tools, *_named_paths(env)]
                binds = _existing_binds(paths, env)
            else:
                seen = node_view.as_seen_on(context, node_paths(node.index))
                env = launch.node_environment(seen, nodes, node)
                binds = containers.covering_paths([row.info["root"], node.job_temp, *_named_paths(env)])
            argv = containers.run_argv(
                self.settings(spec, row),
                spec.container,
                env_names=[*names, TASK_MARKER],
                binds=binds,
                cwd=node.job_temp,
                name=container_name(job_uuid, attempt, f"mpi-{node.index}"),
                cache_dir=image_directory(row),
            )
            entry = {"container": argv}
            if node_paths is not None and node.index and rows[0].info.get("mpi_ssh"):
                # the peer's directories are there before its container binds them
                entry["container"] = ["/bin/sh", "-c", 'mkdir -p "$0" && exec "$@"', node.job_temp, *argv]
                entry["ssh"] = [*rows[0].info["mpi_ssh"], node.mpi_host]
            entries.append(entry)
        return entries


def _binds(node_root: str, task: TaskLaunch) -> list[str]:
    """What the container must see at the same paths: the node's sandbox, every directory the contract's
    variables name (inputs, outputs, stdouterr, shared temp, ...) and what the job's mounts link to."""
    paths = [node_root, task.cwd, os.path.dirname(task.stdout), os.path.dirname(task.stderr), *_named(task)]
    return _existing_binds(paths, task.env)


def _existing_binds(paths: list[str], env: Mapping[str, str]) -> list[str]:
    for root in (env.get("AZ_BATCHAI_MOUNT_ROOT", ""), env.get("AZ_BATCHAI_JOB_MOUNT_ROOT", "")):
        paths = [*paths, *_link_targets(root)]
    return containers.covering_paths(path for path in paths if os.path.exists(path))


def _remote_binds(node_root: str, task: TaskLaunch) -> list[str]:
    """The same for a node that is another machine: the backend made its directories and staged its
    inputs and mounts there (copies, not links); what the variables name outside the node's root is on a
    file system the hosts share."""
    return containers.covering_paths([node_root, task.cwd, *_named(task)])


def _named(task: TaskLaunch) -> list[str]:
    return _named_paths(task.env)


def _named_paths(env: Mapping[str, str]) -> list[str]:
    """The paths the contract's variables name (AZ_BATCHAI_INPUT_*, _OUTPUT_*, _STDOUTERR_DIR, ...)."""
    return [value for name, value in env.items() if name.startswith("AZ_BATCHAI_") and value.startswith("/")]


def _link_targets(root: str) -> list[str]:
    targets: list[str] = []
    for directory, dirs, files in os.walk(root) if root else ():
        # never into a mount (a Blob container, a share): it is seen through the node's own bind
        dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(directory, d))]
        for entry in dirs + files:
            path = os.path.join(directory, entry)
            if os.path.islink(path):
                targets.append(os.path.realpath(path))
    return targets


def run_here_streaming(script: str, stdin: str, sink: Callable[[str], None]) -> tuple[int, str]:
    """A StreamingScript for a node that is this machine."""
    process = subprocess.Popen(
        ["/bin/bash", "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write(stdin)
        process.stdin.close()
    except BrokenPipeError:  # the script ended without reading it
        pass
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.strip():
            sink(line.rstrip())
    return process.wait(), "".join(lines)


def _log_line(log: Callable[[int, str], None], index: int, container: ContainerSettings, line: str) -> None:
    log(index, _scrub(line, container))


def _scrub(text: str, container: ContainerSettings) -> str:
    return text.replace(container.password, "***") if container.password else text


def container_name(job_uuid: str, attempt: int, task_name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "_.-" else "-" for c in task_name)
    return f"batchai-{job_uuid[:12]}-{attempt}-{safe}"
