"""`batchai demo`: a 2-node distributed PyTorch-toolkit job on a local cluster, watched live.

The script trains a one-weight linear model with data-parallel SGD: each rank computes the
gradient of its shard, the ranks average it, rank 0 saves the model. With PyTorch installed it
uses DistributedDataParallel over gloo; without it, the same averaging over a TCP socket, so the
demo runs on a machine with nothing but this package.
"""

from __future__ import annotations

import sys
import time

from .client import Client
from .client.follow import follow_job

CLUSTER = "demo"
SCRIPT_NAME = "train_linear.py"
SCRIPT_FOLDER = "demo"

SCRIPT = r"""
import json, os, socket, struct, sys, time
rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
xs = [i / 100 for i in range(100)][rank::world]
ys = [3.0 * x + 0.5 for x in xs]
out = os.environ["AZ_BATCHAI_OUTPUT_MODEL"]
print(f"rank {rank}/{world} on {os.environ['AZ_BATCHAI_JOB_NAME']}: {len(xs)} samples", flush=True)
try:
    import torch, torch.distributed as dist
except ImportError:
    torch = None

if torch is not None:
    dist.init_process_group("gloo")
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(1, 1))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = torch.tensor(xs).unsqueeze(1), torch.tensor(ys).unsqueeze(1)
    for epoch in range(200):
        optimiser.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimiser.step()
        if epoch % 40 == 0:
            print(f"rank {rank} epoch {epoch} loss {loss.item():.5f}", flush=True)
            time.sleep(0.3)  # paced so the demo shows the logs streaming
    weight, bias = model.module.weight.item(), model.module.bias.item()
    if rank == 0:
        torch.save(model.module.state_dict(), os.path.join(out, "model.pt"))
    dist.barrier()
    dist.destroy_process_group()
else:
    address = (os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]))
    if rank == 0:
        server = socket.create_server(address)
        peers = [server.accept()[0] for _ in range(world - 1)]
    else:
        for _ in range(100):
            try:
                peer = socket.create_connection(address); break
            except OSError:
                time.sleep(0.1)
    def average(values):
        if rank == 0:
            total = list(values)
            for p in peers:
                other = struct.unpack("2d", p.recv(16, socket.MSG_WAITALL))
                total = [a + b for a, b in zip(total, other)]
            mean = [t / world for t in total]
            for p in peers:
                p.sendall(struct.pack("2d", *mean))
            return mean
        peer.sendall(struct.pack("2d", *values))
        return list(struct.unpack("2d", peer.recv(16, socket.MSG_WAITALL)))
    weight = bias = 0.0
    for epoch in range(200):
        errors = [weight * x + bias - y for x, y in zip(xs, ys)]
        grads = [2 * sum(e * x for e, x in zip(errors, xs)) / len(xs), 2 * sum(errors) / len(xs)]
        gw, gb = average(grads)
        weight, bias = weight - 0.5 * gw, bias - 0.5 * gb
        if epoch % 40 == 0:
            print(f"rank {rank} epoch {epoch} loss {sum(e * e for e in errors) / len(errors):.5f}", flush=True)
            time.sleep(0.3)
print(f"rank {rank} done: weight {weight:.3f} bias {bias:.3f} (true 3.0, 0.5)", flush=True)
if rank == 0:
    with open(os.path.join(out, "model.json"), "w") as handle:
        json.dump({"weight": weight, "bias": bias, "framework": "torch" if torch else "stdlib"}, handle)
# gloo's threads can abort interpreter teardown ("terminate called without an active exception").
sys.stdout.flush()
os._exit(0)
"""


def _say(text: str) -> None:
    print(text, flush=True)


def _ensure_cluster(client: Client, nodes: int) -> None:
    existing = {c["name"]: c for c in client.clusters("default")}
    if CLUSTER not in existing:
        client.create_cluster("default", {"backend": "local", "nodeCount": nodes}, CLUSTER)
        _say(f"Created local cluster '{CLUSTER}' with {nodes} nodes")
    elif existing[CLUSTER]["targetNodeCount"] < nodes:
        client.scale_cluster("default", CLUSTER, {"manual": {"targetNodeCount": nodes}})


def _upload_script(client: Client) -> str:
    """Puts the training script into the default datastore; returns the location jobs name it by."""
    client.write_datastore_chunk("default", "default", f"{SCRIPT_FOLDER}/{SCRIPT_NAME}", SCRIPT.encode())
    return f"datastore://default/{SCRIPT_FOLDER}"


def _follow_logs(client: Client, name: str, ranks: int, submitted_state: str) -> dict:
    partial: dict[str, str] = {}
    shown = {"state": submitted_state}

    def show(path: str, text: str) -> None:
        lines = (partial.get(path, "") + text).split("\n")
        partial[path] = lines.pop()  # a line still being written
        for line in lines:
            _say(f"  [{path}] {line}")

    def state(job: dict) -> None:
        if job["executionState"] == shown["state"]:
            return
        shown["state"] = job["executionState"]
        _say(f"Job state: {job['executionState']} ExitCode: {job['executionInfo']['exitCode']}")

    job = follow_job(
        client,
        "default",
        "default",
        name,
        [f"stdout-{rank}.txt" for rank in range(ranks)],
        show,
        text=True,
        on_state=state,
    )
    for path, rest in partial.items():
        if rest:
            _say(f"  [{path}] {rest}")
    return job


def _print_files(client: Client, name: str, output_id: str) -> None:
    files = client.job_files("default", "default", name, output_id)
    _say(f"Files in {output_id}:")
    for entry in files:
        _say(f"  {entry['name']:<28} {entry['contentLength'] or '':>8}  {client.url}{entry.get('downloadUrl', '')[1:]}")


def run_demo(client: Client, nodes: int = 2) -> int:
    _ensure_cluster(client, nodes)
    scripts = _upload_script(client)
    name = time.strftime("demo-%Y%m%d-%H%M%S")
    spec = {
        "cluster": CLUSTER,
        "nodeCount": nodes,
        "inputDirectories": [{"id": "SCRIPTS", "path": scripts}],
        "pyTorchSettings": {
            "pythonScriptFilePath": f"$AZ_BATCHAI_INPUT_SCRIPTS/{SCRIPT_NAME}",
            "processCount": nodes,
            "communicationBackend": "gloo",
        },
        "outputDirectories": [{"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT"}],
        "constraints": {"maxWallClockTime": "0:10:00"},
    }
    submitted = client.create_job("default", "default", spec, name)
    _say(f"Submitted job '{name}': PyTorch toolkit, {nodes} nodes, {nodes} ranks")
    position = submitted.get("queuePosition")
    _say(f"Job state: {submitted['executionState']}" + (f" (queue position {position})" if position else ""))
    job = _follow_logs(client, name, nodes, submitted["executionState"])
    _print_files(client, name, "stdouterr")
    _print_files(client, name, "MODEL")
    for failure in job["executionInfo"]["errors"]:
        _say(f"FailureDetails: ErrorCode:{failure['code']} ErrorMessage:{failure['message']}")
    return 0 if job["executionState"] == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(run_demo(Client.discover()))
