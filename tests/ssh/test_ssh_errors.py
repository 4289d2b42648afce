"""SSH clusters that cannot work say why: unknown or changed host keys, a wrong key, an unreachable
host, bad backendOptions. Real sshd hosts; nothing is mocked."""

from __future__ import annotations

import os
import subprocess

import pytest

from batchai_jupyter.errors import BatchAIError
from helpers.ssh import ssh_cluster_spec
from helpers.waits import wait_for


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from helpers.service import ServiceProcess

    base = tmp_path_factory.mktemp("ssh-errors")
    process = ServiceProcess(str(base / "home"), str(base / "runtime"))
    client = process.start()
    yield process, client
    process.stop()


def node_errors(client, cluster: str) -> str:
    """The errors of the cluster's first node, once it has become unusable."""

    def unusable():
        nodes = client.list(client.cluster_path("default", cluster) + "/nodes")
        return nodes if nodes and all(n["state"] == "unusable" for n in nodes) else None

    nodes = wait_for(unusable, f"the nodes of {cluster} to be refused", timeout=60)
    return " ".join(e["message"] for e in nodes[0]["errors"])


def idle(client, cluster: str, count: int):
    def ready():
        nodes = client.list(client.cluster_path("default", cluster) + "/nodes")
        bad = [n for n in nodes if n["state"] == "unusable"]
        assert not bad, bad
        return nodes if len(nodes) == count and all(n["state"] == "idle" for n in nodes) else None

    return wait_for(ready, f"{cluster} to be idle", timeout=60)


def test_unknown_host_key_is_refused_with_its_fingerprint(service, ssh_hosts, tmp_path):
    _, client = service
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    host = ssh_hosts.hosts[0]
    client.create_cluster("default", ssh_cluster_spec(ssh_hosts, [host], knownHosts=str(empty)), "unknown-key")
    message = node_errors(client, "unknown-key")
    expected = subprocess.run(
        ["ssh-keygen", "-lf", os.path.join(host.directory, "ssh_host_ed25519_key.pub")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[1]
    assert "unknown host key" in message and expected in message, message
    assert "ssh-keyscan" in message and "trustOnFirstUse" in message, message
    assert empty.read_text() == "", "a refused key must not be recorded"


def test_trust_on_first_use_records_the_key(service, ssh_hosts, tmp_path):
    _, client = service
    known = tmp_path / "known_hosts"
    host = ssh_hosts.hosts[1]
    client.create_cluster(
        "default", ssh_cluster_spec(ssh_hosts, [host], knownHosts=str(known), trustOnFirstUse=True), "tofu"
    )
    idle(client, "tofu", 1)
    line = known.read_text().split()
    with open(os.path.join(host.directory, "ssh_host_ed25519_key.pub")) as handle:
        assert line == [host.address, *handle.read().split()[:2]], line


def test_changed_host_key_is_refused(service, ssh_hosts, tmp_path):
    _, client = service
    host = ssh_hosts.hosts[0]
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    known = tmp_path / "known_hosts"
    known.write_text(f"{host.address} {' '.join(open(str(other) + '.pub').read().split()[:2])}\n")
    client.create_cluster("default", ssh_cluster_spec(ssh_hosts, [host], knownHosts=str(known)), "changed-key")
    message = node_errors(client, "changed-key")
    assert "expects" in message and "ssh-keygen -R" in message, message


def test_wrong_key_is_refused(service, ssh_hosts, tmp_path):
    _, client = service
    wrong = tmp_path / "id_wrong"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    client.create_cluster("default", ssh_cluster_spec(ssh_hosts, [ssh_hosts.hosts[0]], keyFile=str(wrong)), "wrong-key")
    message = node_errors(client, "wrong-key")
    assert "refused the key" in message and str(wrong) in message and "authorized_keys" in message, message


def test_unreachable_host_is_named(service, ssh_hosts):
    _, client = service
    spec = ssh_cluster_spec(ssh_hosts, [ssh_hosts.hosts[0]], connectTimeout=2)
    spec["backendOptions"]["hosts"] = [f"root@{ssh_hosts.subnet}.250:2299"]
    client.create_cluster("default", spec, "unreachable")
    message = node_errors(client, "unreachable")
    assert f"cannot reach host root@{ssh_hosts.subnet}.250:2299" in message, message


@pytest.mark.parametrize(
    "options, field",
    [
        ({"hosts": []}, "backendOptions.hosts"),
        ({"hosts": ["root@a:99999"]}, "backendOptions.hosts[0]"),
        ({"hosts": ["a", "a"]}, "backendOptions.hosts[1]"),
        ({"hosts": ["a"], "keyFile": "/nonexistent/key"}, "backendOptions.keyFile"),
        ({"hosts": ["a"], "trustOnFirstUse": "yes"}, "backendOptions.trustOnFirstUse"),
        ({"hosts": ["a"], "colour": "blue"}, "backendOptions.colour"),
    ],
)
def test_bad_backend_options_are_refused_at_create(service, options, field):
    _, client = service
    with pytest.raises(BatchAIError) as raised:
        client.create_cluster("default", {"backend": "ssh", "nodeCount": 1, "backendOptions": options}, "bad-options")
    assert raised.value.code == "InvalidBackendOptions" and field in raised.value.message, raised.value.message
    with pytest.raises(BatchAIError):
        client.get(client.cluster_path("default", "bad-options"))  # nothing half-made


def test_setup_task_runs_on_the_host_and_a_failing_one_keeps_its_log(service, ssh_hosts):
    _, client = service
    spec = ssh_cluster_spec(ssh_hosts, [ssh_hosts.hosts[0]])
    spec["setupTask"] = "echo prepared on $(hostname -I) in $AZ_BATCHAI_MOUNT_ROOT"
    client.create_cluster("default", spec, "with-setup")
    node = idle(client, "with-setup", 1)[0]
    log = client.request(
        "GET",
        client.cluster_path("default", "with-setup") + "/files/content",
        params={"path": f"stdout-setup-{node['nodeId']}.txt"},
        raw=True,
    ).content.decode()
    assert f"prepared on {ssh_hosts.hosts[0].address}" in log and "/batchai-node/mounts" in log, log

    spec = ssh_cluster_spec(ssh_hosts, [ssh_hosts.hosts[1]])
    spec["setupTask"] = "echo cannot install >&2; exit 4"
    client.create_cluster("default", spec, "bad-setup")
    message = node_errors(client, "bad-setup")
    assert "exited with code 4" in message and "stderr-setup-" in message, message
    names = [f["name"] for f in client.list(client.cluster_path("default", "bad-setup") + "/files")]
    node_id = client.list(client.cluster_path("default", "bad-setup") + "/nodes")[0]["nodeId"]
    assert f"stderr-setup-{node_id}.txt" in names, names
    log = client.request(
        "GET",
        client.cluster_path("default", "bad-setup") + "/files/content",
        params={"path": f"stderr-setup-{node_id}.txt"},
        raw=True,
    ).content.decode()
    assert log.strip() == "cannot install", log
