"""Real containers for the tests: a small image with a Python, built here from this machine's own
interpreter, and a private registry (Debian's docker-registry) with TLS and htpasswd auth on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading

from batchai_jupyter.core.containers import DEFAULTS

from .api import execution_logs_so_far, read_log
from .jobs import logs_of, one_record, records
from .toolkit_jobs import DDP_ENV_INIT, DDP_TRAINING, PYTORCH_OUTPUTS
from .tools import free_port, require_tool
from .waits import wait_for, wait_listening

INSTALL_HINT = "apt-get install podman runc docker-registry"
# What the image has and the machine has not: the jobs prove they run in the image by reading it.
IMAGE_MARKER = "/etc/batchai-test-image"
IMAGE_MARKER_TEXT = "inside the batchai test image"
# A 2-rank exchange over the host's network: rank 1 connects to rank 0 at MASTER_ADDR:MASTER_PORT.
EXCHANGE = """
import json, os, socket, time
rank, address = int(os.environ["RANK"]), (os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]))
marker = open("/etc/batchai-test-image").read().strip()
if rank == 0:
    server = socket.create_server(address)
    connection, _ = server.accept()
    heard = connection.recv(100).decode()
    connection.sendall(b"hello from rank 0")
else:
    for _ in range(300):
        try:
            connection = socket.create_connection(address)
            break
        except OSError:
            time.sleep(0.1)
    connection.sendall(b"hello from rank 1")
    heard = connection.recv(100).decode()
print("RECORD " + json.dumps({"rank": rank, "heard": heard, "marker": marker}))
"""

# A DDP script's part that says where each rank's PyTorch and Python came from, before it trains.
TORCH_WHERE = f"""
    import sys
    print("WHERE " + json.dumps({{
        "torch": torch.__file__, "python": sys.executable, "marker": open("{IMAGE_MARKER}").read().strip(),
    }}), flush=True)
"""
DDP_IN_IMAGE_SCRIPT = DDP_ENV_INIT + TORCH_WHERE + DDP_TRAINING


def ddp_in_image_job(image: str, code: str) -> dict:
    """A 2-node PyTorch DDP (gloo) job running `code`/ddp_env.py (DDP_IN_IMAGE_SCRIPT) in `image`."""
    return {
        "nodeCount": 2,
        "image": image,
        "inputDirectories": [{"id": "CODE", "path": code}],
        "outputDirectories": PYTORCH_OUTPUTS,
        "pyTorchSettings": {
            "pythonScriptFilePath": "$AZ_BATCHAI_INPUT_CODE/ddp_env.py",
            "communicationBackend": "gloo",
        },
    }


# Each rank of an MPI job in build_mpi_image's image: an allreduce with the other, and where it ran (which
# node, which container, which Python and mpi4py).
MPI_RANK = f"""
import json, os, sys
from mpi4py import MPI
world = MPI.COMM_WORLD
record = {{
    "rank": world.rank,
    "size": world.size,
    "total": world.allreduce(world.rank + 1),
    "node_ip": os.environ["AZ_BATCHAI_NODE_IP"],
    "job_temp": os.environ["AZ_BATCHAI_JOB_TEMP"],
    "marker": open("{IMAGE_MARKER}").read().strip(),
    "python": sys.executable,
    "mpi4py": MPI.__file__,
    "pid_namespace": os.readlink("/proc/self/ns/pid"),
    "net_namespace": os.readlink("/proc/self/ns/net"),
    "container": os.environ.get("container"),
    "secret": os.environ.get("MPI_SECRET"),
}}
print("RECORD " + json.dumps(record), flush=True)
"""


def mpi_in_image_job(setup, image: str, code: str) -> dict:
    """Batch AI's customMpiSettings: 2 ranks of `code`/rank.py (MPI_RANK) in `image`, pulled from the test
    registry with its credentials, with a secret each rank must see."""
    return {
        "nodeCount": 2,
        "inputDirectories": [{"id": "CODE", "path": code}],
        "secrets": [{"name": "MPI_SECRET", "value": "mpi-secret"}],
        "containerSettings": {
            "imageSourceRegistry": {
                "serverUrl": setup.registry.address,
                "image": image,
                "credentials": setup.credentials(),
            }
        },
        "customMpiSettings": {"commandLine": "python3 $AZ_BATCHAI_INPUT_CODE/rank.py", "processCount": 2},
    }


def check_mpi_ranks_ran_in_the_image(client, job: str, same_paths: bool = True) -> None:
    """Both ranks of `job` (MPI_RANK, with MPI_SECRET="mpi-secret") ran, one on each of its nodes as that
    node, each in a container of build_mpi_image's image with its Python and mpi4py, and reached each other.
    `same_paths`: the nodes' directories are on one machine (else two hosts may use the same path)."""
    text = logs_of(client, job)
    seen = {record["rank"]: record for record in records(text)}
    assert sorted(seen) == [0, 1], text
    nodes = {node["ipAddress"] for node in client.job_nodes("default", "default", job)}
    assert {record["node_ip"] for record in seen.values()} == nodes  # one rank on each node ...
    assert seen[0]["job_temp"] != seen[1]["job_temp"] or not same_paths  # ... as that node
    host_namespace = os.readlink("/proc/self/ns/pid")
    for record in seen.values():
        assert record["size"] == 2 and record["total"] == 3  # the ranks reached each other
        assert record["marker"] == IMAGE_MARKER_TEXT and record["container"] == "podman"
        assert record["python"].startswith("/usr/bin/python3")
        assert record["mpi4py"].startswith("/usr/lib/python3/dist-packages/mpi4py/")  # the image's, not the venv's
        assert not os.path.exists(record["mpi4py"])
        assert record["python"] != sys.executable
        assert record["pid_namespace"] != host_namespace
        assert record["secret"] == "mpi-secret"
    assert seen[0]["pid_namespace"] != seen[1]["pid_namespace"]  # two containers, one per node


