"""What the service keeps of each Azure cluster, on disk under <home>/azure/clusters/<uuid>/: the long
operation in flight (its kind and continuation token, so a service killed mid-create resumes the same
operation), which node has which scale-set instance, and the cluster's own SSH key pair (the private
key never leaves the service's machine and is never shown).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from dataclasses import asdict, dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass
class ClusterState:
    created: bool = False  # the scale set's create request was accepted
    subnet: str = ""
    operation: dict[str, str] = field(default_factory=dict)  # {"kind", "token"} while one is in flight
    nodes: dict[str, str] = field(default_factory=dict)  # node name -> instance id


class ClusterStates:
    def __init__(self, root: str):
        self.root = root
        self._lock = threading.Lock()

    def folder(self, uuid: str) -> str:
        return os.path.join(self.root, uuid)

    def load(self, uuid: str) -> ClusterState:
        try:
            with open(os.path.join(self.folder(uuid), "state.json")) as handle:
                return ClusterState(**json.load(handle))
        except (OSError, ValueError, TypeError):
            return ClusterState()

    def save(self, uuid: str, state: ClusterState) -> None:
        with self._lock:
            os.makedirs(self.folder(uuid), mode=0o700, exist_ok=True)
            path = os.path.join(self.folder(uuid), "state.json")
            with open(path + ".tmp", "w") as handle:
                json.dump(asdict(state), handle)
            os.replace(path + ".tmp", path)

    def key_pair(self, uuid: str) -> tuple[str, str]:
        """(private key file, public key line) of the cluster's admin key, made on first use."""
        folder = self.folder(uuid)
        private = os.path.join(folder, "id_ed25519")
        if not os.path.exists(private):
            os.makedirs(folder, mode=0o700, exist_ok=True)
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
            )
            public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            descriptor = os.open(private + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(pem)
            with open(private + ".pub", "wb") as handle:
                handle.write(public + b" batchai-cluster-" + uuid[:8].encode() + b"\n")
            os.replace(private + ".tmp", private)
        with open(private + ".pub") as handle:
            return private, handle.read().strip()

    def known_hosts(self, uuid: str) -> str:
        return os.path.join(self.folder(uuid), "known_hosts")

    def forget(self, uuid: str) -> None:
        shutil.rmtree(self.folder(uuid), ignore_errors=True)
