"""MPI across the local backend's nodes as across hosts: each node of a job is a sandbox on this machine with
its own address, so a rank must start as the node its host name says, not wherever mpirun runs.

    python -S mpi_agent.py --rsh HOST COMMAND...   OpenMPI's remote shell (OMPI_MCA_plm_rsh_agent): runs
                                                    COMMAND (orted) as the job's node at HOST, with that
                                                    node's variables ($AZ_BATCHAI_SHARED_JOB_TEMP/mpi-nodes.json
                                                    says which); a host that is no node of the job: ssh
    python -S mpi_agent.py --mpirun ARGS...         the `mpirun` first on a local node's PATH: the next mpirun
                                                    on PATH, with Intel MPI's flags that Batch AI recipes used
                                                    (-hosts, -ppn, -genv) in Open MPI's words when that is Open MPI
    python -S mpi_agent.py --relay NAME ARGV...     runs ARGV (the task's container) and, while it runs, starts
                                                    what the remote shell asks for in another node's container

In a job's image the remote shell runs in the master's container, where no container runtime is: it hands
its host and words, and its own stdin/stdout/stderr, to the relay its task was started under (a unix socket
in the host network's abstract namespace, which the containers share with the machine; only a process of
the relay's own user is heard), and the relay runs them in that node's container (mpi-nodes.json's
"container": the runtime's command line to which the words are added) as that node; on another host's
node ("ssh": how the master's host reaches it, as mpirun itself would; on Slurm an srun step
there, with `/bin/sh -c`) that command line runs there.

Stdlib only, started once per node and per mpirun: it imports almost nothing.
"""

from __future__ import annotations

import os
import sys

NODES_FILE = "mpi-nodes.json"
_OPEN_MPI = ("orterun", "prterun", "mpirun.openmpi")


RELAY_VARIABLE = "BATCHAI_MPI_RELAY"  # the relay's socket name, in the environment of its task


def rsh(host: str, words: list[str]) -> None:
    nodes = _nodes()
    if host not in nodes:
        os.execvp("ssh", ["ssh", host, *words])
    node = nodes[host]
    if os.environ.get(RELAY_VARIABLE) and node.get("container"):
        raise SystemExit(_ask_relay(os.environ[RELAY_VARIABLE], host, words))
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


def _ask_relay(name: str, host: str, words: list[str]) -> int:
    """Has the relay run `words` in `host`'s container with this process's stdin/stdout/stderr; its exit code."""
    import array
    import json
    import socket

    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.connect("\0" + name)
    request = json.dumps({"host": host, "words": words}).encode() + b"\n"
    fds = array.array("i", [0, 1, 2])
    connection.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())])
    answer = b""
    while not answer.endswith(b"\n"):
        chunk = connection.recv(64)
        if not chunk:
            return 255  # the relay went away: as ssh says a lost connection
        answer += chunk
    return int(answer)


def relay(name: str, argv: list[str]) -> None:
    """Runs `argv` and serves the remote shells of its processes until it ends; exits with its code."""
    import signal
    import socket
    import subprocess
    import threading

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind("\0" + name)
    server.listen(16)
    threading.Thread(target=_serve, args=(server,), daemon=True).start()
    child = subprocess.Popen(argv)
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, lambda signum, _frame: child.send_signal(signum))
    code = child.wait()
    raise SystemExit(code if code >= 0 else 128 - code)


def _serve(server) -> None:
    import threading

    while True:
        connection, _ = server.accept()
        threading.Thread(target=_run_for, args=(connection,), daemon=True).start()


def _run_for(connection) -> None:
    """One remote shell's request: its words, run in its node's container with its stdio."""
    import json
    import socket
    import struct
    import subprocess
    import threading

    with connection:
        _pid, uid, _gid = struct.unpack("3i", connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        if uid != os.getuid():
            return
        message, fds, _flags, _address = socket.recv_fds(connection, 1 << 20, 3)
        try:
            request = json.loads(message)
            node = _nodes()[request["host"]]
            env = dict(os.environ, **node["env"])
            argv = [*node["container"], " ".join(request["words"])]
            if node.get("ssh"):  # another host: the container's command line, with the node's variables, there
                import shlex

                argv = [*node["ssh"], shlex.join(["env", *(f"{k}={v}" for k, v in node["env"].items()), *argv])]
            child = subprocess.Popen(argv, stdin=fds[0], stdout=fds[1], stderr=fds[2], env=env)
        except (ValueError, KeyError, IndexError, OSError) as failure:
            if len(fds) == 3:
                os.write(fds[2], f"batchai mpi relay: cannot start {failure}\n".encode())
            connection.sendall(b"255\n")
            return
        finally:
            for fd in fds:
                os.close(fd)
        # The remote shell gone (mpirun ends it when it aborts): so is what it started.
        threading.Thread(target=lambda: connection.recv(1) or child.terminate(), daemon=True).start()
        code = child.wait()
        try:
            connection.sendall(f"{code if code >= 0 else 128 - code}\n".encode())
        except OSError:
            pass


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
    elif len(argv) >= 3 and argv[0] == "--relay":
        relay(argv[1], argv[2:])
    sys.stderr.write("usage: mpi_agent.py --rsh HOST COMMAND... | --mpirun ARGS... | --relay NAME ARGV...\n")
    raise SystemExit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
