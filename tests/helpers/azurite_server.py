"""A real Azurite (Microsoft's Azure Storage emulator) on 127.0.0.1, for the Blob datastore tests."""

from __future__ import annotations

import os
import subprocess

from .tools import free_port, require_tool
from .waits import wait_listening

ACCOUNT = "devstoreaccount1"
# The emulator's published well-known key (it is not a secret: every Azurite has it).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class Azurite:
    """`location=None` keeps blobs in memory; a directory keeps them across a restart."""

    def __init__(self, work_dir: str, location: str | None = None):
        self.work_dir = work_dir
        self.location = location
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={self.endpoint};"

    def start(self, timeout: float = 60.0) -> Azurite:
        program = require_tool("azurite-blob", "install it with `npm install -g azurite@3`")
        storage = ["--location", self.location] if self.location else ["--inMemoryPersistence"]
        os.makedirs(self.work_dir, exist_ok=True)
        log = open(os.path.join(self.work_dir, "azurite.log"), "ab")
        self.process = subprocess.Popen(
            [
                program,
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(self.port),
                "--skipApiVersionCheck",
                "--loose",
                *storage,
            ],
            cwd=self.work_dir,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_listening(self.process, self.port, "azurite", f"{self.work_dir}/azurite.log", timeout)
        return self

    def stop(self, graceful: bool = False) -> None:
        """Kills it (a crash), or with `graceful` lets it save its state (a restart keeps the blobs)."""
        if self.process and self.process.poll() is None:
            if graceful:
                self.process.terminate()
            else:
                self.process.kill()
            self.process.wait()


def blob_datastore(home: str, container: str, **config):
    """A BlobDatastore on `container` (config: connection_string=..., or account_name/account_key/...)."""
    from batchai_jupyter.ports.datastores import DatastoreContext
    from batchai_jupyter.storage.blob import create

    return create({"container": container, **config}, DatastoreContext(home))
