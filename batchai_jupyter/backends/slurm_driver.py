"""The batch script of every job we hand to Slurm: runs on the allocation's first node as

    python -S slurm_driver.py CONTROL_DIR

Stdlib-only, like the runtime wrapper; the backend copies it to the shared file system next to the
wrapper, slurm_step.py and a copy of core/launch.py + core/models.py (package `batchai_launch`), so
the task plans are built by the very code the local backend uses: the same AZ_BATCHAI_* contract,
TF_CONFIG, MASTER_ADDR (the allocation's first node), hostfile and stdout/stderr names.

CONTROL_DIR (on the shared file system) holds, written by the service:
    job.json       the job's launch context without nodes and secrets, and where things live
    secrets.json   the secret values (mode 600), deleted as soon as they are read
and, written here:
    started.json   {"nodes": [...], "time": t} once the allocation is known
    tasks.json     every task of the attempt so far: name, node, phase, role, rank, log names
    runs/<task>/   the wrapper's pid / heartbeat / exit files, one per task
    result.json    {"state": "succeeded" | "failed", "exit_code": n, "error": {...}}

Each task is one `srun` step on its node (`srun --overlap -N1 -n1 -w NODE python slurm_step.py
RUN_DIR`); the job ends as JobRunner.advance decides: the first failed task fails it, the end of all
required tasks (parameter servers never end) succeeds it. Slurm ends any step still running when
this script exits. In a job's image, the master's task of a job of several nodes runs under the MPI
agent's relay (shipped beside this file), which starts mpirun's daemons in the other nodes' containers
as srun steps (mpi-nodes.json in the shared job temp says how).
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time

POLL_SECONDS = 0.05
# The key of a job's registry password in secrets.json (apart from the job's secret variables).
REGISTRY_SECRET = "registry-password"
# How many characters of a failed pull's output its error quotes (the registry's reason is at its end).
REASON_CHARS = 600
# runtime/mpi_agent.py's: the relay a task's remote shell asks, and the file that says how to reach each node.
RELAY_VARIABLE = "BATCHAI_MPI_RELAY"
MPI_NODES_FILE = "mpi-nodes.json"


def _read_json(path: str):
    with open(path) as handle:
        return json.load(handle)


def _write_json(path: str, value, mode: int = 0o644) -> None:
    temporary = path + ".tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(value, handle)
    os.replace(temporary, path)


def _hostnames(nodelist: str) -> list[str]:
    if not any(char in nodelist for char in "[],"):
        return [nodelist]  # one node: nothing to expand
    out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True)
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def _addresses(names: list[str], known: dict) -> dict[str, str]:
    """Each node's NodeAddr (what other nodes reach it at): from the service's last `sinfo` when it
    knew them all, else from one `scontrol show node`."""
    if all(name in known for name in names):
        return {name: known[name] for name in names}
    out = subprocess.run(["scontrol", "show", "node", "--oneliner", ",".join(names)], capture_output=True, text=True)
    addresses = {}
    for line in out.stdout.splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        if fields.get("NodeName"):
            addresses[fields["NodeName"]] = fields.get("NodeAddr") or fields["NodeName"]
    return {name: addresses.get(name, name) for name in names}


def _cpus_per_node(text: str, count: int) -> list[int]:
    """SLURM_JOB_CPUS_PER_NODE ("2(x3),1") as one number per node."""
    cpus: list[int] = []
    for part in (text or "").split(","):
        if not part:
            continue
        if "(x" in part:
            number, repeat = part.rstrip(")").split("(x")
            cpus.extend([int(number)] * int(repeat))
        else:
            cpus.append(int(part))
    return (cpus + [1] * count)[:count]


def _free_port(address: str) -> int:
    with socket.socket() as probe:
        try:
            probe.bind((address, 0))
        except OSError:
            probe.bind(("", 0))
        return probe.getsockname()[1]


def _job_spec(models, data: dict, secrets: dict):
    values = {k: v for k, v in data.items() if k in models.JobSpec.__dataclass_fields__}
    values["toolkit"] = models.ToolkitSettings(
        **{k: v for k, v in values["toolkit"].items() if k in models.ToolkitSettings.__dataclass_fields__}
    )
    values["input_directories"] = [models.InputDirectory(**d) for d in values.get("input_directories", [])]
    values["output_directories"] = [models.OutputDirectory(**d) for d in values.get("output_directories", [])]
    secrets = dict(secrets)
    password = secrets.pop(REGISTRY_SECRET, "")
    if values.get("container"):
        values["container"] = models.ContainerSettings(**{**values["container"], "password": password})
    values["secrets"] = secrets
    return models.JobSpec(**values)


class Driver:
    def __init__(self, control: str):
        self.control = control
        self.job = _read_json(os.path.join(control, "job.json"))
        secrets_file = os.path.join(control, "secrets.json")
        self.secrets = _read_json(secrets_file) if os.path.exists(secrets_file) else {}
        if os.path.exists(secrets_file):
            os.unlink(secrets_file)
        sys.path.insert(0, self.job["runtime"])
        from batchai_launch import containers, launch, models  # noqa: E402 (shipped next to this file)

        self.launch = launch
        self.containers = containers
        self.node_settings: dict = {}  # node name -> (runtime settings, node facts), for a job in an image
        self.manifest: list[dict] = []
        self.stopped: list[str] = []  # tasks ended by us (parameter servers, the rest of a failed phase)
        names = _hostnames(os.environ["SLURM_JOB_NODELIST"])
        addresses = _addresses(names, self.job.get("node_addresses") or {})
        cpus = _cpus_per_node(os.environ.get("SLURM_JOB_CPUS_PER_NODE", ""), len(names))
        data = dict(self.job["context"])
        spec = _job_spec(models, data.pop("spec"), self.secrets)
        data.pop("node_base_env", None)
        data["master_port"] = _free_port(addresses[names[0]])
        # MPI in a job's image: mpirun in the master's container has no srun; its remote shell asks the relay
        # the master's task runs under, which starts each daemon in its node's container (runtime/mpi_agent.py).
        self.agent = os.path.join(self.job["runtime"], "mpi_agent.py")
        in_image_mpi = spec.container is not None and len(names) > 1
        node_env = {"OMPI_MCA_plm_rsh_agent": f"python3 -S {self.agent} --rsh", "OMPI_MCA_plm_rsh_args": ""}
        self.context = launch.JobContext(spec=spec, node_base_env=dict(os.environ), **data)
        self.nodes = [
            launch.node_context(
                name=name,
                index=index,
                ip=addresses[name],
                mpi_host=name,
                cpus=cpus[index],
                gpus=int(self.job["gpus_per_node"]),
                root=self.job["node_root"].replace("NODE", name),
                workspace=spec.workspace,
                experiment=spec.experiment,
                job=spec.name,
                env=node_env if in_image_mpi else None,
            )
            for index, name in enumerate(names)
        ]

    # -- the attempt -------------------------------------------------------------------------------

    def run(self) -> int:
        context = self.context
        for path in (context.stdouterr_dir, context.shared_job_temp, *context.output_paths.values()):
            if os.path.isabs(path):  # not an output under a mount root ($AZ_BATCHAI_JOB_MOUNT_ROOT/...)
                os.makedirs(path, exist_ok=True)
        with open(context.hostfile, "w") as handle:
            handle.write(self.launch.hostfile_text(context, self.nodes))
        _write_json(
            os.path.join(self.control, "started.json"), {"nodes": [n.name for n in self.nodes], "time": time.time()}
        )
        if context.spec.container is not None:
            failure = self._pull_image()
            if failure:
                return self._finish("failed", failure)
            if len(self.nodes) > 1:
                self._write_mpi_nodes()
        prep = self.launch.plan_job_preparation(context, self.nodes)
        if prep:
            failure = self._run_phase("prep", prep)
            if failure:
                return self._finish("failed", failure)
        failure = self._run_phase("main", self.launch.plan_tasks(context, self.nodes))
        return self._finish("failed", failure) if failure else self._finish("succeeded", None)

    def _finish(self, state: str, failure: dict | None) -> int:
        code = 0 if failure is None else failure.pop("exit_code", None)
        _write_json(
            os.path.join(self.control, "result.json"),
            {"state": state, "exit_code": code, "error": failure, "stopped": self.stopped},
        )
        return 0 if state == "succeeded" else 1

    def _run_phase(self, phase: str, plans: list) -> dict | None:
        """Starts one srun step per plan; returns the first failure, or None when the phase succeeded."""
        steps = {}
        for plan in plans:
            node = self.nodes[plan.node_index]
            run_dir = os.path.join(self.control, "runs", plan.name)
            # Never the control directory itself: it is gone when the job was deleted (the service forgot the
            # attempt), and then the attempt must end here rather than make it again, for nobody to remove.
            for directory in (os.path.dirname(run_dir), run_dir):
                try:
                    os.mkdir(directory)
                except FileExistsError:
                    pass
            for leftover in ("exit", "pid", "heartbeat"):
                if os.path.exists(os.path.join(run_dir, leftover)):
                    os.unlink(os.path.join(run_dir, leftover))
            command, env = plan.command, dict(plan.env)
            if self.context.spec.container is not None:
                command, env = self._in_image(plan, node, command, env)
            _write_json(
                os.path.join(run_dir, "task.json"),
                {
                    "command": command,
                    "env": env,
                    "cwd": node.job_temp,
                    "stdout": os.path.join(self.context.stdouterr_dir, plan.stdout_name),
                    "stderr": os.path.join(self.context.stdouterr_dir, plan.stderr_name),
                    "heartbeat_seconds": 5,
                },
                mode=0o600,
            )
            self.manifest.append(
                {
                    "name": plan.name,
                    "node": node.name,
                    "phase": phase,
                    "role": plan.role,
                    "rank": plan.index,
                    "required": plan.required,
                    "stdout": plan.stdout_name,
                    "stderr": plan.stderr_name,
                    "launched": time.time(),
                }
            )
            steps[plan.name] = (
                plan,
                node,
                run_dir,
                subprocess.Popen(
                    [
                        "srun",
                        "--overlap",
                        "--nodes=1",
                        "--ntasks=1",
                        f"--nodelist={node.name}",
                        f"--job-name={plan.name}",
                        "--quiet",
                        self.job["python"],
                        "-S",
                        os.path.join(self.job["runtime"], "slurm_step.py"),
                        run_dir,
                    ],
                    stdin=subprocess.DEVNULL,
                ),
            )
            self._log(node, f"{phase} task {plan.name} ({plan.role}) started")
        _write_json(os.path.join(self.control, "tasks.json"), self.manifest)
        return self._wait(phase, steps)

    # -- jobs in images --------------------------------------------------------------------------

    def _on_node(self, node, script: str, stdin: str = "", sink=None) -> tuple[int, str]:
        """Runs a bash script on one node of the allocation, as an srun step; each line of its output
        (stdout and stderr as one) goes to `sink` as it comes."""
        argv = ["srun", "--overlap", "--nodes=1", "--ntasks=1", f"--nodelist={node.name}", "--quiet", "--unbuffered"]
        process = subprocess.Popen(
            [*argv, "bash", "-c", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        try:
            process.stdin.write(stdin)
            process.stdin.close()
        except BrokenPipeError:  # the script ended without reading it
            pass
        lines = []
        for line in process.stdout:
            lines.append(line)
            if sink is not None and line.strip():
                sink(line.rstrip())
        return process.wait(), "".join(lines)

    def _pull_image(self) -> dict | None:
        """Makes the job's image present on every node of the allocation (as JobContainers.pull does on a
        node-pool backend's nodes); the failure that ends the attempt, with the runtime's own words."""
        containers, container = self.containers, self.context.spec.container
        for node in self.nodes:
            facts = containers.node_facts(self._on_node(node, containers.DETECT_SCRIPT)[1])
            try:
                settings = containers.runtime_settings(self.job.get("container_runtime"), facts["runtimes"])
            except containers.ContainerError as error:
                return {"code": "ImagePullFailed", "exit_code": None, "message": f"node {node.name}: {error}"}
            self.node_settings[node.name] = (settings, facts)
            private = f"{os.path.dirname(node.mount_root)}/run/images"
            script, stdin = containers.pull_script(settings, container, private, private)
            scrub = (lambda text: text.replace(container.password, "***")) if container.password else str
            code, output = self._on_node(
                node,
                f"mkdir -p -m 700 {shlex.quote(private)} || exit 1\n{script}",
                stdin,
                lambda line, node=node, scrub=scrub: self._log(node, scrub(line)),
            )
            output = scrub(output)
            if code != 0:
                reference = containers.image_reference(container)
                return {
                    "code": "ImagePullFailed",
                    "exit_code": None,
                    "message": f"image {reference} could not be pulled on node {node.name} with {settings.name} "
                    f"(exit code {code}): {output.strip()[-REASON_CHARS:]}",
                }
        return None

    def _in_image(self, plan, node, command: str, env: dict) -> tuple[str, dict]:
        """The task's command line and variables for its run in the job's image (JobContainers.task_launch);
        on the master of a job of several nodes, under the relay that starts mpirun's daemons on the others."""
        containers = self.containers
        settings, facts = self.node_settings[node.name]
        root = os.path.dirname(node.mount_root)
        gpu_env = containers.gpu_environment(node.gpus, facts["gpu"])
        relay = node.index == 0 and len(self.nodes) > 1
        relay_env = {RELAY_VARIABLE: f"batchai-mpi-{os.path.basename(self.control)}-{plan.name}"} if relay else {}
        wrapped = containers.task_command(
            settings,
            self.context.spec.container,
            command=command,
            env_names=[*env, *gpu_env, *relay_env, "BATCHAI_TASK_DIR"],
            binds=self._binds(node, env),
            cwd=node.job_temp,
            name=f"batchai-{os.path.basename(self.control)}-{plan.name}",
            cache_dir=f"{root}/run/images",
            gpus=node.gpus,
            gpu_mode=facts["gpu"],
        )
        if relay:
            relay_argv = [self.job["python"], "-S", self.agent, "--relay", relay_env[RELAY_VARIABLE]]
            wrapped = "exec " + shlex.join(relay_argv) + " " + wrapped.removeprefix("exec ")
        return wrapped, {**env, **gpu_env, **relay_env}

    def _binds(self, node, env: dict) -> list[str]:
        """The node's directories (slurm_step makes them there), what the shared file system has that the
        variables name, and our runtime (the MPI agent, which mpirun in the image runs)."""
        root = os.path.dirname(node.mount_root)
        named = [value for name, value in env.items() if name.startswith("AZ_BATCHAI_") and value.startswith("/")]
        paths = [root, *named, *([self.job["runtime"]] if len(self.nodes) > 1 else [])]
        return [p for p in self.containers.covering_paths(paths) if p == root or os.path.exists(p)]

    def _write_mpi_nodes(self) -> None:
        """mpi-nodes.json for the relay (JobContainers.mpi_peer_commands): each node's container command
        line; another node's run there as an srun step of the allocation, as Slurm sites start daemons."""
        containers, context = self.containers, self.context
        entries = []
        for node, names in zip(self.nodes, self.launch.node_specific_environment(context, self.nodes), strict=True):
            settings, _facts = self.node_settings[node.name]
            argv = containers.run_argv(
                settings,
                context.spec.container,
                env_names=[*names, "BATCHAI_TASK_DIR"],
                binds=self._binds(node, self.launch.node_environment(context, self.nodes, node)),
                cwd=node.job_temp,
                name=f"batchai-{os.path.basename(self.control)}-mpi-{node.index}",
                cache_dir=f"{os.path.dirname(node.mount_root)}/run/images",
            )
            # the node's directories are there before its container binds them (no task of its own made them)
            entry = {"container": ["/bin/sh", "-c", 'mkdir -p "$0" && exec "$@"', node.job_temp, *argv]}
            if node.index:
                step = ["srun", "--overlap", "--nodes=1", "--ntasks=1", f"--nodelist={node.name}", "--quiet"]
                entry["ssh"] = [*step, "/bin/sh", "-c"]  # the relay hands it the command line as one word
            entries.append(entry)
        with open(os.path.join(context.shared_job_temp, MPI_NODES_FILE), "w") as handle:
            handle.write(self.launch.mpi_nodes_text(context, self.nodes, entries))

    def _wait(self, phase: str, steps: dict) -> dict | None:
        running = dict(steps)
        ended_any = True
        while True:
            if not ended_any:  # woken by a child that is not a step of this phase
                time.sleep(POLL_SECONDS)
            ended_any = False
            for name, (plan, node, run_dir, process) in list(running.items()):
                if process.poll() is None:
                    continue
                ended_any = True
                del running[name]
                code, no_space = _exit_record(run_dir)
                if code != 0:
                    self._stop(running)
                    return _failure(phase, plan, node, code, no_space)
            if not any(plan.required for plan, *_ in running.values()):
                self._stop(running)  # parameter servers never end by themselves
                return None
            _wait_for_a_child()

    def _stop(self, running: dict) -> None:
        for plan, _node, _run_dir, process in running.values():
            self.stopped.append(plan.name)
            process.terminate()

    def _log(self, node, message: str) -> None:
        name = self.launch.execution_log_name(node, len(self.nodes))
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        with open(os.path.join(self.context.stdouterr_dir, name), "a") as handle:
            handle.write(f"{stamp} {message}\n")


