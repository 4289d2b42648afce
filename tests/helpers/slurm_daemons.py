"""A real Slurm on this machine for the tests: munged, slurmctld and two slurmd virtual nodes.

Everything lives in one temporary directory (munge key and socket, slurm.conf, state, spool,
logs, pid files) on free ports, so two test runs on one machine never share a daemon. Nothing is
installed here: `.ci/install.d/30-slurm.sh` installs Debian's slurm-wlm and munge.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

from .tools import free_port
from .waits import wait_for

NODE_NAMES = ("n1", "n2")
SLURM_TOOLS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo", "srun")


def node_addresses(controller_port: int) -> list[str]:
    """A loopback address per virtual node, different per test run (TensorFlow's fixed ports 2222,
    2223 on one node then collide neither between the nodes nor with a concurrent run)."""
    middle = f"{100 + controller_port % 150}.{controller_port // 150 % 250}"
    return [f"127.{middle}.{index + 1}" for index in range(len(NODE_NAMES))]


def slurm_conf_text(root: str, host: str, controller_port: int, node_ports: list[int], munge_socket: str) -> str:
    nodes = "\n".join(
        f"NodeName={name} NodeHostname={host} NodeAddr={address} Port={port} CPUs=2 RealMemory=1000 State=UNKNOWN"
        for name, address, port in zip(NODE_NAMES, node_addresses(controller_port), node_ports, strict=False)
    )
    return f"""\
ClusterName=bai{controller_port}
SlurmctldHost={host}
SlurmctldPort={controller_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={munge_socket}
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/%n
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd-%n.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd-%n.log
ReturnToService=2
MpiDefault=none
SlurmdTimeout=10
SchedulerParameters=sched_interval=2
MinJobAge=600
KillWait=5
{nodes}
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


class SlurmDaemons:
    def __init__(self, root: str):
        self.root = root
        self.conf = os.path.join(root, "slurm.conf")
        self.munge_socket = os.path.join(root, "munge", "munge.sock")
        self.host = socket.gethostname().split(".")[0]
        self.controller_port = free_port()
        self.node_ports = [free_port() for _ in NODE_NAMES]

    def env(self) -> dict:
        return {**os.environ, "SLURM_CONF": self.conf}

    # -- start -------------------------------------------------------------------------------

    def start(self) -> None:
        for sub in ("state", "spool", "munge"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        self._start_munge()
        with open(self.conf, "w") as handle:
            handle.write(
                slurm_conf_text(self.root, self.host, self.controller_port, self.node_ports, self.munge_socket)
            )
        self._run(["slurmctld", "-i"])
        for name in NODE_NAMES:
            self.start_node(name)
        self.wait_until(lambda: self.idle_nodes() == set(NODE_NAMES), "both slurmd nodes to be idle", 60)

    def _start_munge(self) -> None:
        munge = os.path.join(self.root, "munge")
        os.chmod(munge, 0o700)
        key = os.path.join(munge, "munge.key")
        with open(key, "wb") as handle:
            handle.write(os.urandom(1024))
        os.chmod(key, 0o400)
        self._run(
            [
                "munged",
                "--force",
                f"--socket={self.munge_socket}",
                f"--key-file={key}",
                f"--pid-file={munge}/munged.pid",
                f"--log-file={munge}/munged.log",
                f"--seed-file={munge}/munged.seed",
            ]
        )

    def start_controller(self) -> None:
        """slurmctld again after a stop, recovering the jobs from its state directory."""
        self._run(["slurmctld"])

    def start_node(self, name: str) -> None:
        self._run(["slurmd", "-N", name])

    def _run(self, command: list[str]) -> None:
        result = subprocess.run(command, env=self.env(), capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr}\n{self.logs()}")

    # -- look -------------------------------------------------------------------------------

    def sinfo_states(self) -> dict[str, str]:
        result = subprocess.run(["sinfo", "-N", "-h", "-o", "%N %T"], env=self.env(), capture_output=True, text=True)
        states = {}
        for line in result.stdout.splitlines():
            name, state = line.split()
            states[name] = state
        return states

    def idle_nodes(self) -> set[str]:
        return {name for name, state in self.sinfo_states().items() if state == "idle"}

    def wait_until(self, condition, what: str, timeout: float) -> None:
        wait_for(condition, what, timeout=timeout, interval=0.5, explain=self.logs)

    def logs(self) -> str:
        text = []
        for name in ("slurmctld.log", *(f"slurmd-{n}.log" for n in NODE_NAMES)):
            path = os.path.join(self.root, name)
            if os.path.exists(path):
                with open(path, errors="replace") as handle:
                    text.append(f"--- {name}\n" + handle.read()[-2000:])
        return "\n".join(text)

    # -- stop -------------------------------------------------------------------------------

    def pid_file(self, daemon: str) -> str:
        if daemon == "munged":
            return os.path.join(self.root, "munge", "munged.pid")
        return os.path.join(self.root, f"{daemon}.pid")

    def kill(self, daemon: str, sig: int = signal.SIGTERM) -> int | None:
        """Signals one daemon ("slurmctld", "slurmd-n1", "munged") by its pid file; returns the pid."""
        try:
            with open(self.pid_file(daemon)) as handle:
                pid = int(handle.read().strip())
            os.kill(pid, sig)
            return pid
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        subprocess.run(["scancel", "--user", str(os.getuid())], env=self.env(), capture_output=True, timeout=30)
        for daemon in (*(f"slurmd-{n}" for n in NODE_NAMES), "slurmctld", "munged"):
            pid = self.kill(daemon)
            if pid is not None and not wait_gone(pid, 10):
                _signal(pid, signal.SIGKILL)
        # What outlived that (a slurmd whose pid file went, a slurmstepd that could not report its
        # end to a stopped controller) is still ours: it runs with this Slurm's SLURM_CONF.
        for pid in self.own_processes():
            _signal(pid, signal.SIGKILL)

    def own_processes(self) -> list[int]:
        """Processes started with this Slurm's SLURM_CONF (the daemons, their slurmstepd and steps)."""
        marker = f"SLURM_CONF={self.conf}".encode()
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as handle:
                    if marker in handle.read().split(b"\0"):
                        found.append(int(entry))
            except OSError:
                continue
        return found


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False
