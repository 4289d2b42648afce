"""The Azure backend against the tests' fake Resource Manager (tests/helpers/fake_arm.py, real sshd hosts
as the VMs): how many ARM calls a cluster's create, resize and listing cost, and whether the service
still answers at once while a scale set's create is in flight (its worker waits on the long operation).

- ARM calls: counted by the fake for a 2-node create (until both nodes are idle), a resize 2 -> 1 -> 2,
  one listing of the instances (instance view + NICs + public IPs), and the delete; plus the calls a
  steady cluster makes per minute (the instance view behind node health).
- Responsiveness: the time `PUT job` takes to answer "queued" on a local cluster, with an Azure
  cluster's create held in progress by the fake, against the same with nothing in flight, in one run.

    python benchmarks/bench_azure.py [--samples 20]       (needs root: sshd hosts in network namespaces)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from _common import Service, write_result  # noqa: E402
from helpers.azure import ADMIN, AzureFixture, register_entry_point, service_env  # noqa: E402
from helpers.fake_arm import FakeArm, FakeArmServer, FakeImds, Machine, make_self_signed  # noqa: E402
from helpers.sshd_hosts import SshHosts  # noqa: E402


def wait(condition, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def kinds(calls: list[tuple[str, str]]) -> dict:
    def kind(method: str, path: str) -> str:
        lower = path.lower()
        if "/operations/" in lower or "/operationresults/" in lower:
            return "poll"
        return f"{method} {lower.rsplit('/', 1)[-1] if method != 'GET' else lower.rsplit('/', 1)[-1]}"

    return dict(Counter(kind(m, p) for m, p in calls).most_common())


def idle_count(service: Service, name: str) -> int:
    counts = service.client.get(service.client.cluster_path("default", name))["nodeStateCounts"]
    return counts["idleNodeCount"]


def arm_calls(service: Service, arm: FakeArm) -> dict:
    client, result = service.client, {}
    start = len(arm.log)
    client.create_cluster("default", {"backend": "azure", "vmSize": "Standard_D2s_v5", "nodeCount": 2}, "c")
    wait(lambda: idle_count(service, "c") == 2, "2 idle nodes")
    result["create (2 nodes)"] = arm.calls(start)
    start = len(arm.log)
    client.scale_cluster("default", "c", {"manual": {"targetNodeCount": 1}})
    wait(lambda: len(client.list(client.cluster_path("default", "c") + "/nodes")) == 1, "1 node")
    client.scale_cluster("default", "c", {"manual": {"targetNodeCount": 2}})
    wait(lambda: idle_count(service, "c") == 2, "2 idle nodes again")
    result["resize 2 -> 1 -> 2"] = arm.calls(start)
    start = len(arm.log)
    time.sleep(30)  # two views of the instances at the default viewSeconds (15)
    result["steady, per minute"] = arm.calls(start) * 2
    start = len(arm.log)
    client.delete_cluster("default", "c")
    wait(lambda: "c" not in [c["name"] for c in client.list("workspaces/default/clusters")], "the delete")
    result["delete"] = arm.calls(start)
    return {name: {"calls": len(calls), "by kind": kinds(calls)} for name, calls in result.items()}


def answer_times(service: Service, prefix: str, samples: int) -> list[float]:
    times = []
    for index in range(samples):
        started = time.perf_counter()
        service.client.create_job(
            "default",
            "default",
            {"cluster": "beside", "customToolkitSettings": {"commandLine": "true"}},
            f"{prefix}-{index}",
        )
        times.append(time.perf_counter() - started)
    return times


def responsiveness(service: Service, arm: FakeArm, samples: int) -> dict:
    service.make_cluster("beside", 1)
    quiet = answer_times(service, "quiet", samples)
    puts = sum(1 for m, p in arm.calls() if m == "PUT" and p.lower().endswith("/virtualmachinescalesets/nodes"))
    arm.hold.clear()
    try:
        service.client.create_cluster(
            "default", {"backend": "azure", "vmSize": "Standard_D2s_v5", "nodeCount": 1}, "held"
        )
        wait(
            lambda: (
                sum(1 for m, p in arm.calls() if m == "PUT" and p.lower().endswith("/virtualmachinescalesets/nodes"))
                > puts
            ),
            "the create",
        )
        busy = answer_times(service, "busy", samples)
        in_flight = any(not op.done for op in arm.operations.values() if op.holdable)
    finally:
        arm.hold.set()
    quiet_ms, busy_ms = statistics.median(quiet) * 1000, statistics.median(busy) * 1000
    return {
        "median PUT job -> queued, nothing in flight (ms)": round(quiet_ms, 1),
        "median PUT job -> queued, a scale set's create in flight (ms)": round(busy_ms, 1),
        "ratio": round(busy_ms / quiet_ms, 2),
        "create still in flight while measured": in_flight,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="batchai-bench-azure-")
    cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    make_self_signed(cert, key)
    hosts = SshHosts(2, hidden=[], users=(ADMIN,))
    by_address = {h.address: h for h in hosts.hosts}
    arm = FakeArm(
        [Machine(h.address, h.home, h.name) for h in hosts.hosts], lambda m: hosts.reimage(by_address[m.address])
    )
    arm.page_size = 100
    server = FakeArmServer(arm, cert, key)
    imds = FakeImds(arm, f"{hosts.subnet}.1")
    try:
        azure = AzureFixture(arm, server, imds, hosts, cert)
        env = service_env(
            azure, register_entry_point(os.path.join(folder, "entry")), os.path.join(folder, "config"), viewSeconds=15
        )
        with Service(extra_env=env) as service:
            result = {
                "arm calls": arm_calls(service, arm),
                "responsiveness": responsiveness(service, arm, args.samples),
            }
    finally:
        imds.close()
        server.close()
        hosts.close()
    for name, figures in result["arm calls"].items():
        print(f"{name:>22}: {figures['calls']:4d} ARM calls  {figures['by kind']}")
    for name, value in result["responsiveness"].items():
        print(f"{name}: {value}")
    print("results:", write_result("azure", result))


if __name__ == "__main__":
    main()
