"""MPI across the local backend's nodes as across hosts: each node of a job is a sandbox on this machine with
its own address, so a rank must start as the node its host name says, not wherever mpirun runs.

    python -S mpi_agent.py --rsh HOST COMMAND...   OpenMPI's remote shell (OMPI_MCA_plm_rsh_agent): runs
                                                    COMMAND (orted) as the job's node at HOST, with that
                                                    node's variables ($AZ_BATCHAI_SHARED_JOB_TEMP/mpi-nodes.json
                                                    says which); a host that is no node of the job: ssh
    python -S mpi_agent.py --mpirun ARGS...         the `mpirun` first on a local node's PATH: the next mpirun
                                                    on PATH, with Intel MPI's flags that Batch AI recipes used
                                                    (-hosts, -ppn, -genv) in Open MPI's words when that is Open MPI

Stdlib only, started once per node and per mpirun: it imports almost nothing.
"""

from __future__ import annotations

import os
import sys

NODES_FILE = "mpi-nodes.json"
_OPEN_MPI = ("orterun", "prterun", "mpirun.openmpi")


def rsh(host: str, words: list[str]) -> None:
    nodes = _nodes()
    if host not in nodes:
        os.execvp("ssh", ["ssh", host, *words])
    node = nodes[host]
    os.environ.update(node["env"])
    # OpenMPI's daemons of one machine race to make the same session directory (named after the machine):
    # each node gets its own, at a short path (its unix sockets live there).
    import tempfile

    os.environ["OMPI_MCA_orte_tmpdir_base"] = os.path.join(tempfile.gettempdir(), f"batchai-mpi-{host}")
    os.makedirs(os.environ["OMPI_MCA_orte_tmpdir_base"], exist_ok=True)
    try:
        os.chdir(node["cwd"])
    except OSError:
        pass  # orted changes to mpirun's directory itself
    # As ssh does: the remote shell reads the words joined.
    os.execv("/bin/sh", ["/bin/sh", "-c", " ".join(words)])


def _nodes() -> dict:
    import json

    shared = os.environ.get("AZ_BATCHAI_SHARED_JOB_TEMP", "")
    try:
        with open(os.path.join(shared, NODES_FILE)) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def mpirun(args: list[str]) -> None:
    real = _next_on_path("mpirun")
    if real is None:
        sys.stderr.write("mpirun: command not found (no MPI on this node's PATH)\n")
        raise SystemExit(127)
    if os.path.basename(os.path.realpath(real)).startswith(_OPEN_MPI):
        args = open_mpi_words(args)
    os.execv(real, [real, *args])


def _next_on_path(name: str) -> str | None:
    here = os.path.dirname(os.path.abspath(sys.argv[0]))
    mine = os.path.realpath(os.environ.get("BATCHAI_NODE_BIN", here))
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not folder or os.path.realpath(folder) == mine:
            continue
        path = os.path.join(folder, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def open_mpi_words(args: list[str]) -> list[str]:
    """Intel MPI's -hosts/-ppn/-genv/-genvall before the program, as Open MPI says them."""
    words: list[str] = []
    index = 0
    previous = "-"
    while index < len(args):
        word = args[index]
        if not word.startswith("-") and not previous.startswith("-"):
            break  # the program: what follows is its own
        value = args[index + 1] if index + 1 < len(args) else ""
        if word in ("-hosts", "--hosts"):
            words += ["-H", value, "--oversubscribe"]  # Intel MPI's hosts take any number of ranks
            index += 2
        elif word in ("-ppn", "-perhost"):
            words += ["--map-by", f"ppr:{value}:node"]
            index += 2
        elif word in ("-genv", "-env") and index + 2 < len(args):
            words += ["-x", f"{value}={args[index + 2]}"]
            index += 3
        elif word == "-genvall":
            index += 1
        else:
            words.append(word)
            index += 1
        previous = words[-1] if words else "-"
    return words + args[index:]


def main(argv: list[str]) -> None:
    if len(argv) >= 3 and argv[0] == "--rsh":
        rsh(argv[1], argv[2:])
    elif argv and argv[0] == "--mpirun":
        mpirun(argv[1:])
    sys.stderr.write("usage: mpi_agent.py --rsh HOST COMMAND... | --mpirun ARGS...\n")
    raise SystemExit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