def _wait_for_a_child() -> None:
    """Blocks until one of our srun steps has ended, leaving it for Popen.poll() to reap."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
    except (AttributeError, ChildProcessError, InterruptedError):
        time.sleep(POLL_SECONDS)


def _exit_record(run_dir: str) -> tuple[int | None, str]:
    """The task's exit code, and where the disk was full when its wrapper wrote it (or "")."""
    try:
        record = _read_json(os.path.join(run_dir, "exit"))
        return int(record["exit_code"]), str(record.get("no_space") or "")
    except (OSError, ValueError, KeyError, TypeError):
        return None, ""


def _failure(phase: str, plan, node, code: int | None, no_space: str = "") -> dict:
    where = f"node {node.name}"
    why = f" (no space left on {no_space})" if no_space else ""  # as the other backends say it
    logs = f"see {plan.stdout_name} and {plan.stderr_name}"
    if code is None:
        return {
            "code": "TaskLost",
            "exit_code": None,
            "message": f"task {plan.name} on {where} was lost (its srun step ended without an exit code); {logs}",
        }
    if phase == "prep":
        return {
            "code": "JobPreparationFailed",
            "exit_code": code,
            "message": f"job preparation failed on {where} with exit code {code}{why}; {logs}",
        }
    return {
        "code": "JobFailed",
        "exit_code": code,
        "message": f"task {plan.name} on {where} exited with code {code}{why}; {logs}",
    }


def main(control: str) -> int:
    try:
        return Driver(control).run()
    except Exception as failure:  # a broken attempt still tells the service why
        _write_json(
            os.path.join(control, "result.json"),
            {
                "state": "failed",
                "exit_code": None,
                "error": {
                    "code": "JobStartFailed",
                    "message": f"the job could not start on the allocation: {type(failure).__name__}: {failure}",
                },
            },
        )
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
