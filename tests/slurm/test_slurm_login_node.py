"""A service that is not on a login node: the Slurm commands run over SSH on one (a real sshd on
this machine's loopback, logged in to with a key the test makes), through the SSH backend's
connection code. The shared file system is this machine's, as on a workstation with it mounted."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from helpers.api import read_log, submit, wait_job
from helpers.slurm import make_slurm_cluster
from helpers.tools import require_tool
from helpers.waits import wait_for

SSHD_CONFIG = """\
ListenAddress 127.0.0.1
Port {port}
HostKey {dir}/host_key
AuthorizedKeysFile {dir}/authorized_keys
PidFile {dir}/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
LogLevel INFO
"""


@pytest.fixture(scope="module")
def login_node(tmp_path_factory):
    """An sshd on 127.0.0.1 (the 'login node'); yields (user@host:port, private key, known_hosts)."""
    require_tool("ssh-keygen", "apt-get install openssh-client")
    if not os.path.exists("/usr/sbin/sshd"):
        pytest.fail("/usr/sbin/sshd is not installed; apt-get install openssh-server (.ci/run installs it)")
    directory = tmp_path_factory.mktemp("login-sshd")
    for key in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(directory / key)], check=True)
    (directory / "authorized_keys").write_text((directory / "user_key.pub").read_text())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (directory / "sshd_config").write_text(SSHD_CONFIG.format(port=port, dir=directory))
    host_key = (directory / "host_key.pub").read_text().split()
    (directory / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    os.makedirs("/run/sshd", exist_ok=True)
    subprocess.run(
        ["/usr/sbin/sshd", "-f", str(directory / "sshd_config"), "-E", str(directory / "sshd.log")], check=True
    )
    pid_file = directory / "sshd.pid"
    pid = int(wait_for(lambda: pid_file.read_text().strip(), "the login node's sshd to write its pid file", timeout=20))
    user = os.environ.get("USER") or "root"
    yield (
        f"{user}@127.0.0.1:{port}",
        str(directory / "user_key"),
        str(directory / "known_hosts"),
        str(directory / "sshd.log"),
    )
    os.kill(pid, 15)


def test_slurm_commands_over_ssh_on_a_login_node(slurm, slurm_client, login_node, unique):
    host, key, known_hosts, sshd_log = login_node
    cluster = unique("remote-hpc")
    make_slurm_cluster(slurm_client, cluster, loginNode=host, keyFile=key, knownHosts=known_hosts, slurmConf=slurm.conf)
    name = unique("remote")
    submit(
        slurm_client,
        name,
        cluster,
        {
            "nodeCount": 2,
            "customToolkitSettings": {
                "commandLine": "echo over ssh on $SLURMD_NODENAME, submitted from $SLURM_SUBMIT_HOST"
            },
        },
    )
    job = wait_job(slurm_client, name, timeout=120)
    assert job["executionState"] == "succeeded", job["executionInfo"]
    assert read_log(slurm_client, name, "stdout.txt").startswith("over ssh on n1, submitted from "), read_log(
        slurm_client, name, "stdout.txt"
    )
    with open(sshd_log) as handle:
        assert "Accepted publickey for" in handle.read(), "the Slurm commands did not go through the login node"


def test_login_node_that_refuses_the_key_says_so(slurm_client, login_node, unique, tmp_path):
    host, _key, known_hosts, _log = login_node
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    from batchai_jupyter.errors import BatchAIError

    with pytest.raises(BatchAIError) as failure:
        slurm_client.create_cluster(
            "default",
            {
                "backend": "slurm",
                "backendOptions": {"loginNode": host, "keyFile": str(tmp_path / "other"), "knownHosts": known_hosts},
            },
            unique("refused"),
        )
    assert failure.value.code == "SshError" and "refused" in failure.value.message, failure.value
