"""`cluster node exec` and `job node exec`, in az's form and ours, with `-L/--address` port forwarding.

    batchai cluster node exec [-n CLUSTER] NODE -- CMD ARGS...        ours
    batchai cluster node exec -c CLUSTER -n NODE --exec "CMD" [-L 9000:localhost:8888 ...]   az's
    batchai job node exec -n JOB [--node-id NODE] -- CMD ARGS...      ours (default: the job's first node)
    batchai job node exec -j JOB [-n NODE] --exec "CMD" [-L ...]      az's

With -L and no command, the ports are forwarded until Ctrl-C.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable

from .cli_forward import Forward, on_node, parse_address
from .errors import BatchAIError

AVAILABLE_NODE_STATES = ("idle", "running")


def add_exec_arguments(parser, job: bool) -> None:
    parser.add_argument("--exec", dest="exec_command", metavar="CMD", help="the command line to run (az's form)")
    parser.add_argument(
        "-L",
        "--address",
        action="append",
        default=[],
        metavar="LOCAL:HOST:REMOTE",
        help="forward 127.0.0.1:LOCAL here to HOST:REMOTE as the node sees it (localhost: the node itself), "
        "while the command runs, or until Ctrl-C without one",
    )
    parser.add_argument(
        "--node-id", help="the node (default: " + ("the job's first node)" if job else "the first available node)")
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds the command may run (default 300)")
    what = "the command" if job else "the node, then the command"
    parser.add_argument("words", nargs="*", metavar="[NODE] -- COMMAND", help=f"ours: {what}")


def cluster_node_exec(client, args, cluster_of_node: Callable[[str], str]) -> None:
    """`-c CLUSTER -n NODE --exec` (az) or `[-n CLUSTER] NODE -- CMD` (ours)."""
    forwards = [parse_address(text) for text in args.address]
    words = list(args.words)
    if args.exec_command is not None or args.cluster and args.name and not words:  # az: -c CLUSTER -n NODE
        cluster, node = args.cluster, args.node_id or args.name or (words.pop(0) if words else None)
    else:
        cluster, node = args.cluster or args.name, args.node_id or (words.pop(0) if words else None)
    if not node and not cluster:
        raise BatchAIError("MissingArgument", "name the cluster: `cluster node exec -c CLUSTER [-n NODE] --exec CMD`")
    cluster = cluster or cluster_of_node(node)
    nodes = client.cluster_nodes(args.workspace, cluster)
    if not node:  # az ran the command on the cluster's first available node
        available = [n for n in nodes if n.get("state") in AVAILABLE_NODE_STATES] or nodes
        if not available:
            raise BatchAIError("NoNodes", f"cluster '{cluster}' has no nodes now; resize it, or wait for its nodes")
        node = available[0]["nodeId"]
    _run(
        args,
        words,
        forwards,
        _address_of(nodes, node, f"cluster '{cluster}'"),
        lambda command: client.exec_on_node(args.workspace, cluster, node, command, args.timeout),
    )


def job_node_exec(client, args) -> None:
    """`-j JOB [-n NODE] --exec` (az) or `-n JOB [--node-id NODE] -- CMD` (ours)."""
    forwards = [parse_address(text) for text in args.address]
    job = args.job or args.name
    node = args.node_id or (args.name if args.job else None) or ""
    if not job:
        raise BatchAIError("MissingArgument", "name the job: `job node exec -j JOB --exec CMD`")
    nodes = client.job_nodes(args.workspace, args.experiment, job)
    if not nodes:
        raise BatchAIError("JobNotOnNodes", f"job '{job}' is on no node now; run a command once it is running")
    node = node or nodes[0]["nodeId"]
    _run(
        args,
        list(args.words),
        forwards,
        _address_of(nodes, node, f"job '{job}'"),
        lambda command: client.exec_on_job_node(args.workspace, args.experiment, job, node, command, args.timeout),
    )


def _address_of(nodes: list[dict], node: str, where: str) -> str:
    for entry in nodes:
        if entry["nodeId"] == node:
            return entry["ipAddress"]
    names = ", ".join(n["nodeId"] for n in nodes) or "none"
    raise BatchAIError("NotFound", f"node {node!r} is not a node of {where} (its nodes: {names})")


def _stop(_signal: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _run(
    args, words: list[str], forwards: list[tuple[int, str, int]], address: str, execute: Callable[[str], dict]
) -> None:
    # The words are joined as ssh joins them: the remote shell reads them (quote what it must not split).
    command = args.exec_command if args.exec_command is not None else " ".join(words)
    if not command.strip() and not forwards:
        raise BatchAIError("MissingArgument", "give a command (--exec CMD, or -- CMD ARGS) or ports to forward (-L)")
    opened: list[Forward] = []
    try:
        for local, host, remote in forwards:
            opened.append(Forward(local, on_node(host, address), remote))
            print(f"Forwarding 127.0.0.1:{local} to {host}:{remote} on the node", file=sys.stderr)
        if not command.strip():
            print("Press Ctrl-C to stop.", file=sys.stderr, flush=True)
            signal.signal(signal.SIGTERM, _stop)  # a plain `kill` ends the forwarding cleanly too
            try:
                while True:  # short sleeps: Ctrl-C may reach a forwarding thread, and only this one acts on it
                    time.sleep(0.5)
            except KeyboardInterrupt:
                raise SystemExit(0) from None
        result = execute(command)
    finally:
        for forward in opened:
            forward.close()
    sys.stdout.write(result["stdout"])
    sys.stderr.write(result["stderr"])
    sys.stdout.flush()
    raise SystemExit(result["exitCode"])
