"""SSH clusters on real sshd hosts (sshd_hosts.py), and putting a job's files into the service's
datastore (what an upload from a notebook does)."""

from __future__ import annotations

import os
import shlex
import sys
import textwrap

import pytest

from .api import read_log, submit
from .sshd_hosts import SSHD, SshHosts
from .tools import require_tool
from .waits import wait_for

PYTHON = sys.executable

# A 2-rank DistributedDataParallel job over gloo: each rank prints a RECORD of where it ran and whether
# the replicas stayed in sync; rank 0 saves the model to the MODEL output.
DDP_SCRIPT = """
    import json, os, socket
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")  # env://: MASTER_ADDR (the master host), MASTER_PORT, RANK, WORLD_SIZE
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.05)
    data = torch.Generator().manual_seed(100 + rank)
    for step in range(20):
        x = torch.randn(16, 4, generator=data)
        loss = ((ddp(x) - x.sum(dim=1, keepdim=True)) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.zeros_like(weights) for _ in range(world)]
    dist.all_gather(gathered, weights)
    # Each rank tells which host it ran on: its address on the hosts' network.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((os.environ["MASTER_ADDR"], 9))
        address = probe.getsockname()[0]
    print("RECORD " + json.dumps({"rank": rank, "world": world, "address": address,
                                  "master": os.environ["MASTER_ADDR"],
                                  "in_sync": all(torch.equal(gathered[0], g) for g in gathered)}), flush=True)
    if rank == 0:
        torch.save(model.state_dict(), os.path.join(os.environ["AZ_BATCHAI_OUTPUT_MODEL"], "model.pt"))
    dist.barrier()
    dist.destroy_process_group()
    print(end="", flush=True)
    os._exit(0)
"""


def require_sshd() -> None:
    require_tool("ip", "apt-get install iproute2")
    require_tool("ssh-keygen", "apt-get install openssh-client")
    if not os.path.exists(SSHD):
        pytest.fail(f"{SSHD} is not installed; apt-get install openssh-server (.ci/run installs it)")
    if os.geteuid() != 0:
        pytest.fail("the SSH tests make network namespaces and need root")


def make_hosts(tmp_path_factory, count: int, users: tuple[str, ...] = ()) -> SshHosts:
    require_sshd()
    # The hosts must not see the service's files: pytest's base directory holds its home.
    return SshHosts(count, hidden=[str(tmp_path_factory.getbasetemp().parent)], users=users)


def ssh_cluster_spec(hosts: SshHosts, members=None, **options) -> dict:
    """A cluster.json-style native spec for an SSH cluster on `members` (default: every host)."""
    members = hosts.hosts if members is None else members
    backend_options = {
        "hosts": [h.spec for h in members],
        "keyFile": hosts.client_key,
        "knownHosts": hosts.known_hosts,
        "python": PYTHON,
        "root": "~/batchai-node",
        "outputSyncSeconds": 1,
        **options,
    }
    return {"backend": "ssh", "nodeCount": len(members), "backendOptions": backend_options}


def create_ssh_cluster(
    client, name: str, hosts: SshHosts, members=None, wait: bool = True, spec_extra: dict | None = None, **options
) -> dict:
    """`options`: backendOptions; `spec_extra`: more of the cluster's spec (e.g. containerRuntime)."""
    spec = {**ssh_cluster_spec(hosts, members, **options), **(spec_extra or {})}
    client.create_cluster("default", spec, name)
    if not wait:
        return client.get(client.cluster_path("default", name))
    count = spec["nodeCount"]

    def ready():
        cluster = client.get(client.cluster_path("default", name))
        counts = cluster["nodeStateCounts"]
        if counts["unusableNodeCount"]:
            nodes = client.list(client.cluster_path("default", name) + "/nodes")
            raise AssertionError(f"a node of {name} is unusable: {[n['errors'] for n in nodes]}")
        return cluster if counts["idleNodeCount"] + counts["runningNodeCount"] == count else None

    return wait_for(ready, f"SSH cluster {name} to have {count} idle nodes", timeout=90)


def put_in_datastore(home: str, relative: str, files: dict[str, str]) -> str:
    """Writes files into the workspace's default datastore (as an upload does); returns the folder."""
    folder = os.path.join(home, "datastores", "default", "default", relative)
    os.makedirs(folder, exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(folder, name), "w") as handle:
            handle.write(textwrap.dedent(text))
    return folder


def submit_ddp_job(client, home: str, cluster: str, name: str = "ddp") -> None:
    """A 2-node PyTorch DDP job over gloo (DDP_SCRIPT), its model written to the mount root's `external`."""
    scripts = put_in_datastore(home, "inputs/ddp", {"ddp.py": DDP_SCRIPT})
    submit(
        client,
        name,
        cluster,
        {
            "nodeCount": 2,
            "inputDirectories": [{"id": "SCRIPTS", "path": scripts}],
            "outputDirectories": [{"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/external"}],
            "pyTorchSettings": {
                "pythonScriptFilePath": "$AZ_BATCHAI_INPUT_SCRIPTS/ddp.py",
                "communicationBackend": "gloo",
            },
        },
    )


# Two MPI ranks: an allreduce, and each rank's host (from its own address on the hosts' network).
MPI_SCRIPT = """
    import os, socket
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    total = comm.allreduce(rank + 1, op=MPI.SUM)
    hosts = comm.allgather(os.environ.get("BATCHAI_TEST_HOST", "?"))
    os.write(1, f"mpi4py rank {rank} of {size} allreduce {total} hosts {','.join(sorted(hosts))}\\n".encode())
"""


def submit_mpi_job(client, home: str, cluster: str, subnet: str, name: str = "mpi") -> None:
    """A 2-node customMpiSettings job of MPI_SCRIPT; `subnet` is the hosts' network ("10.x.y")."""
    scripts = put_in_datastore(home, "inputs/mpi", {"mpi.py": MPI_SCRIPT})
    which_host = (
        "BATCHAI_TEST_HOST=$(ip -4 -o addr show | awk '{print $4}' | grep "
        + shlex.quote(subnet + ".")
        + " | cut -d/ -f1)"
    )
    submit(
        client,
        name,
        cluster,
        {
            "nodeCount": 2,
            "inputDirectories": [{"id": "SCRIPTS", "path": scripts}],
            "customMpiSettings": {
                "commandLine": f"{which_host} {PYTHON} $AZ_BATCHAI_INPUT_SCRIPTS/mpi.py",
                "processCount": 2,
            },
        },
    )


def mpi_lines(client, name: str = "mpi") -> list[str]:
    """What the ranks of submit_mpi_job's job printed."""
    return sorted(line for line in read_log(client, name, "stdout.txt").splitlines() if line.startswith("mpi4py"))


def mpi_expected(addresses) -> list[str]:
    both = ",".join(sorted(addresses))
    return [f"mpi4py rank {rank} of 2 allreduce 3 hosts {both}" for rank in (0, 1)]