def check_ranks_used_the_images_torch(client, job: str) -> None:
    """Both ranks of `job` (a DDP script with TORCH_WHERE) ran in build_torch_image's image, with its
    PyTorch and Python, not this machine's."""
    for rank in (0, 1):
        where = one_record(read_log(client, job, f"stdout-{rank}.txt"), "WHERE")
        assert where["marker"] == IMAGE_MARKER_TEXT, where
        assert where["torch"] == "/usr/lib/python3/dist-packages/torch/__init__.py", where  # the image's ...
        assert not os.path.exists(where["torch"])  # ... which this machine has not (its torch is the venv's)
        assert where["python"].startswith("/usr/bin/python3") and where["python"] != sys.executable, where


# The parts of the standard library the test jobs never import (the image stays ~35 MB).
_SKIPPED = {"test", "idlelib", "tkinter", "ensurepip", "lib2to3", "pydoc_data", "__pycache__", "site-packages"}


class Storage:
    """A podman store of its own: images under `root`, run state under a short directory of /tmp
    (podman refuses a runroot over 50 characters)."""

    def __init__(self, root: str):
        self.root = root
        self.runroot = tempfile.mkdtemp(prefix="batchai-podman-")

    def options(self) -> list[str]:
        return [f"--root={self.root}", f"--runroot={self.runroot}"]

    def podman(self) -> list[str]:
        """podman with the project's default options, on this store."""
        return [require_tool("podman", INSTALL_HINT), *DEFAULTS["podman"]["globalOptions"], *self.options()]

    def remove(self) -> None:
        """Its run state, and the mount podman's overlay driver leaves on the store (which would keep
        pytest from removing the store's directory)."""
        overlay = os.path.join(self.root, "overlay")
        if os.path.isdir(overlay):  # a bind mount onto itself: os.path.ismount cannot tell
            subprocess.run(["umount", overlay], capture_output=True)
        shutil.rmtree(self.runroot, ignore_errors=True)


def _run(argv: list[str], stdin: str = "") -> str:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{argv[:6]} failed: {done.stderr[-2000:]}"
    return done.stdout


class _Rootfs:
    """A directory tree of files copied from this machine, with the shared libraries they need."""

    def __init__(self, root: str):
        self.root = root

    def copy(self, path: str) -> None:
        target = self.root + path
        if os.path.lexists(target):
            return
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.islink(path):
            link = os.readlink(path)
            os.symlink(link, target)
            self.copy(link if link.startswith("/") else os.path.join(os.path.dirname(path), link))
        else:
            shutil.copy2(path, target)

    def copy_with_libraries(self, path: str) -> None:
        self.copy(path)
        listing = subprocess.run(["ldd", os.path.realpath(path)], capture_output=True, text=True).stdout
        for word in listing.split():
            if word.startswith("/"):
                self.copy(word)


