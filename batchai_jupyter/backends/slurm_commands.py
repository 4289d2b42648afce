"""Talking to Slurm through its own commands (sbatch, squeue, sinfo, scancel), and reading their output.

Every command runs with a fixed output format (`-o`) and no header, so parsing never depends on a
site's SQUEUE_FORMAT or locale. The runner is a function, so the same code can run the commands on
this machine or, later, on a login node over SSH.
"""

from __future__ import annotations

import getpass
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..errors import BatchAIError
from ..ports.compute import SchedulerUnavailable

COMMAND_TIMEOUT_SECONDS = 60.0
# What Slurm's commands say when slurmctld cannot be reached (a restart, an outage): try again later.
_UNREACHABLE = (
    "Unable to contact slurm controller",
    "Socket timed out",
    "Connection refused",
    "Zero Bytes were transmitted",
    "Slurm backup controller in standby mode",
)

# Slurm job states (squeue %T) → what they mean for us.
WAITING_STATES = {
    "PENDING",
    "CONFIGURING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESV_DEL_HOLD",
    "SUSPENDED",
    "STOPPED",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
}
RUNNING_STATES = {"RUNNING", "COMPLETING"}
LOST_STATES = {"NODE_FAIL", "BOOT_FAIL", "PREEMPTED", "DEADLINE", "OUT_OF_MEMORY", "SPECIAL_EXIT"}
# and the ends: COMPLETED, FAILED, TIMEOUT, CANCELLED (read with the job's result file).


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


Runner = Callable[[Sequence[str], str | None], CommandResult]


def local_runner(env: Mapping[str, str]) -> Runner:
    """Runs Slurm commands on this machine (the service is on a login node) with `env`."""

    def run(argv: Sequence[str], stdin: str | None = None) -> CommandResult:
        try:
            done = subprocess.run(
                list(argv), input=stdin, capture_output=True, text=True, env=dict(env), timeout=COMMAND_TIMEOUT_SECONDS
            )
        except FileNotFoundError:
            raise BatchAIError(
                "SlurmNotFound",
                f"{argv[0]} is not installed on this machine; run the service on "
                "a Slurm login node (or install slurm-client)",
            ) from None
        except subprocess.TimeoutExpired:
            raise SchedulerUnavailable(
                f"{argv[0]} did not answer within {COMMAND_TIMEOUT_SECONDS:.0f}s; is slurmctld up? (`scontrol ping`)"
            ) from None
        return CommandResult(done.returncode, done.stdout, done.stderr)

    return run


def ssh_runner(connection, slurm_conf: str) -> Runner:
    """Runs Slurm commands on a login node over an SSH connection (ssh_connection.HostConnection)."""

    def run(argv: Sequence[str], stdin: str | None = None) -> CommandResult:
        command = shlex.join(argv)
        if slurm_conf:
            command = f"SLURM_CONF={shlex.quote(slurm_conf)} {command}"
        try:
            code, out, err = connection.run(
                command, timeout=COMMAND_TIMEOUT_SECONDS, stdin=stdin.encode() if stdin is not None else None
            )
        except BatchAIError as failure:
            if "cannot reach" in failure.message or "stopped answering" in failure.message:
                raise SchedulerUnavailable(f"the login node does not answer: {failure.message}") from None
            raise
        if code == 127 and not out:
            raise BatchAIError(
                "SlurmNotFound", f"{argv[0]} is not installed on the login node {connection.host.label}: {err.strip()}"
            )
        return CommandResult(code, out, err)

    return run


@dataclass(frozen=True)
class QueueEntry:
    job_id: str
    name: str
    state: str  # Slurm's, e.g. PENDING
    reason: str
    nodes: str  # Slurm's compact node list, e.g. n[1-2]


@dataclass(frozen=True)
class NodeEntry:
    name: str
    state: str  # Slurm's, lower case, flags stripped: idle, allocated, mixed, drained, down...
    not_responding: bool
    address: str
    cpus: int
    reason: str


