"""`-L/--address LOCAL:HOST:REMOTE` of `node exec`: a local port that leads to a port as a node sees it.

As `az batchai ... node exec -L` did over SSH: HOST is resolved on the node, so `localhost` is the node
itself (its own address: on the local backend each node has its own loopback address, where its jobs
listen). The connection is made from this machine to the node's address, which must be reachable from
here (true for local nodes, and for ssh nodes on a network this machine is on).
"""

from __future__ import annotations

import re
import socket
import threading

from .errors import BatchAIError

_SPEC = re.compile(r"^(?P<local>\d{1,5}):(?P<host>[^:]+):(?P<remote>\d{1,5})$")
_THIS_NODE = ("localhost", "127.0.0.1", "0.0.0.0", "::1")


def parse_address(text: str) -> tuple[int, str, int]:
    """(local port, host as the node names it, remote port) of `LOCAL:HOST:REMOTE`."""
    match = _SPEC.match(text.strip())
    ports = [int(match["local"]), int(match["remote"])] if match else []
    if match is None or not all(0 < port < 65536 for port in ports):
        raise BatchAIError(
            "InvalidArgument",
            f"--address {text!r}: give LOCAL_PORT:HOST:REMOTE_PORT, e.g. 9000:localhost:8888 "
            "(localhost is the node itself)",
        )
    return ports[0], match["host"], ports[1]


def on_node(host: str, node_address: str) -> str:
    """The address this machine connects to for `host` as the node names it."""
    return node_address if host in _THIS_NODE else host


class Forward:
    """Listens on 127.0.0.1:`local` and pipes each connection to (host, port) until closed."""

    def __init__(self, local: int, host: str, port: int):
        self.target = (host, port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.listener.bind(("127.0.0.1", local))
        except OSError as failure:
            self.listener.close()
            raise BatchAIError(
                "PortInUse", f"--address: local port {local} cannot be used ({failure.strerror}); pick another"
            ) from None
        self.listener.listen(16)
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=30)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
        back.start()
        _pipe(client, upstream)
        back.join()
        client.close()
        upstream.close()

    def close(self) -> None:
        self.closed.set()
        self.listener.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copies until `source` ends, then ends `sink`'s writing side (the other way may still be busy)."""
    try:
        while chunk := source.recv(1 << 16):
            sink.sendall(chunk)
    except OSError:
        pass
    try:
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass
