"""The Azure backend against the fake Resource Manager (fake_arm.py): how the service is pointed at it,
and Azure cluster specs for the tests."""

from __future__ import annotations

import json
import os
import re
import sys

from .fake_arm import FakeArm, FakeArmServer, FakeImds
from .sshd_hosts import SshHosts

SUBSCRIPTION = "00000000-0000-0000-0000-0000000000a1"
TENANT = "11111111-1111-1111-1111-1111111111b2"
CLIENT_SECRET = "fake-client-secret-do-not-print"
ADMIN = "azureuser"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class AzureFixture:
    """One fake ARM over HTTPS whose scale-set instances are real sshd hosts, and the IMDS they ask."""

    def __init__(self, arm: FakeArm, server: FakeArmServer, imds: FakeImds, hosts: SshHosts, cert: str):
        self.arm, self.server, self.imds, self.hosts, self.cert = arm, server, imds, hosts, cert

    def host_at(self, address: str):
        return next(h for h in self.hosts.hosts if h.address == address)


def register_entry_point(directory: str) -> str:
    """A distribution on PYTHONPATH declaring the `azure` backend entry point exactly as pyproject.toml
    does (the test venv was installed before the backend existed; CI installs the project itself)."""
    with open(os.path.join(ROOT, "pyproject.toml")) as handle:
        section = handle.read().split('[project.entry-points."batchai_jupyter.backends"]', 1)[1].split("\n[", 1)[0]
    points = dict(re.findall(r'^(\w+) = "([^"]+)"', section, re.M))
    info = os.path.join(directory, "batchai_azure_backend_test-0.dist-info")
    os.makedirs(info, exist_ok=True)
    with open(os.path.join(info, "METADATA"), "w") as handle:
        handle.write("Metadata-Version: 2.1\nName: batchai-azure-backend-test\nVersion: 0\n")
    with open(os.path.join(info, "entry_points.txt"), "w") as handle:
        handle.write(f"[batchai_jupyter.backends]\nazure = {points['azure']}\n")
    return directory


def service_env(azure: AzureFixture, entry_points: str, config_dir: str, **options) -> dict:
    """DefaultAzureCredential's environment path (a service principal) against the fake's Entra ID, the
    fake's certificate trusted the way a user trusts a proxy's (REQUESTS_CA_BUNDLE), and the site's
    options for the azure backend in the Jupyter config (BatchAIApp.backend_options), as a user sets them."""
    os.makedirs(config_dir, exist_ok=True)
    with open(os.path.join(config_dir, "jupyter_server_config.json"), "w") as handle:
        json.dump({"BatchAIApp": {"backend_options": {"azure": backend_options(azure, **options)}}}, handle)
    return {
        "JUPYTER_CONFIG_DIR": config_dir,
        "AZURE_TENANT_ID": TENANT,
        "AZURE_CLIENT_ID": "batchai-test-app",
        "AZURE_CLIENT_SECRET": CLIENT_SECRET,
        "AZURE_AUTHORITY_HOST": azure.server.authority,
        "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
        "AZURE_LOCATION": "eastus",
        "REQUESTS_CA_BUNDLE": azure.cert,
        "PYTHONPATH": os.pathsep.join([ROOT, entry_points, os.environ.get("PYTHONPATH", "")]),
    }


def backend_options(azure: AzureFixture, **extra) -> dict:
    return {
        "armEndpoint": azure.server.base_url,
        "imdsEndpoint": azure.imds.url,
        "disableInstanceDiscovery": True,
        "pollSeconds": 0.2,
        "viewSeconds": 1,
        "python": sys.executable,
        "root": "~/batchai-node",
        "outputSyncSeconds": 1,
        "connectTimeout": 3,
        **extra,
    }