class SlurmCommands:
    def __init__(self, run: Runner, user: str | None = None):
        self.run = run
        self.user = user or getpass.getuser()

    def _checked(self, argv: Sequence[str], stdin: str | None = None) -> str:
        result = self.run(argv, stdin)
        if result.returncode != 0:
            said = (result.stderr or result.stdout).strip().replace("\n", "; ")
            if any(sign in said for sign in _UNREACHABLE):
                raise SchedulerUnavailable(
                    f"Slurm's controller cannot be reached ({said}); is slurmctld up? (`scontrol ping`)"
                )
            raise BatchAIError("SlurmCommandFailed", f"`{' '.join(argv[:2])} ...` failed: {said}")
        return result.stdout

    def sbatch(self, options: Sequence[str], script: str) -> str:
        """Submits `script` (given on stdin) and returns the Slurm job id."""
        out = self._checked(["sbatch", "--parsable", *options], script).strip()
        job_id = out.split(";")[0].strip()  # "id" or "id;cluster"
        if not job_id.isdigit():
            raise BatchAIError("SlurmCommandFailed", f"sbatch answered {out!r} instead of a job id")
        return job_id

    def queue(self) -> list[QueueEntry]:
        """All of this user's jobs Slurm still knows (finished ones for MinJobAge), in one call."""
        out = self._checked(
            ["squeue", "--noheader", "--all", "--states=all", f"--user={self.user}", "--format=%i|%j|%T|%r|%N"]
        )
        return parse_queue(out)

    def nodes(self, partition: str) -> list[NodeEntry]:
        argv = ["sinfo", "--noheader", "--Node", "--format=%N|%T|%o|%c|%E"]
        if partition:
            argv.append(f"--partition={partition}")
        return parse_nodes(self._checked(argv))

    def partitions(self) -> list[str]:
        out = self._checked(["sinfo", "--noheader", "--format=%R"])
        return sorted({line.strip() for line in out.splitlines() if line.strip()})

    def cancel(self, job_id: str, signal: str = "") -> None:
        argv = ["scancel", *([f"--signal={signal}"] if signal else []), job_id]
        result = self.run(argv, None)
        if (
            result.returncode != 0
            and "Invalid job id" not in result.stderr
            and "already completing" not in result.stderr
        ):
            said = (result.stderr or result.stdout).strip()
            raise BatchAIError("SlurmCommandFailed", f"scancel {job_id} failed: {said}")


def parse_queue(text: str) -> list[QueueEntry]:
    entries = []
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 5 or not parts[0]:
            continue
        job_id, name, state, reason, nodes = parts
        entries.append(
            QueueEntry(
                job_id.strip(),
                name.strip(),
                state.strip().split()[0] if state.strip() else "",
                reason.strip(),
                nodes.strip(),
            )
        )
    return entries


def parse_nodes(text: str) -> list[NodeEntry]:
    seen: dict[str, NodeEntry] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 5 or not parts[0]:
            continue
        name, state, address, cpus, reason = (part.strip() for part in parts)
        flags = "*~#!%$@^-"
        base = state.rstrip(flags).lower()
        try:
            count = int(cpus)
        except ValueError:
            count = 1
        seen.setdefault(
            name,
            NodeEntry(name, base, "*" in state, address or name, count, "" if reason in ("none", "(null)") else reason),
        )
    return list(seen.values())


def node_state(entry: NodeEntry) -> str:
    """Our node state for a Slurm node: idle, running (allocated/mixed), unusable (drain, down...)."""
    if entry.not_responding:
        return "unusable"
    if entry.state in ("idle", "planned"):
        return "idle"
    if entry.state in ("allocated", "mixed", "completing", "alloc", "mix", "comp"):
        return "running"
    return "unusable"


def expand_hostlist(text: str) -> list[str]:
    """Slurm's compact host list (n[1-3,5],gpu01) as names, without calling scontrol."""
    names: list[str] = []
    depth, start = 0, 0
    pieces = []
    for position, char in enumerate(text):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "," and depth == 0:
            pieces.append(text[start:position])
            start = position + 1
    pieces.append(text[start:])
    for piece in (p.strip() for p in pieces):
        if not piece or piece == "(null)":
            continue
        if "[" not in piece:
            names.append(piece)
            continue
        prefix, rest = piece.split("[", 1)
        ranges, suffix = rest.split("]", 1)
        for part in ranges.split(","):
            if "-" in part:
                low, high = part.split("-", 1)
                names.extend(f"{prefix}{number:0{len(low)}d}{suffix}" for number in range(int(low), int(high) + 1))
            else:
                names.append(f"{prefix}{part}{suffix}")
    return names


def slurm_env(base: Mapping[str, str], slurm_conf: str) -> dict:
    env = dict(base)
    if slurm_conf:
        env["SLURM_CONF"] = slurm_conf
    return env


def sbatch_time(seconds: float) -> str:
    """Slurm's days-hours:minutes:seconds for --time, rounded up to a whole second."""
    total = max(1, int(-(-seconds // 1)))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"
