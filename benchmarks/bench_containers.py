"""Jobs in images: submit→running and submit→succeeded of an empty job (`true`) in an image already on the
node (with the default overlay storage driver, and with vfs, which copies the image for each container),
against the same job on the node itself, and the cost of the first pull (the image removed from the node
before each such sample), side by side in one run, interleaved.

The image is the tests' (this machine's python3 and its standard library, ~35 MB, built here with
`podman import`), served by a private docker-registry on 127.0.0.1 with TLS and htpasswd auth; podman runs
with the project's default options (core/containers.py) on a storage of its own.

    python benchmarks/bench_containers.py [-n 5]      # reduced mode: about a minute
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

from _common import REPO_ROOT, EventStream, Service, ms, print_rows, summary, write_result

sys.path.insert(0, os.path.join(REPO_ROOT, "tests"))
from batchai_jupyter.core.containers import DEFAULTS  # noqa: E402
from helpers.containers import ContainerSetup, Registry, Storage, build_python_image  # noqa: E402 (the tests')

MODES = ("on the node", "in the image, cached", "in the image, cached, vfs", "in the image, first pull")
VFS = ["--storage-driver=vfs", *(o for o in DEFAULTS["podman"]["globalOptions"] if "storage-driver" not in o)]
MEASURES = ("submit→running", "submit→succeeded")


def _sample(service: Service, stream: EventStream, name: str, document: dict) -> dict[str, float]:
    t0 = time.time()
    service.client.create_job("default", "default", document, name)
    running = stream.wait_for_job(name, "running", timeout=300)
    ended = stream.wait_for_job(name, "succeeded", "failed", timeout=300)
    if ended.get("state") != "succeeded":
        raise RuntimeError(f"job {name} {ended.get('state')}: {service.job(name)['executionInfo']}")
    return {"submit→running": running["received"] - t0, "submit→succeeded": ended["received"] - t0}


def measure(samples_per_mode: int) -> dict[str, dict[str, list[float]]]:
    work = tempfile.mkdtemp(prefix="batchai-bench-containers-")
    registry = Registry(os.path.join(work, "registry"), "bench", "bench-password")
    os.makedirs(registry.work, exist_ok=True)
    registry.start()
    builder, node = Storage(os.path.join(work, "builder")), Storage(os.path.join(work, "node"))
    vfs_node = Storage(os.path.join(work, "node-vfs"))
    try:
        image = build_python_image(work, builder, "localhost/batchai-bench/python:built")
        registry.push(builder, image, "bench/python:1")
        setup = ContainerSetup(registry, {"1": "bench/python:1"}, node, builder, image, work)
        container = {"imageSourceRegistry": {"image": setup.reference("1"), "credentials": setup.credentials()}}
        documents = {
            "on the node": {"cluster": "bench", "customToolkitSettings": {"commandLine": "true"}},
            "in the image, cached": {
                "cluster": "bench",
                "customToolkitSettings": {"commandLine": "true"},
                "containerSettings": container,
            },
        }
        documents["in the image, first pull"] = documents["in the image, cached"]
        documents["in the image, cached, vfs"] = {**documents["in the image, cached"], "cluster": "bench-vfs"}
        samples: dict[str, dict[str, list[float]]] = {mode: {m: [] for m in MEASURES} for mode in MODES}
        with Service() as service:
            service.client.create_cluster(
                "default", {"backend": "local", "nodeCount": 1, "containerRuntime": setup.runtime()}, "bench"
            )
            vfs = {**setup.runtime(), "globalOptions": [*VFS, *vfs_node.options()]}
            service.client.create_cluster(
                "default", {"backend": "local", "nodeCount": 1, "containerRuntime": vfs}, "bench-vfs"
            )
            _wait_idle(service, "bench")
            _wait_idle(service, "bench-vfs")
            stream = EventStream(service, type="job")
            try:
                _sample(service, stream, "warmup", documents["in the image, cached"])
                _sample(service, stream, "warmup-vfs", documents["in the image, cached, vfs"])
                for index in range(samples_per_mode):
                    for mode in MODES:
                        if mode == "in the image, first pull":  # the node no longer has it
                            remove = [*node.podman(), "rmi", "--force", setup.reference("1")]
                            subprocess.run(remove, check=True, capture_output=True)
                        name = f"s{index}-{MODES.index(mode)}"
                        for measure_name, value in _sample(service, stream, name, documents[mode]).items():
                            samples[mode][measure_name].append(value)
            finally:
                stream.close()
        return samples
    finally:
        registry.stop()
        builder.remove()
        node.remove()
        vfs_node.remove()
        shutil.rmtree(work, ignore_errors=True)


def _wait_idle(service: Service, cluster: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if service.client.get(service.client.cluster_path("default", cluster))["nodeStateCounts"]["idleNodeCount"]:
            return
        time.sleep(0.05)
    raise RuntimeError(f"cluster {cluster} did not get its node")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--samples", type=int, default=5, help="samples of each kind")
    parser.add_argument("--json", help="write the result here (default benchmarks/results/containers.json)")
    args = parser.parse_args(argv)

    samples = measure(args.samples)
    stats = {mode: {m: summary(values) for m, values in measures.items()} for mode, measures in samples.items()}
    rows, ratios = [], {}
    for measure_name in MEASURES:
        plain = stats["on the node"][measure_name]["median"]
        for mode in MODES[1:]:
            value = stats[mode][measure_name]["median"]
            ratios[f"{measure_name} {mode}"] = value / plain
            rows.append((f"{measure_name} median, {mode}", ms(value), ms(plain), f"{value / plain:7.2f}x"))
    first_pull = (
        stats["in the image, first pull"]["submit→running"]["median"]
        - stats["in the image, cached"]["submit→running"]["median"]
    )
    result = {
        "samples_per_mode": args.samples,
        "stats": stats,
        "samples": samples,
        "ratios": ratios,
        "first_pull_seconds": first_pull,
    }
    print_rows(
        f"An empty job in an image vs on the node (N={args.samples} of each, interleaved)",
        rows,
        ("measure", "in the image", "on the node", "image/node"),
    )
    print(f"  the first pull of the ~35 MB image adds {ms(first_pull).strip()} to submit→running (median)")
    print(f"  written to {write_result('containers', result, args.json)}")
    return result


if __name__ == "__main__":
    main()
