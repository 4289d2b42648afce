"""Heartbeats to the hosts: each watched host is asked to run `true` every second over its
pooled connection, and every LOAD_SECONDS to read its load instead (load_readings.LOAD_COMMAND:
/proc and nvidia-smi, no process of ours stays on the host). A host that stops answering is
reported down (with the reason) until it answers again; the service then makes its node
`unusable`, requeues its job, and returns the node to `idle` once the host is back. A host may also
have a notice file the same heartbeat reads (an Azure Spot VM's announced eviction): while it has
content, that is the host's `notice`."""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Callable

from ..ports.compute import LoadSample
from .load_readings import LOAD_COMMAND, CpuTimes, read_host
from .ssh_connection import HostConnection, SshError

HEARTBEAT_SECONDS = 1.0
LOAD_SECONDS = 3.0
NOTICE_END = "--batchai-notice-end--"


class HostMonitor:
    def __init__(self, on_change: Callable[[], None], interval: float = HEARTBEAT_SECONDS):
        self.on_change = on_change
        self.interval = interval
        self._watched: dict[tuple, tuple[HostConnection, set[str]]] = {}  # host key -> (connection, node keys)
        self._down: dict[tuple, str] = {}
        self._loads: dict[tuple, tuple[LoadSample, CpuTimes | None]] = {}  # host key -> (latest, its CPU times)
        self._notice_files: dict[tuple, str] = {}
        self._notices: dict[tuple, str] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @staticmethod
    def _key(connection: HostConnection) -> tuple:
        return connection.host.host, connection.host.port, connection.host.user

    def watch(self, node_key: str, connection: HostConnection, notice_file: str | None = None) -> None:
        with self._lock:
            key = self._key(connection)
            if notice_file:
                self._notice_files[key] = notice_file
            _, nodes = self._watched.setdefault(key, (connection, set()))
            nodes.add(node_key)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="batchai-ssh-heartbeat", daemon=True)
                self._thread.start()

    def unwatch(self, node_key: str) -> None:
        with self._lock:
            for key, (_, nodes) in list(self._watched.items()):
                nodes.discard(node_key)
                if not nodes:
                    del self._watched[key]
                    self._down.pop(key, None)
                    self._loads.pop(key, None)
                    self._notice_files.pop(key, None)
                    self._notices.pop(key, None)

    def is_watched(self, node_key: str) -> bool:
        with self._lock:
            return any(node_key in nodes for _, nodes in self._watched.values())

    def down_reason(self, connection: HostConnection) -> str | None:
        with self._lock:
            return self._down.get(self._key(connection))

    def load(self, connection: HostConnection) -> LoadSample | None:
        """The host's latest load sample; None before the first, or while the host is down."""
        with self._lock:
            key = self._key(connection)
            latest = self._loads.get(key)
            return None if latest is None or key in self._down else latest[0]

    def notice(self, connection: HostConnection) -> str | None:
        with self._lock:
            return self._notices.get(self._key(connection))

    def stop(self) -> None:
        """Ends the heartbeat thread (probes under way finish on their own)."""
        self._stopping.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            with self._lock:
                connections = [(key, connection) for key, (connection, _) in self._watched.items()]
            for key, connection in connections:
                threading.Thread(target=self._probe, args=(key, connection), daemon=True).start()
            self._stopping.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def _probe(self, key: tuple, connection: HostConnection) -> None:
        if getattr(connection, "_probing", False):  # the last probe of this host is still waiting
            return
        connection._probing = True
        with self._lock:
            last = self._loads.get(key)
            notice_file = self._notice_files.get(key)
        read_load = last is None or time.time() - last[0].sampled >= LOAD_SECONDS
        command = LOAD_COMMAND if read_load else "true"
        if notice_file:  # the notice first, then the marker, then the load reading
            command = f"cat {shlex.quote(notice_file)} 2>/dev/null; printf '\\n%s\\n' {NOTICE_END}; {command}"
        notice = None
        try:
            output = connection.check(command, timeout=max(5.0, connection.login.connect_timeout))
            if notice_file:
                text, _, output = output.partition(f"\n{NOTICE_END}\n")
                notice = text.strip() or None
            reason = None
        except SshError as failure:
            reason = failure.message
        finally:
            connection._probing = False
        with self._lock:
            if key not in self._watched:
                return
            changed = self._down.get(key) != reason or (reason is None and self._notices.get(key) != notice)
            if reason is None:
                self._down.pop(key, None)
                if read_load:
                    self._loads[key] = read_host(output, last[1] if last else None)
                if notice is None:
                    self._notices.pop(key, None)
                else:
                    self._notices[key] = notice
            else:
                self._down[key] = reason
        if changed:
            self.on_change()