def build_python_image(work: str, storage: Storage, tag: str) -> str:
    """Imports a rootfs with this machine's python3 (stdlib only, also as `python`), sh and bash as `tag`;
    returns `tag`."""
    rootfs = _Rootfs(os.path.join(work, "rootfs"))
    python = os.path.realpath("/usr/bin/python3")  # the distribution's, whose stdlib is in /usr/lib
    for program in (python, "/bin/bash", "/bin/dash"):
        rootfs.copy_with_libraries(program)
    version = os.path.basename(python)  # python3.11
    stdlib = f"/usr/lib/{version}"
    for directory, dirs, files in os.walk(stdlib):
        dirs[:] = [d for d in dirs if d not in _SKIPPED and not d.startswith("config-")]
        for name in files:
            path = os.path.join(directory, name)
            (rootfs.copy_with_libraries if name.endswith(".so") else rootfs.copy)(path)
    root = rootfs.root
    os.symlink(version, f"{root}/usr/bin/python3")
    os.symlink(version, f"{root}/usr/bin/python")  # as the frameworks' images have it
    os.symlink("dash", f"{root}/bin/sh")
    for directory in ("tmp", "proc", "sys", "dev", "etc", "root"):
        os.makedirs(f"{root}/{directory}", exist_ok=True)
    with open(root + IMAGE_MARKER, "w") as handle:
        handle.write(IMAGE_MARKER_TEXT + "\n")
    return _import(root, storage, tag)


