"""What the hosts of one SSH cluster need among themselves, and which host each node is.

mpirun on the master host starts the ranks on the other hosts over ssh. The service gives every
cluster its own key pair: the private key goes to `<root>/ssh/id_cluster` on each host, the public
key into the host's ~/.ssh/authorized_keys (tagged, removed when the node is released), and
`<root>/ssh/config` + `known_hosts` name the cluster's hosts with the host keys the service itself
verified. The user's own private key never leaves the service's machine.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import threading

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .ssh_connection import HostConnection, known_hosts_name
from .ssh_options import HostSpec, SshOptions


class HostAssignments:
    """node name -> host, per cluster, kept on disk so a restarted service never doubles up a host."""

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()

    def _read(self) -> dict:
        try:
            with open(self.path) as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return {}

    def _write(self, data: dict) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        temporary = self.path + ".tmp"
        with open(temporary, "w") as handle:
            json.dump(data, handle)
        os.replace(temporary, self.path)

    def take(self, cluster_uuid: str, node: str, hosts: tuple[HostSpec, ...]) -> HostSpec | None:
        with self._lock:
            data = self._read()
            taken = data.setdefault(cluster_uuid, {})
            if node in taken:
                return HostSpec(**taken[node])
            used = {(h["host"], h["port"]) for h in taken.values()}
            for host in hosts:
                if (host.host, host.port) not in used:
                    taken[node] = dataclasses.asdict(host)
                    self._write(data)
                    return host
            return None

    def release(self, cluster_uuid: str, node: str) -> None:
        with self._lock:
            data = self._read()
            data.get(cluster_uuid, {}).pop(node, None)
            if not data.get(cluster_uuid):
                data.pop(cluster_uuid, None)
            self._write(data)

    def hosts_of(self, cluster_uuid: str) -> list[HostSpec]:
        with self._lock:
            return [HostSpec(**h) for h in self._read().get(cluster_uuid, {}).values()]


class ClusterKeys:
    def __init__(self, directory: str):
        self.directory = directory
        self._lock = threading.Lock()

    def key_pair(self, cluster_uuid: str) -> tuple[bytes, str]:
        """(OpenSSH private key, public key line) of the cluster, made on first use."""
        private_path = os.path.join(self.directory, cluster_uuid, "id_ed25519")
        with self._lock:
            if not os.path.exists(private_path):
                os.makedirs(os.path.dirname(private_path), mode=0o700, exist_ok=True)
                key = Ed25519PrivateKey.generate()
                pem = key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
                )
                descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "wb") as handle:
                    handle.write(pem)
            with open(private_path, "rb") as handle:
                pem = handle.read()
        key = serialization.load_ssh_private_key(pem, None)
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        return pem, f"{public.decode()} batchai-cluster-{cluster_uuid}"

    def install(self, connection: HostConnection, cluster_uuid: str, root: str) -> None:
        pem, public = self.key_pair(cluster_uuid)
        key_path = shlex.quote(f"{root}/ssh/id_cluster")
        tag = shlex.quote(f"batchai-cluster-{cluster_uuid}")
        script = (
            f"umask 077; mkdir -p ~/.ssh {shlex.quote(root + '/ssh')}; cat > {key_path}.tmp && "
            f"mv {key_path}.tmp {key_path}; touch ~/.ssh/authorized_keys; "
            f"grep -q {tag} ~/.ssh/authorized_keys || echo {shlex.quote(public)} >> ~/.ssh/authorized_keys"
        )
        connection.check(f"sh -c {shlex.quote(script)}", stdin=pem)

    def remove(self, connection: HostConnection, cluster_uuid: str) -> None:
        tag = f"batchai-cluster-{cluster_uuid}"
        connection.run(
            f"[ -f ~/.ssh/authorized_keys ] && sed -i {shlex.quote('/' + tag + '/d')} ~/.ssh/authorized_keys; true",
            timeout=30,
        )

    def forget(self, cluster_uuid: str) -> None:
        path = os.path.join(self.directory, cluster_uuid, "id_ed25519")
        if os.path.exists(path):
            os.unlink(path)

    @staticmethod
    def ssh_files(root: str, options: SshOptions, hosts: list[HostSpec]) -> str:
        """A shell script writing `<root>/ssh/config` and `known_hosts` for the cluster's hosts."""
        known = paramiko.HostKeys()
        if os.path.exists(options.known_hosts):
            known.load(options.known_hosts)
        config = [
            f"Host *\n  IdentityFile {root}/ssh/id_cluster\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {root}/ssh/known_hosts\n  StrictHostKeyChecking yes\n  BatchMode yes\n"
            "  LogLevel ERROR\n"
        ]
        known_lines = []
        for host in hosts:
            address = host.address or _resolve(host.host)
            names = sorted({host.host, address})
            config.insert(0, f"Host {' '.join(names)}\n  User {host.user}\n  Port {host.port}\n")
            keys = known.lookup(known_hosts_name(host)) or {}
            for key in keys.values():
                for name in names:
                    shown = name if host.port == 22 else f"[{name}]:{host.port}"
                    known_lines.append(f"{shown} {key.get_name()} {key.get_base64()}")
        return (
            f"umask 077\ncat > {shlex.quote(root + '/ssh/config')} <<'BATCHAI_EOF'\n{''.join(config)}BATCHAI_EOF\n"
            f"cat > {shlex.quote(root + '/ssh/known_hosts')} <<'BATCHAI_EOF'\n"
            + "\n".join(known_lines)
            + "\nBATCHAI_EOF\n"
        )


def _resolve(host: str) -> str:
    import socket

    try:
        return socket.gethostbyname(host)
    except OSError:
        return host
