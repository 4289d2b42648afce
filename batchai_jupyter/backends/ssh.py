"""The SSH backend: a cluster's nodes are the user's own machines, reached with paramiko.

Each node is one host of the cluster's `backendOptions.hosts` (see ssh_options.py). Provisioning
checks the host (reachable, host key known, a usable Python), reads its CPU and GPU counts, and
installs our runtime wrapper (runtime/wrapper.py, the same file the local backend runs) into
`<root>/bin/` over SFTP, named by its content so a changed wrapper is installed again.

Tasks run under that wrapper, detached on the host (own session), so a dropped connection or a
restarted service does not stop them. Directories under the service's home (a datastore's folders
for the job's stdouterr, inputs and outputs, the shared temp with the hostfile) are seen on the host
under `<root>/mirror/` (`node_path`: the core plans the tasks with those paths, and names the
directories in each launch): inputs are staged there through the content-addressed cache, logs are
streamed back live, outputs are copied back while the task runs and when it ends.

Batch AI mountVolumes (storage/mounts.py) are shown the same way: `show_mounts` stages each mount's
directory on the service's machine (a datastore's directory or mirror) to `<mount root>/<relative
path>` on the host before the setup task or the job's tasks start, and every task whose mount roots
hold mounts copies what is new there back into that directory, while it runs and when it ends (the
job's end then uploads it when the datastore is Blob). An `unmanagedFileSystems` entry runs its
mountCommand on the host.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shlex
import socket
import threading
import time
from collections.abc import Callable

from ..errors import BatchAIError
from ..ports.compute import (
    BackendContext,
    ChecksClusters,
    ClusterRef,
    ClusterSpecRef,
    ComputeBackend,
    LoadSample,
    NodeDirectory,
    NodeExec,
    NodeHealth,
    NodeLoad,
    NodePlacement,
    NodeRef,
    NodeScripts,
    RemoteNodes,
    TaskLaunch,
    TaskStatus,
    exited_status,
)
from ..runtime import mpi_agent, wrapper
from ..storage.mounts import Mount, mount_command
from ..storage.native_mounts import FAILED_EXIT, UPLOAD_WAIT_SECONDS, unmount_under_script
from .ssh_cluster_keys import ClusterKeys, HostAssignments
from .ssh_connection import ConnectionPool, HostConnection, Login, SshError
from .ssh_health import HostMonitor
from .ssh_options import HostSpec, SshOptions, parse_options
from .ssh_staging import FileHashes, Stager
from .ssh_tasks import TaskFollower, TaskRecord

WRAPPER_SOURCE = open(wrapper.__file__, "rb").read()
WRAPPER_DIGEST = hashlib.sha256(WRAPPER_SOURCE).hexdigest()[:16]
MPI_AGENT_SOURCE = open(mpi_agent.__file__, "rb").read()
MPI_AGENT_DIGEST = hashlib.sha256(MPI_AGENT_SOURCE).hexdigest()[:16]
START_GRACE_SECONDS = 30.0
NODE_DIRS = ("mounts", "jobs", "run", "cache", "mirror", "bin", "ssh")

PROBE = r"""
set -e
cd ~
echo "home=$(pwd)"
echo "cpus=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)"
if command -v nvidia-smi >/dev/null 2>&1; then echo "gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)"
else echo "gpus=0"; fi
echo "interfaces=$(ip -o -4 addr show 2>/dev/null | awk '{print $2 "=" $4}' | tr '\n' ' ')"
if PYTHON_VERSION=$(%(python)s -c 'import sys; print("%%d.%%d" %% sys.version_info[:2])' 2>&1); then
  echo "python=$PYTHON_VERSION"