def _import(root: str, storage: Storage, tag: str, packages: dict[str, str] | None = None) -> str:
    """Imports the tree `root` as `tag`, with `packages` (a path here -> its path in the image) added but
    for what _LEFT_OUT names; the archive streams to podman (no copy of it on disk)."""
    importer = subprocess.Popen(
        [*storage.podman(), "import", "--change", "ENV=PATH=/usr/bin:/bin", "-", tag],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert importer.stdin is not None and importer.stderr is not None
    with tarfile.open(fileobj=importer.stdin, mode="w|") as tar:
        tar.add(root, arcname=".")
        for source, target in (packages or {}).items():
            tar.add(source, arcname="." + target, filter=_kept)
    importer.stdin.close()
    errors = importer.stderr.read().decode(errors="replace")
    assert importer.wait(timeout=300) == 0, f"podman import {tag} failed: {errors[-2000:]}"
    return tag


# Parts of the packages the test jobs never load (PyTorch's headers, tests and test programs: 0.2 GB).
# Their bytecode stays: without it each container compiles PyTorch's modules again on import (~20 s here).
_LEFT_OUT = ("/torch/include", "/torch/test")
_TORCH_PROGRAMS, _TORCH_PROGRAM_KEPT = "/torch/bin/", "torch_shm_manager"  # what `import torch` checks for


def _kept(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    if any(part + "/" in info.name + "/" for part in _LEFT_OUT):
        return None
    if _TORCH_PROGRAMS in info.name and not info.name.endswith(_TORCH_PROGRAMS + _TORCH_PROGRAM_KEPT):
        return None
    return info


# What `import torch` and a DDP step over gloo load from the tests' site-packages.
_TORCH_PACKAGES = ("torch", "torchgen", "numpy", "numpy.libs", "sympy", "mpmath", "tqdm", "typing_extensions.py")


def build_torch_image(work: str, storage: Storage, tag: str) -> str:
    """build_python_image's tree (it must have run in `work`) plus the tests' PyTorch (CPU) and what it
    imports, with the system libraries its own need, as `tag` (about 0.8 GB)."""
    import torch

    site = os.path.dirname(os.path.dirname(torch.__file__))
    root = os.path.join(work, "rootfs-torch")
    shutil.copytree(os.path.join(work, "rootfs"), root, symlinks=True)
    rootfs = _Rootfs(root)
    packages = {}
    for name in _TORCH_PACKAGES:
        source = os.path.join(site, name)
        if os.path.exists(source):
            packages[source] = f"/usr/lib/python3/dist-packages/{name}"
    for directory in (os.path.join(site, "torch", "lib"), os.path.join(site, "torch")):
        for name in os.listdir(directory):
            if ".so" in name:  # the system libraries they load (the wheel's own come with the package)
                listing = subprocess.run(["ldd", os.path.join(directory, name)], capture_output=True, text=True)
                for word in listing.stdout.split():
                    if word.startswith("/") and not word.startswith(site):
                        rootfs.copy(word)
    return _import(root, storage, tag, packages)


# OpenMPI's plugins for fabrics this machine has not (and the libraries they would drag in).
_MPI_PLUGINS_LEFT_OUT = ("ucx", "ofi", "openib", "uct", "verbs", "psm", "usnic", "cuda", "java", "portals")


def build_mpi_image(work: str, storage: Storage, tag: str) -> str:
    """build_python_image's tree (it must have run in `work`) plus this machine's OpenMPI (mpirun, orted,
    their libraries and plugins, help texts and settings) and the tests' mpi4py, as `tag`."""
    import mpi4py

    root = os.path.join(work, "rootfs-mpi")
    shutil.copytree(os.path.join(work, "rootfs"), root, symlinks=True)
    rootfs = _Rootfs(root)
    for program in ("/usr/bin/mpirun", "/usr/bin/orted"):
        rootfs.copy(program)
        rootfs.copy_with_libraries(os.path.realpath(program))
    for tree in ("/usr/lib/x86_64-linux-gnu/openmpi", "/usr/lib/x86_64-linux-gnu/pmix2"):
        for directory, dirs, files in os.walk(tree):
            dirs[:] = [d for d in dirs if d != "include"]
            for name in files:
                if not any(word in name for word in _MPI_PLUGINS_LEFT_OUT):
                    rootfs.copy_with_libraries(os.path.join(directory, name))
    for tree in ("/usr/share/openmpi", "/usr/share/pmix", "/etc/openmpi"):
        for directory, _dirs, files in os.walk(tree):
            for name in files:
                rootfs.copy(os.path.join(directory, name))
    package = os.path.dirname(mpi4py.__file__)
    target = f"{root}/usr/lib/python3/dist-packages/mpi4py"
    shutil.copytree(package, target, ignore=shutil.ignore_patterns("__pycache__", "*.pxd", "*.pyi", "include"))
    for name in os.listdir(package):
        if name.endswith(".so"):
            rootfs.copy_with_libraries(os.path.join(package, name))
    return _import(root, storage, tag)


class Registry:
    """docker-registry serving 127.0.0.1:<port> over TLS (a certificate made here) with one htpasswd user;
    without a username, a public one: plain HTTP, no auth (a site's own copy of Docker Hub's images)."""

    def __init__(self, work: str, username: str = "", password: str = ""):
        require_tool("docker-registry", INSTALL_HINT)
        self.work = work
        self.username, self.password = username, password
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        # podman's --cert-dir: the CA that signed the registry's certificate
        self.cert_dir = os.path.join(work, "certs")
        os.makedirs(self.cert_dir, exist_ok=True)
        # every address: SSH hosts in network namespaces reach it through their bridge
        http = f"http:\n  addr: 0.0.0.0:{self.port}\n"
        if username:
            http += self._tls() + self._auth()
        self.config = os.path.join(work, "config.yml")
        with open(self.config, "w") as handle:
            handle.write(
                f"version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {work}/data\n{http}"
            )
        self.log_path = os.path.join(work, "registry.log")
        self.process: subprocess.Popen | None = None

    def _tls(self) -> str:
        key, cert = os.path.join(self.work, "key.pem"), os.path.join(self.work, "cert.pem")
        _run(
            [
                require_tool("openssl", "apt-get install openssl"),
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
                "-keyout",
                key,
                "-out",
                cert,
            ]
        )
        shutil.copy(cert, os.path.join(self.cert_dir, "ca.crt"))
        return f"  tls:\n    certificate: {cert}\n    key: {key}\n"

    def _auth(self) -> str:
        import bcrypt  # the registry's htpasswd takes bcrypt hashes only

        htpasswd = os.path.join(self.work, "htpasswd")
        hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=5)).decode()
        with open(htpasswd, "w") as handle:
            handle.write(f"{self.username}:{hashed}\n")
        return f"auth:\n  htpasswd:\n    realm: batchai-test\n    path: {htpasswd}\n"

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            ["docker-registry", "serve", self.config], stdout=log, stderr=log, stdin=subprocess.DEVNULL
        )
        wait_listening(self.process, self.port, "docker-registry", self.log_path, 30.0)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)
        self.process = None

    def push(self, storage: Storage, image: str, name: str) -> str:
        """Pushes the local `image` as <registry>/`name`; returns that reference."""
        auth = os.path.join(self.work, "push-auth.json")
        base = storage.podman()
        reference = f"{self.address}/{name}"
        if not self.username:
            _run([*base, "push", "--tls-verify=false", image, reference])
            return reference
        registry = f"--cert-dir={self.cert_dir}"
        _run(
            [*base, "login", registry, f"--authfile={auth}", "-u", self.username, "--password-stdin", self.address],
            self.password + "\n",
        )
        _run([*base, "push", registry, f"--authfile={auth}", image, reference])
        return reference


