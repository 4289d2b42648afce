"""The SSH backend on real sshd hosts (network namespaces, as in tests/ssh), side by side with OpenSSH.

1. Staging: a file of --mb MiB sent to a host by the backend's stager (content-addressed cache,
   parallel pipelined SFTP) vs OpenSSH `scp` of the same file over the same link; ratio =
   backend throughput / scp throughput (target ≥ 0.8). Then the same file staged again, as for a
   resubmitted job: bytes sent (target 0).
2. Failure: a 2-node job on a 3-host cluster; one host killed (sshd and all its processes) while
   the job runs; seconds from the kill to the job being requeued (target ≤ 10 s).

Needs root (network namespaces), openssh-server/-client and iproute2 (.ci/install.d/20-sshd.sh).

    python bench_ssh.py --mb 500 --reps 3 --kills 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "ssh"))

from sshd_hosts import SshHosts  # noqa: E402

from _common import Service, write_result  # noqa: E402
from batchai_jupyter.backends.ssh_connection import ConnectionPool, Login  # noqa: E402
from batchai_jupyter.backends.ssh_options import HostSpec  # noqa: E402
from batchai_jupyter.backends.ssh_staging import FileHashes, Stager  # noqa: E402


def random_file(directory: str, mib: int) -> str:
    path = os.path.join(directory, f"data-{mib}m.bin")
    with open(path, "wb") as handle:
        for _ in range(mib):
            handle.write(os.urandom(1 << 20))
    return path


def bench_staging(hosts: SshHosts, mib: int, reps: int, workdir: str) -> dict:
    host = hosts.hosts[0]
    source = random_file(workdir, mib)
    login = Login(hosts.client_key, hosts.known_hosts, False, 10.0)
    connection = ConnectionPool().get(HostSpec(host.address, "root"), login)
    connection.check("true")  # connected before timing, as the backend's pooled connection is
    hashes = FileHashes()
    hashes.of(source)  # hashing is timed apart below; the stager remembers it like the service does
    ours, theirs, sent_again = [], [], []
    for rep in range(reps):
        cache, target = f"/tmp/bench-cache-{rep}", f"/tmp/bench-staged-{rep}/data.bin"
        started = time.perf_counter()
        transfer = Stager(hashes).stage(connection, cache, [(source, target, False)])
        ours.append(time.perf_counter() - started)
        assert transfer.bytes_sent == os.path.getsize(source), transfer
        again = Stager(hashes).stage(connection, cache, [(source, target + ".again", False)])
        sent_again.append(again.bytes_sent)
        started = time.perf_counter()
        subprocess.run(
            [
                "scp",
                "-q",
                "-i",
                hosts.client_key,
                "-o",
                f"UserKnownHostsFile={hosts.known_hosts}",
                "-o",
                "StrictHostKeyChecking=yes",
                source,
                f"root@{host.address}:/tmp/bench-scp-{rep}.bin",
            ],
            check=True,
        )
        theirs.append(time.perf_counter() - started)
        connection.check(f"rm -rf {cache} /tmp/bench-staged-{rep} /tmp/bench-scp-{rep}.bin")
    started = time.perf_counter()
    FileHashes().of(source)
    hash_seconds = time.perf_counter() - started
    ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
    result = {
        "mib": mib,
        "reps": reps,
        "backend_seconds": ours,
        "scp_seconds": theirs,
        "backend_mib_per_s": mib / ours_median,
        "scp_mib_per_s": mib / theirs_median,
        "throughput_ratio": theirs_median / ours_median,
        "bytes_sent_on_resubmit": sent_again,
        "first_hash_seconds": hash_seconds,
    }
    print(f"\nstaging {mib} MiB to a host ({reps} reps, medians)")
    print(f"  backend stager : {ours_median:6.2f} s  {mib / ours_median:7.1f} MiB/s")
    print(f"  OpenSSH scp    : {theirs_median:6.2f} s  {mib / theirs_median:7.1f} MiB/s")
    print(f"  ratio backend/scp throughput: {theirs_median / ours_median:.2f} (target >= 0.8)")
    print(f"  resubmission with unchanged data sent: {sent_again} bytes (target 0)")
    print(f"  (hashing the file the first time, not in the above: {hash_seconds:.2f} s)")
    return result


CKPT = """
import os, time
for step in range(400):
    time.sleep(0.25)
"""


def bench_failover(hosts: SshHosts, kills: int) -> dict:
    seconds = []
    with Service() as service:
        client = service.client
        cluster = {
            "backend": "ssh",
            "nodeCount": 3,
            "backendOptions": {
                "hosts": [h.spec for h in hosts.hosts],
                "keyFile": hosts.client_key,
                "knownHosts": hosts.known_hosts,
                "python": sys.executable,
                "root": "~/batchai-node",
            },
        }
        client.create_cluster("default", cluster, "bench")
        scripts = os.path.join(service.home, "datastores", "default", "default", "bench-inputs")
        os.makedirs(scripts)
        with open(os.path.join(scripts, "sleep.py"), "w") as handle:
            handle.write(CKPT)
        for round_ in range(kills):
            _wait(lambda: _idle(client) >= 2, "2 idle nodes", 120)
            name = f"victim-{round_}"
            client.create_job(
                "default",
                "default",
                {
                    "cluster": "bench",
                    "nodeCount": 2,
                    "maxRetries": 1,
                    "inputDirectories": [{"id": "S", "path": scripts}],
                    "pyTorchSettings": {"pythonScriptFilePath": "$AZ_BATCHAI_INPUT_S/sleep.py"},
                },
                name,
            )
            _wait(lambda name=name: _running_tasks(client, name) == 2, "the job's tasks", 120)
            time.sleep(1.0)
            ip = client.list(client.job_path("default", "default", name) + "/tasks")[0]["ip"]
            victim = next(h for h in hosts.hosts if h.address == ip)
            killed = time.perf_counter()
            hosts.kill(victim)
            _wait(lambda name=name: client.job("default", "default", name)["attempt"] == 2, "the requeue", 60, 0.02)
            seconds.append(time.perf_counter() - killed)
            print(f"  round {round_ + 1}: host killed -> job requeued in {seconds[-1]:.2f} s")
            client.request("POST", client.job_path("default", "default", name) + "/terminate")
            hosts.start(victim)
    print(f"\nhost killed -> job requeued: median {statistics.median(seconds):.2f} s over {kills} (target <= 10 s)")
    return {"kills": kills, "kill_to_requeue_seconds": seconds, "median": statistics.median(seconds)}


def _idle(client) -> int:
    return client.get(client.cluster_path("default", "bench"))["nodeStateCounts"]["idleNodeCount"]


def _running_tasks(client, job: str) -> int:
    tasks = client.list(client.job_path("default", "default", job) + "/tasks")
    return sum(1 for t in tasks if t["state"] == "running")


def _wait(condition, what: str, timeout: float, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=500)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--kills", type=int, default=3)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="batchai-bench-ssh-")
    # Unlike the tests, nothing is hidden from the hosts: the failover round gives its jobs their
    # inputs through the datastore like the tests do, and staging is measured on its own.
    hosts = SshHosts(3, hidden=[])
    try:
        result = {
            "staging": bench_staging(hosts, args.mb, args.reps, workdir),
            "failover": bench_failover(hosts, args.kills) if args.kills else None,
        }
    finally:
        hosts.close()
        subprocess.run(["rm", "-rf", workdir])
    print("\nresults:", write_result("ssh", result))


if __name__ == "__main__":
    main()