else echo "python-error=$PYTHON_VERSION"; fi
"""


class SshBackend(ComputeBackend, ChecksClusters, NodeHealth, NodeLoad, NodeExec, NodeScripts, RemoteNodes):
    name = "ssh"  # its nodes are remote: they do not see the service's files, the backend stages them

    def __init__(self, context: BackendContext):
        self.home = context.layout.root
        self.site_options = dict(context.options)
        self.heartbeat_seconds = context.heartbeat_seconds
        self.pool = ConnectionPool()
        self.stager = Stager(FileHashes())
        self._wakeup: Callable[[], None] = lambda: None
        self.monitor = HostMonitor(lambda: self._wakeup())
        self.assignments = HostAssignments(os.path.join(self.home, "ssh", "assignments.json"))
        self.cluster_keys = ClusterKeys(os.path.join(self.home, "ssh", "clusters"))
        self._followers: dict[str, TaskFollower] = {}
        self._ssh_config_sent: dict[tuple, str] = {}
        self._lock = threading.Lock()

    def set_wakeup(self, callback: Callable[[], None]) -> None:
        self._wakeup = callback

    def close(self) -> None:
        with self._lock:
            followers, self._followers = list(self._followers.values()), {}
        for follower in followers:
            follower.stop()
        self.monitor.stop()
        self.pool.close()

    # -- options and connections -----------------------------------------------------------

    def check_cluster(self, spec: ClusterSpecRef) -> None:
        """Raises BatchAIError (400) when the cluster's backendOptions are not usable."""
        parse_options(self.site_options, spec.backend_options)

    def _options(self, cluster: ClusterRef) -> SshOptions:
        return parse_options(self.site_options, cluster.spec.backend_options)

    @staticmethod
    def _login(options: SshOptions) -> Login:
        return Login(options.key_file, options.known_hosts, options.trust_on_first_use, options.connect_timeout)

    def _node_host(self, node: NodeRef) -> tuple[HostSpec, SshOptions]:
        info = node.info
        options = SshOptions.from_node_dict(info["ssh_host"], info["ssh_login"])
        return options.hosts[0], options

    def connection(self, node: NodeRef) -> HostConnection:
        host, options = self._node_host(node)
        connection = self.pool.get(host, self._login(options))
        key = node_key(node)
        if not self.monitor.is_watched(key):
            self.monitor.watch(key, connection)
        return connection

    # -- nodes -------------------------------------------------------------------------------

    def provision(self, cluster: ClusterRef, node: NodeRef) -> NodePlacement:
        options = self._options(cluster)
        host = self.assignments.take(cluster.uuid, node.name, options.hosts)
        if host is None:
            raise SshError(
                f"all {len(options.hosts)} hosts of cluster {cluster.name} already have a node; "
                "add hosts to backendOptions.hosts or lower the node count"
            )
        return self.provision_on(cluster, node, host, options)

    def provision_on(self, cluster: ClusterRef, node: NodeRef, host: HostSpec, options: SshOptions) -> NodePlacement:
        """Makes `host` the node: checks it, installs the wrapper and the cluster's key there."""
        connection = self.pool.get(host, self._login(options))
        facts = self._probe(connection, options)
        root = options.root.replace("~", facts["home"], 1) if options.root.startswith("~") else options.root
        options = dataclasses.replace(options, hosts=(host,), root=root)
        connection.check("mkdir -p " + " ".join(shlex.quote(f"{root}/{d}") for d in NODE_DIRS))
        wrapper_path = self._install_wrapper(connection, root)
        self.cluster_keys.install(connection, cluster.uuid, root)
        address = host.address or _resolve(host.host)
        agent = _agent_path(root)
        extra = {
            "ssh_host": dataclasses.asdict(host),
            "ssh_login": options.to_dict(),
            "wrapper": wrapper_path,
            "python": options.python,
            "cluster_uuid": cluster.uuid,
            # The interface the other hosts reach this one on: gloo and NCCL otherwise go by the
            # host name, which on many machines resolves to a loopback address.
            "interface": facts["interfaces"].get(address, ""),
            # MPI in a job's image: mpirun's remote shell in the master's container (the image's Python runs
            # the agent) asks the relay its task runs under on the host, which starts the daemon in the other
            # host's container through ssh, as mpirun outside containers does (runtime/mpi_agent.py)
            "mpi_relay": [options.python, "-S", agent, "--relay"],
            "mpi_ssh": ["ssh", "-F", f"{root}/ssh/config"],
            "container_env": {"OMPI_MCA_plm_rsh_agent": f"python3 -S {agent} --rsh", "OMPI_MCA_plm_rsh_args": ""},
        }
        self.monitor.watch(node_key(node), connection)
        return NodePlacement(
            ip=address, mpi_host=address, cpus=facts["cpus"], gpus=facts["gpus"], root=root, port=host.port, extra=extra
        )

    @staticmethod
    def _probe(connection: HostConnection, options: SshOptions) -> dict:
        out = connection.check("sh -s", stdin=(PROBE % {"python": shlex.quote(options.python)}).encode())
        facts = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        if "python" not in facts or tuple(int(p) for p in facts["python"].split(".")) < (3, 8):
            why = facts.get("python-error", "").strip() or f"Python {facts.get('python')} is older than 3.8"
            raise SshError(
                f"host {connection.host.label} has no usable Python at {options.python!r} ({why[-300:]}); "
                "install Python 3.8 or newer there, or set backendOptions.python to one"
            )
        interfaces = dict(pair.split("=", 1) for pair in facts.get("interfaces", "").split() if "=" in pair)
        return {
            "home": facts.get("home", "~"),
            "cpus": max(1, int(facts.get("cpus") or 1)),
            "gpus": int(facts.get("gpus") or 0),
            "interfaces": {a.split("/")[0]: n for n, a in interfaces.items()},
        }

    @staticmethod
    def _install_wrapper(connection: HostConnection, root: str) -> str:
        """Sends the wrapper and the MPI agent unless these very versions are there already; returns the
        wrapper's path."""
        install_program(connection, _agent_path(root), MPI_AGENT_SOURCE)
        return install_program(connection, f"{root}/bin/wrapper-{WRAPPER_DIGEST}.py", WRAPPER_SOURCE)

    def release(self, cluster: ClusterRef, node: NodeRef) -> None:
        key = node_key(node)
        self.monitor.unwatch(key)
        with self._lock:
            followers = [self._followers.pop(k) for k in list(self._followers) if k.startswith(key + ":")]
        for follower in followers:
            follower.stop()
        if "ssh_host" in node.info:
            connection = self.connection(node)
            self.monitor.unwatch(key)
            root = node.info["root"]
            try:
                # native mounts first (they upload what is still to upload), and never into one left mounted
                connection.run("bash -c " + shlex.quote(unmount_under_script(root)), timeout=UPLOAD_WAIT_SECONDS + 60)
                connection.run(
                    "rm -rf --one-file-system "
                    + " ".join(shlex.quote(f"{root}/{d}") for d in ("jobs", "run", "mirror", "mounts")),
                    timeout=30,
                )
                self.cluster_keys.remove(connection, cluster.uuid)
            except SshError:
                pass  # a host that is gone keeps its leftovers; nothing else depends on them
        self.assignments.release(cluster.uuid, node.name)
        if not self.assignments.hosts_of(cluster.uuid):
            self.cluster_keys.forget(cluster.uuid)  # the cluster's last node: its key pair goes too

    def node_health(self, node: NodeRef) -> str | None:
        """Why the node's host is not answering, or None while it is (cheap: heartbeats run apart)."""
        if "ssh_host" not in node.info:
            return None
        return self.monitor.down_reason(self.connection(node))

    def node_load(self, node: NodeRef) -> LoadSample | None:
        """The host's load, as its heartbeat last read it (several nodes on one host share it)."""
        if "ssh_host" not in node.info:
            return None
        return self.monitor.load(self.connection(node))

    def free_port(self, node: NodeRef) -> int:
        """A port free on the node's host (PyTorch's MASTER_PORT)."""
        program = "import socket; s = socket.socket(); s.bind(('', 0)); print(s.getsockname()[1])"
        return int(self.connection(node).check(f"{shlex.quote(node.info['python'])} -c {shlex.quote(program)}"))

    def exec(self, node: NodeRef, command: str, timeout: float = 300.0) -> tuple[int, str, str]:
        """`batchai cluster node exec`: runs `command` on the node's host, in the node's root."""
        root = node.info["root"]
        return self.connection(node).run(f"cd {shlex.quote(root)} && {command}", timeout=timeout)

    # -- tasks -----------------------------------------------------------------------------

    def node_path(self, node: NodeRef, path: str) -> str:
        """Where the node's host sees a directory of the service's machine: under the host's mirror of
        the service's home (datastores, mirrors, the job's shared temp: staged there), or, outside the
        home, `path` itself (a file system every host shares)."""
        relative = self._home_relative(path)
        return path if relative is None else f"{node.info['root']}/mirror/{relative}"

    def _home_relative(self, path: str) -> str | None:
        """`path` relative to the service's home, by whole components ("<home>/../x" is not under it)."""
        normal = os.path.normpath(path)
        for root in (self.home, os.path.realpath(self.home)):
            relative = os.path.relpath(normal, root)
            if relative not in (".", "..") and not relative.startswith(".." + os.sep):
                return relative.replace(os.sep, "/")
        return None

    @staticmethod
    def _files_to_move(directories: tuple[NodeDirectory, ...]) -> tuple[list, list]:
        """The launch's directories the host does not share: (to stage in as [(local, remote, copy)],
        output directories to collect as [[remote, local]]). Inputs are staged read-only; outputs and
        checkpoints are staged back in (a retry resumes from them) and collected."""
        staged, outputs = [], []
        for directory in directories:
            if directory.on_node == directory.here or not os.path.exists(directory.here):
                continue
            staged.append((directory.here, directory.on_node, directory.kind != "input"))
            if directory.kind == "output":
                outputs.append([directory.on_node, directory.here])
        return staged, outputs

    def start_task(self, node: NodeRef, run_dir: str, launch: TaskLaunch) -> None:
        connection = self.connection(node)
        # The service's own environment stays here: the host's login environment is the base there.
        env = {name: value for name, value in launch.env.items() if os.environ.get(name) != value}
        staged, outputs = self._files_to_move(launch.directories)
        outputs += self._mount_outputs(node, launch.env)
        env = {**self.task_environment(node), **env}  # the job's own settings win
        logs = [
            [self.node_path(node, launch.stdout), launch.stdout],
            [self.node_path(node, launch.stderr), launch.stderr],
        ]
        remote_dirs = {
            run_dir,
            launch.cwd,
            *(os.path.dirname(remote) for remote, _ in logs),
            *(remote for remote, _ in outputs),
            *(f"{node.info['root']}/{d}" for d in NODE_DIRS),
        }
        stale = [f"{run_dir}/{name}" for name in ("pid", "exit", "heartbeat")] + [remote for remote, _ in logs]
        wrapper_path = node.info["wrapper"]
        answer = connection.check(
            "mkdir -p "
            + " ".join(shlex.quote(d) for d in sorted(remote_dirs))
            + " && rm -f "
            + " ".join(shlex.quote(path) for path in stale)
            + f" && {{ test -f {shlex.quote(wrapper_path)} || echo WRAPPER-MISSING; }}"
        )
        if "WRAPPER-MISSING" in answer:  # the host came back without its node root (a reinstall, a tmpfs)
            self._install_wrapper(connection, node.info["root"])
            self.cluster_keys.install(connection, node.info["cluster_uuid"], node.info["root"])
            self._ssh_config_sent.pop((connection.host.host, connection.host.port, node.info["root"]), None)
        self.stager.stage(connection, node.info["root"] + "/cache", staged)
        for peer in self._peers(node, launch):
            # mpirun starts ranks on the job's other hosts: they need the same inputs there.
            peer.check("mkdir -p " + " ".join(shlex.quote(d) for d in sorted(remote_dirs - {run_dir})))
            self.stager.stage(peer, node.info["root"] + "/cache", staged)
        self._send_ssh_config(connection, node)
        task = {
            "command": launch.command,
            "env": env,
            "inherit_env": True,
            "cwd": launch.cwd,
            "stdout": logs[0][0],
            "stderr": logs[1][0],
            "heartbeat_seconds": self.heartbeat_seconds,
        }
        sftp = connection.sftp()
        try:
            with sftp.open(f"{run_dir}/task.json", "wb") as handle:
                handle.chmod(0o600)
                handle.write(json.dumps(task).encode())
        finally:
            sftp.close()
        python = node.info["python"]
        connection.check(
            f"cd / && (setsid {shlex.quote(python)} -S {shlex.quote(wrapper_path)} {shlex.quote(run_dir)}"
            " </dev/null >/dev/null 2>&1 &)"
        )
        record = TaskRecord(node.info["ssh_host"], node.info["ssh_login"], run_dir, logs, outputs)
        record.save(self._record_path(node, run_dir))
        self._follow(node, run_dir, record, connection)

    def _peers(self, node: NodeRef, launch: TaskLaunch) -> list[HostConnection]:
        """Connections to the job's other hosts (AZ_BATCH_HOST_LIST) when this task starts processes
        there itself (mpirun: the MPI toolkits, or a custom command line that calls it)."""
        addresses = [a for a in launch.env.get("AZ_BATCH_HOST_LIST", "").split(",") if a and a != node.ip]
        if not addresses or "mpirun" not in launch.command:
            return []
        _, options = self._node_host(node)
        login = self._login(options)
        hosts = self.assignments.hosts_of(node.info["cluster_uuid"])
        by_address = {(h.address or _resolve(h.host)): h for h in hosts}
        return [self.pool.get(by_address[a], login) for a in addresses if a in by_address]

    def task_environment(self, node: NodeRef) -> dict[str, str]:
        """How mpirun on this node reaches the job's other hosts (the cluster key and known hosts), and
        the interface the frameworks' own connections take (the host's, not what its name resolves to)."""
        config = node.info["root"] + "/ssh/config"
        env = {"OMPI_MCA_plm_rsh_agent": "ssh", "OMPI_MCA_plm_rsh_args": f"-F {config}"}
        if node.info.get("interface"):
            env.update(GLOO_SOCKET_IFNAME=node.info["interface"], NCCL_SOCKET_IFNAME=node.info["interface"])
        return env

    def _send_ssh_config(self, connection: HostConnection, node: NodeRef) -> None:
        host, options = self._node_host(node)
        root = node.info["root"]
        script = self.cluster_keys.ssh_files(root, options, self.assignments.hosts_of(node.info["cluster_uuid"]))
        key = (host.host, host.port, root)
        if self._ssh_config_sent.get(key) != script:
            connection.check("sh -se", stdin=script.encode())
            self._ssh_config_sent[key] = script

    def _record_path(self, node: NodeRef, run_dir: str) -> str:
        digest = hashlib.sha256(f"{node_key(node)}:{run_dir}".encode()).hexdigest()[:24]
        return os.path.join(self.home, "ssh", "tasks", digest + ".json")

    def _follow(self, node: NodeRef, run_dir: str, record: TaskRecord, connection: HostConnection) -> TaskFollower:
        key = f"{node_key(node)}:{run_dir}"
        with self._lock:
            follower = self._followers.get(key)
            if follower is None:
                output_sync = float(node.info["ssh_login"]["output_sync_seconds"])
                follower = TaskFollower(connection, record, self.stager, output_sync).start()
                self._followers[key] = follower
            return follower

    def _follower(self, node: NodeRef, run_dir: str, connection: HostConnection) -> TaskFollower | None:
        with self._lock:
            follower = self._followers.get(f"{node_key(node)}:{run_dir}")
        if follower is None:  # the service restarted: re-attach from the record
            record = TaskRecord.load(self._record_path(node, run_dir))
            if record is not None:
                follower = self._follow(node, run_dir, record, connection)
        return follower

    def task_started(self, node: NodeRef, run_dir: str) -> bool:
        """Whether a wrapper on the host took the task up (it renames task.json, then writes its pid, then the
        exit record): a service killed before its hand-over reached the host hands it over again after its
        restart, and of two wrappers handed the same task only the first to rename it runs it. A host that
        does not answer counts as started: its heartbeats decide whether the task is lost."""
        connection = self.connection(node)
        if self.monitor.down_reason(connection):
            return True
        quoted = shlex.quote(run_dir)
        taken = " || ".join(f"[ -e {quoted}/{name} ]" for name in ("pid", "exit", wrapper.TASK_CLAIMED))
        try:
            return (
                connection.check(f"if {taken}; then echo TAKEN; else echo WAITING; fi", timeout=30).strip() != "WAITING"
            )
        except SshError:
            return True

    def poll_task(self, node: NodeRef, run_dir: str, launched_at: float) -> TaskStatus:
        connection = self.connection(node)
        down = self.monitor.down_reason(connection)
        if down:
            return TaskStatus("lost", None, down)
        quoted = shlex.quote(run_dir)
        script = (
            f"d={quoted}; if [ -f $d/exit ]; then echo EXIT; cat $d/exit; elif [ -f $d/pid ]; then "
            "if kill -0 $(cat $d/pid) 2>/dev/null; then echo RUNNING; elif [ -f $d/exit ]; then echo EXIT; "
            "cat $d/exit; else echo GONE; fi; else echo NOPID; fi"
        )
        try:
            out = connection.check(script, timeout=30)
        except SshError:
            return TaskStatus("running")  # the heartbeats decide whether the host is gone
        state, _, rest = out.partition("\n")
        follower = self._follower(node, run_dir, connection)
        if state == "EXIT":
            if follower is not None:
                try:
                    follower.finish()
                except (SshError, OSError):
                    pass
                with self._lock:
                    self._followers.pop(f"{node_key(node)}:{run_dir}", None)
            return exited_status(json.loads(rest))
        if state == "RUNNING" or (state == "NOPID" and time.time() - launched_at < START_GRACE_SECONDS):
            return TaskStatus("running")
        if follower is not None:
            follower.stop()
        return TaskStatus(
            "lost", None, f"the task's wrapper on host {connection.host.label} is gone without recording an exit code"
        )

    def kill_task(self, node: NodeRef, run_dir: str, force: bool = False) -> None:
        connection = self.connection(node)
        down = self.monitor.down_reason(connection)
        if force:
            self._last_copy(node, run_dir, host_up=not down)
        if down:
            return
        signal_name = "KILL" if force else "TERM"
        # The wrapper kills the task whole (its group and what escaped it); a wrapper of an older
        # release, without --kill, leaves the process group to kill.
        wrapper_path, python = shlex.quote(node.info["wrapper"]), shlex.quote(node.info["python"])
        try:
            connection.run(
                f"{python} -S {wrapper_path} --kill {shlex.quote(run_dir)} {signal_name} 2>/dev/null || "
                f"{{ p=$(cat {shlex.quote(run_dir)}/pid 2>/dev/null) && kill -{signal_name} -- -$p "
                "2>/dev/null; }; true",
                timeout=15,
            )
        except SshError:
            pass

    def _last_copy(self, node: NodeRef, run_dir: str, host_up: bool) -> None:
        """A job that ends or starts its next attempt hears nothing more of this task: the last of its
        logs is copied while the host answers, and never after the engine has moved the logs aside."""
        with self._lock:
            follower = self._followers.pop(f"{node_key(node)}:{run_dir}", None)
        if follower is None:
            return
        if host_up:
            try:
                follower.finish()
            except (SshError, OSError, EOFError):
                pass
        follower.stop()

    # -- mounts ----------------------------------------------------------------------------

    def show_mounts(self, node: NodeRef, mount_root: str, mounts: list[Mount]) -> None:
        """Shows `mounts` under `mount_root` on the node's host: a fresh copy of each source directory
        (through the cache: unchanged files are not sent again), or the mount command run there.
        The tasks started after it collect the copies back (`_mount_outputs`)."""
        pairs, collected = [], []
        for mount in mounts:
            remote = f"{mount_root}/{mount.relative_path}"
            if mount.command:
                connection = self.connection(node)
                line = f"mkdir -p {shlex.quote(remote)} && {mount_command(mount_root, mount)}"
                code, out, err = connection.run(line, timeout=300)
                if code != 0:
                    tail = (err or out).strip().splitlines()[-1:] or [""]
                    raise BatchAIError(
                        "MountFailed",
                        f"mountCommand {mount.command!r} exited with code {code} on "
                        f"host {connection.host.label} ({tail[0][:200]}); fix the "
                        "command or the file system it mounts",
                    )
                continue
            os.makedirs(mount.source, exist_ok=True)
            pairs.append((mount.source, remote, True))  # copies: the job may rewrite them in place
            collected.append([remote, mount.source])
        if pairs:
            # The copy shows the source as it is now: files gone from it go from the host's copy too
            # (else the next collection would bring them back).
            connection = self.connection(node)
            connection.check("rm -rf --one-file-system " + " ".join(shlex.quote(r) for _, r, _ in pairs))
            self.stager.stage(connection, node.info["root"] + "/cache", pairs)
        path = self._mounts_path(node, mount_root)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w") as handle:
            json.dump(collected, handle)
        os.replace(path + ".tmp", path)

    def _mounts_path(self, node: NodeRef, mount_root: str) -> str:
        digest = hashlib.sha256(f"{node_key(node)}:{mount_root}".encode()).hexdigest()[:24]
        return os.path.join(self.home, "ssh", "mounts", digest + ".json")

    def _mount_outputs(self, node: NodeRef, env: dict) -> list[list[str]]:
        """[host directory, local directory] of the mounts shown under the task's mount roots."""
        found = []
        for name in ("AZ_BATCHAI_MOUNT_ROOT", "AZ_BATCHAI_JOB_MOUNT_ROOT"):
            if name not in env:
                continue
            try:
                with open(self._mounts_path(node, env[name])) as handle:
                    found += [pair for pair in json.load(handle) if pair not in found]
            except (OSError, ValueError):
                pass
        return found

    def run_script(self, node: NodeRef, script: str, stdin: str = "") -> tuple[int, str]:
        """Runs a bash script on the node's host, `stdin` (a mount's secret) on its standard input."""
        connection = self.connection(node)
        try:
            code, out, err = connection.run(
                "bash -c " + shlex.quote(script), timeout=UPLOAD_WAIT_SECONDS + 60, stdin=stdin.encode()
            )
        except SshError as failure:
            return FAILED_EXIT, str(failure)
        return code, out + err

    def run_script_streaming(
        self, node: NodeRef, script: str, stdin: str, sink: Callable[[str], None]
    ) -> tuple[int, str]:
        connection = self.connection(node)
        try:
            return connection.run_streaming(
                "bash -c " + shlex.quote(script), sink, timeout=UPLOAD_WAIT_SECONDS + 60, stdin=stdin.encode()
            )
        except SshError as failure:
            return FAILED_EXIT, str(failure)

    def write_text(self, node: NodeRef, path: str, text: str) -> None:
        connection = self.connection(node)
        connection.check(
            f"mkdir -p {shlex.quote(os.path.dirname(path))} && cat > {shlex.quote(path)}", stdin=text.encode()
        )


def install_program(connection: HostConnection, path: str, source: bytes) -> str:
    """Sends a node-side program (its version in `path`) unless it is there already; returns the path."""
    sftp = connection.sftp()
    try:
        try:
            if sftp.stat(path).st_size == len(source):
                return path
        except FileNotFoundError:
            pass
        temporary = f"{path}.part"
        with sftp.open(temporary, "wb") as handle:
            handle.write(source)
        sftp.posix_rename(temporary, path)
    finally:
        sftp.close()
    return path


def _agent_path(root: str) -> str:
    return f"{root}/bin/mpi_agent-{MPI_AGENT_DIGEST}.py"


def node_key(node: NodeRef) -> str:
    return f"{node.workspace}/{node.cluster}/{node.name}"


def _resolve(host: str) -> str:
    try:
        return socket.gethostbyname(host)
    except OSError:
        return host


def create(context: BackendContext) -> SshBackend:
    return SshBackend(context)