class ContainerSetup:
    """The session's registry and image tags, and the containerRuntime clusters of the tests use."""

    def __init__(
        self,
        registry: Registry,
        images: dict[str, str],
        service_storage: Storage,
        builder: Storage,
        image: str,
        work: str,
    ):
        self.registry = registry
        self.work = work  # where the image's tree was built (build_mpi_image adds to a copy of it)
        self.builder, self.image = builder, image  # the built image, to push elsewhere
        self.images = images  # tag -> name in the registry (without its address)
        self.service_storage = service_storage

    def reference(self, tag: str) -> str:
        return f"{self.registry.address}/{self.images[tag]}"

    def credentials(self) -> dict:
        return {"username": self.registry.username, "password": self.registry.password}

    def runtime_for_hosts(self, storage: Storage) -> dict:
        """The containerRuntime of SSH hosts in network namespaces: a store of theirs (pytest's base
        directory is hidden from them), and the registry reached through their bridge, whose address its
        certificate does not name (TLS unverified there; the local tests verify it)."""
        return {
            "name": "podman",
            "globalOptions": [*DEFAULTS["podman"]["globalOptions"], *storage.options()],
            "registryOptions": ["--tls-verify=false"],
        }

    def runtime(self) -> dict:
        """The clusters' containerRuntime: the defaults, on the tests' own podman storage, trusting the
        registry's certificate."""
        return {
            "name": "podman",
            "globalOptions": [*DEFAULTS["podman"]["globalOptions"], *self.service_storage.options()],
            "registryOptions": [f"--cert-dir={self.registry.cert_dir}"],
        }


class HeldProxy:
    """A TCP relay to the registry (on 127.0.0.1, or every address for hosts in network namespaces) that
    holds every connection until `release()`: a pull through it is caught in the middle, for as long as
    the test needs."""

    def __init__(self, target_port: int, everywhere: bool = False):
        self.target_port = target_port
        self.released = threading.Event()
        self.server = socket.create_server(("0.0.0.0" if everywhere else "127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.released.set()
        self.server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        self.released.wait()
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
        _pump(client, upstream)


def see_the_pull_held(client, job: str, proxy: HeldProxy, registry: str) -> None:
    """Waits for the pull's first line in the job's execution log while `proxy` holds the pull (the node
    logs it while it pulls, not once it has ended), then lets the pull go on."""
    wait_for(
        lambda: f"pulling image {registry}/" in execution_logs_so_far(client, job),
        "the pull's first line in the node's log while the registry holds the pull",
    )
    assert "Writing manifest" not in execution_logs_so_far(client, job)
    proxy.release()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# Batch AI recipes naming public framework images, as published but for their storage placeholders.
RECIPES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "recipes")


def recipe(name: str) -> dict:
    with open(os.path.join(RECIPES, name)) as handle:
        return json.load(handle)


def recipe_images() -> list[str]:
    """The images the recipes name."""
    named = (
        recipe(name)["properties"]["containerSettings"]["imageSourceRegistry"]["image"] for name in os.listdir(RECIPES)
    )
    return sorted(set(named))


class DockerHubCopy:
    """A site's copy of Docker Hub: a public registry, and the registries.conf that puts it in Hub's place."""

    def __init__(self, registry: Registry, registries_conf: str):
        self.registry, self.registries_conf = registry, registries_conf
