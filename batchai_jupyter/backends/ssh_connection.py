"""SSH connections to the user's hosts: host keys checked, connections pooled and kept alive.

Host keys are checked against a known_hosts file. An unknown key is refused with its fingerprint
and the way to trust it, unless trust-on-first-use was asked for, which records it. paramiko's
AutoAddPolicy is never used.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import paramiko

from ..errors import BatchAIError
from .ssh_options import HostSpec

KEEPALIVE_SECONDS = 5
# Large windows let SFTP keep many writes in flight on a fast link.
WINDOW_BYTES = 64 * 1024 * 1024
MAX_PACKET_BYTES = 256 * 1024 - 1024


class _Transport(paramiko.Transport):
    """AES-GCM first (when the host offers it): an AEAD cipher saves paramiko the separate MAC pass
    over every packet, which is most of its cost on a bulk transfer (measured: benchmarks/bench_ssh.py)."""

    _preferred_ciphers = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com") + tuple(
        c for c in paramiko.Transport._preferred_ciphers if "gcm" not in c
    )

    def __init__(self, sock, **options):
        super().__init__(sock, default_window_size=WINDOW_BYTES, **options)


class SshError(BatchAIError):
    def __init__(self, message: str):
        super().__init__("SshError", message)


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint, as `ssh-keygen -lf` prints it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def known_hosts_name(host: HostSpec) -> str:
    return host.host if host.port == 22 else f"[{host.host}]:{host.port}"


_known_hosts_lock = threading.Lock()


class _CheckHostKey(paramiko.MissingHostKeyPolicy):
    """Refuses a host whose key is not in known_hosts, or records it (trust on first use)."""

    def __init__(self, host: HostSpec, known_hosts: str, trust_on_first_use: bool):
        self.host, self.known_hosts, self.trust = host, known_hosts, trust_on_first_use

    def missing_host_key(self, client, hostname, key) -> None:
        name = known_hosts_name(self.host)
        if not self.trust:
            raise SshError(
                f"host {self.host.label} offered an unknown host key {key.get_name()} {fingerprint(key)}, not in "
                f"{self.known_hosts}; after checking that fingerprint on the host (`ssh-keygen -lf "
                f"/etc/ssh/ssh_host_*_key.pub`), trust it with `ssh-keyscan -p {self.host.port} {self.host.host} "
                f">> {self.known_hosts}`, or set backendOptions.trustOnFirstUse to true to record it on first use"
            )
        with _known_hosts_lock:
            os.makedirs(os.path.dirname(self.known_hosts) or ".", exist_ok=True)
            with open(self.known_hosts, "a") as handle:
                handle.write(f"{name} {key.get_name()} {key.get_base64()}\n")
        client.get_host_keys().add(name, key.get_name(), key)


@dataclass(frozen=True)
class Login:
    key_file: str | None
    known_hosts: str
    trust_on_first_use: bool
    connect_timeout: float


def connect(host: HostSpec, login: Login) -> paramiko.SSHClient:
    """A new connection to `host`, or SshError saying what went wrong and what to do."""
    client = paramiko.SSHClient()
    if os.path.exists(login.known_hosts):
        client.load_host_keys(login.known_hosts)
    client.set_missing_host_key_policy(_CheckHostKey(host, login.known_hosts, login.trust_on_first_use))
    try:
        client.connect(
            host.host,
            port=host.port,
            username=host.user,
            key_filename=login.key_file,
            timeout=login.connect_timeout,
            banner_timeout=login.connect_timeout,
            auth_timeout=login.connect_timeout,
            allow_agent=True,
            look_for_keys=login.key_file is None,
            transport_factory=_Transport,
        )
    except SshError:
        client.close()
        raise
    except paramiko.BadHostKeyException as failure:
        client.close()
        raise SshError(
            f"host {host.label} offered host key {fingerprint(failure.key)}, but {login.known_hosts} expects "
            f"{fingerprint(failure.expected_key)} for it: the host was reinstalled or someone is in between; if "
            f"you trust the new key, remove the old one with `ssh-keygen -R '{known_hosts_name(host)}' -f "
            f"{login.known_hosts}`"
        ) from None
    except paramiko.AuthenticationException:
        client.close()
        which = f"the key {login.key_file}" if login.key_file else "the SSH agent's and ~/.ssh's keys"
        raise SshError(
            f"host {host.label} refused {which} for user {host.user}: add the public key to "
            f"~{host.user}/.ssh/authorized_keys there, or pass the right one with --key "
            "(backendOptions.keyFile)"
        ) from None
    except (TimeoutError, OSError, paramiko.SSHException, EOFError) as failure:
        client.close()
        reason = str(failure) or type(failure).__name__
        raise SshError(
            f"cannot reach host {host.label}: {reason}; check the address and port, that the host "
            "is up and that sshd runs there"
        ) from None
    client.get_transport().set_keepalive(KEEPALIVE_SECONDS)
    return client


class HostConnection:
    """One pooled, re-opened-when-dropped connection to a host, shared by threads."""

    def __init__(self, host: HostSpec, login: Login):
        self.host = host
        self.login = login
        self._client: paramiko.SSHClient | None = None
        self._lock = threading.Lock()

    def client(self) -> paramiko.SSHClient:
        with self._lock:
            transport = self._client.get_transport() if self._client else None
            if transport is None or not transport.is_active():
                if self._client:
                    self._client.close()
                self._client = None
                self._client = connect(self.host, self.login)
            return self._client

    def drop(self) -> None:
        with self._lock:
            if self._client:
                self._client.close()
            self._client = None

    @contextmanager
    def _answering(self) -> Iterator[None]:
        """A host that stops answering mid-command is dropped and reported as an SshError."""
        try:
            yield
        except SshError:
            raise
        except (TimeoutError, OSError, paramiko.SSHException, EOFError) as failure:
            self.drop()
            raise SshError(f"host {self.host.label} stopped answering: {failure or type(failure).__name__}") from None

    def _session(self, command: str, timeout: float, stdin: bytes | None, combine_stderr: bool = False):
        """A channel running `command`, its stdin sent and closed."""
        channel = self.client().get_transport().open_session(timeout=self.login.connect_timeout)
        channel.settimeout(timeout)
        channel.set_combine_stderr(combine_stderr)
        channel.exec_command(command)
        if stdin is not None:
            channel.sendall(stdin)
        channel.shutdown_write()
        return channel

    def run(self, command: str, timeout: float = 60.0, stdin: bytes | None = None) -> tuple[int, str, str]:
        """(exit status, stdout, stderr) of `command` in the host's login shell."""
        with self._answering():
            channel = self._session(command, timeout, stdin)
            out, err = bytearray(), bytearray()
            while True:
                chunk = channel.recv(1 << 16)
                if not chunk:
                    break
                out += chunk
            while True:
                chunk = channel.recv_stderr(1 << 16)
                if not chunk:
                    break
                err += chunk
            status = channel.recv_exit_status()
            channel.close()
        return status, out.decode(errors="replace"), err.decode(errors="replace")

    def run_streaming(
        self, command: str, sink: Callable[[str], None], timeout: float = 60.0, stdin: bytes | None = None
    ) -> tuple[int, str]:
        """(exit status, output) of `command`, its stdout and stderr as one, each line handed to `sink` as
        it arrives (a pull's progress)."""
        lines: list[str] = []
        with self._answering():
            channel = self._session(command, timeout, stdin, combine_stderr=True)
            pending = b""
            while chunk := channel.recv(1 << 16):
                *complete, pending = (pending + chunk).split(b"\n")
                for line in complete:
                    lines.append(_pass_on(line, sink))
            if pending:
                lines.append(_pass_on(pending, sink))
            status = channel.recv_exit_status()
            channel.close()
        return status, "\n".join(lines)

    def check(self, command: str, timeout: float = 60.0, stdin: bytes | None = None) -> str:
        status, out, err = self.run(command, timeout, stdin)
        if status != 0:
            raise SshError(
                f"on host {self.host.label}, `{command[:120]}` failed with exit code {status}: "
                f"{(err or out).strip()[-500:]}"
            )
        return out

    def sftp(self) -> paramiko.SFTPClient:
        """A new SFTP channel (callers that run in parallel each take their own)."""
        try:
            return paramiko.SFTPClient.from_transport(
                self.client().get_transport(), window_size=WINDOW_BYTES, max_packet_size=MAX_PACKET_BYTES
            )
        except SshError:
            raise
        except paramiko.SSHException as failure:
            raise SshError(
                f"host {self.host.label} refused an SFTP session ({failure}); enable the sftp subsystem "
                "in its sshd_config (`Subsystem sftp internal-sftp`)"
            ) from None
        except (OSError, EOFError) as failure:
            self.drop()
            raise SshError(f"host {self.host.label} stopped answering: {failure or type(failure).__name__}") from None


class ConnectionPool:
    """One HostConnection per (host, login): every node, task and poll on a host shares it."""

    def __init__(self):
        self._connections: dict[tuple, HostConnection] = {}
        self._lock = threading.Lock()

    def get(self, host: HostSpec, login: Login) -> HostConnection:
        key = (host.host, host.port, host.user, login)
        with self._lock:
            if key not in self._connections:
                self._connections[key] = HostConnection(host, login)
            return self._connections[key]

    def close(self) -> None:
        with self._lock:
            for connection in self._connections.values():
                connection.drop()
            self._connections.clear()


def _pass_on(line: bytes, sink: Callable[[str], None]) -> str:
    text = line.decode(errors="replace").rstrip("\r")
    if text.strip():
        sink(text)
    return text
