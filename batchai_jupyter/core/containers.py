"""Running a job's tasks in its image: the runtime's settings, its pull script and its run command line.

Pure text, no I/O: the job runner runs the pull script on each node (while the attempt prepares, on the
cluster's worker) and hands the wrapper a task command that starts the container; the wrapper runs it as it
runs any command, so the task's pid, heartbeat, exit code, logs and kill work as outside a container. It
imports nothing but the models: the Slurm backend ships it with the task planner (package
`batchai_launch`), and its batch driver does the same on the allocation.

The runtime's options live here, in one place: `DEFAULTS` holds what each runtime needs on hosts like the
project's own (podman with runc, cgroupfs, the kernel's overlay driver and explicit ulimits: a VM kernel
that refuses podman's default rlimits and runs cgroups in hybrid mode; `--storage-driver=vfs` where the
store's file system cannot carry overlay, e.g. inside another container, at the price of a copy of the
image per container); a cluster's `containerRuntime` replaces any of
them for its nodes:

    "containerRuntime": "podman"
    "containerRuntime": {"name": "podman", "globalOptions": ["--root=/data/containers"],
                         "runOptions": [], "registryOptions": ["--cert-dir=/etc/registry-ca"],
                         "imageCacheLimit": 5, "registriesConf": "/etc/batchai/registries.conf"}

`registriesConf` is a containers-registries.conf(5) file on the nodes that podman and skopeo read for
the pull (CONTAINERS_REGISTRIES_CONF): where a site keeps its own copies of public images, e.g.
`[[registry]] prefix = "docker.io" location = "mirror.example:5000"`, so that a Batch AI job naming
`pytorch/pytorch:...` gets the site's copy, under its own name. apptainer does not read it.

Secrets never reach a command line: the registry password goes to `podman login --password-stdin` into an
auth file in a private directory of the node, removed after the pull; the task's variables are passed by name
(`--env NAME`: the value comes from the wrapper's environment).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .models import ContainerSettings

# pyxis: Slurm's container plugin (enroot underneath), on the nodes of a Slurm allocation only.
RUNTIMES = ("podman", "apptainer", "pyxis")
OPTION_KEYS = ("globalOptions", "runOptions", "registryOptions")
# The most images a node keeps of those jobs pulled there (least recently used go first); none: no limit.
CACHE_LIMIT_KEY = "imageCacheLimit"
# containers-registries.conf(5) for the pulls on the nodes: the site's own copies of public images.
REGISTRIES_KEY = "registriesConf"
# The registry podman gives the images a node builds or imports itself: they are never pulled.
LOCAL_IMAGES = "localhost/"
# The images an apptainer node pulled with credentials (one reference a line, in its private directory).
PRIVATE_IMAGES = "private-images"
DEFAULTS: dict[str, dict[str, tuple[str, ...]]] = {
    "podman": {
        "globalOptions": ("--storage-driver=overlay", "--cgroup-manager=cgroupfs", "--runtime=runc"),
        "runOptions": ("--init", "--ulimit=nofile=20000:20000", "--ulimit=nproc=4096:4096"),
        "registryOptions": (),
    },
    "apptainer": {"globalOptions": ("--quiet",), "runOptions": (), "registryOptions": ()},
    # globalOptions go to `enroot` (the pull), runOptions to the task's `srun`
    "pyxis": {"globalOptions": (), "runOptions": ("--no-container-mount-home",), "registryOptions": ()},
}
# How a node hands its NVIDIA GPUs to a container: a CDI spec (`nvidia-ctk cdi generate`), else the
# nvidia OCI hook; "" when it has neither (or no GPUs).
GPU_MODES = ("cdi", "hook", "")
CDI_SPECS = ("/etc/cdi/nvidia.yaml", "/var/run/cdi/nvidia.yaml")
NVIDIA_HOOKS_DIR = "/usr/share/containers/oci/hooks.d"
# Prints what a node has for containers: its runtimes (podman, apptainer, pyxis: an srun that takes
# --container-image) and how it gives GPUs to them.
DETECT_SCRIPT = (
    "for runtime in podman apptainer; do command -v $runtime >/dev/null && echo runtime=$runtime; done\n"
    "command -v enroot >/dev/null && srun --help 2>&1 | grep -q -- --container-image && echo runtime=pyxis\n"
    + "".join(f"[ -e {path} ] && echo gpu=cdi\n" for path in CDI_SPECS)
    + "command -v nvidia-container-runtime-hook >/dev/null && echo gpu=hook\n"
    + "exit 0\n"
)
# Inside the image: bash when it has one (what tasks get outside a container), else sh.
_SHELL = 'if command -v bash >/dev/null 2>&1; then exec bash -c "$1"; fi; exec sh -c "$1"'


class ContainerError(Exception):
    """The job cannot run in its image on this node (no runtime, a failed pull): the attempt fails with it."""


@dataclass(frozen=True)
class RuntimeSettings:
    name: str  # podman | apptainer | pyxis
    global_options: tuple[str, ...]
    run_options: tuple[str, ...]
    registry_options: tuple[str, ...]
    image_cache_limit: int | None = None
    registries_conf: str | None = None

    @property
    def base(self) -> list[str]:
        return ["enroot" if self.name == "pyxis" else self.name, *self.global_options]


# ---- the cluster's containerRuntime (read by cluster_spec.py) -------------------------------------


def node_facts(detect_output: str) -> dict[str, Any]:
    """What DETECT_SCRIPT found on a node, as kept in the node's info: {"runtimes": [...], "gpu": mode}."""
    pairs = [line.strip().split("=", 1) for line in detect_output.splitlines() if "=" in line]
    runtimes = [value for key, value in pairs if key == "runtime" and value in RUNTIMES]
    modes = [value for key, value in pairs if key == "gpu" and value in GPU_MODES]
    return {"runtimes": runtimes, "gpu": "cdi" if "cdi" in modes else (modes[0] if modes else "")}


def runtime_settings(cluster_runtime: Mapping[str, Any] | None, node_runtimes: Sequence[str]) -> RuntimeSettings:
    """The runtime a node runs a job's image with: the cluster's choice, else the first the node has
    (podman before apptainer); its options: the cluster's, else the defaults."""
    chosen = dict(cluster_runtime or {})
    name = chosen.get("name") or next((runtime for runtime in RUNTIMES if runtime in node_runtimes), None)
    if name is None:
        raise ContainerError(
            "the node has no container runtime (podman, apptainer, or Slurm's pyxis); install one there, "
            "or run the job without an image"
        )
    defaults = DEFAULTS[name]
    options = {key: tuple(chosen[key]) if key in chosen else defaults[key] for key in OPTION_KEYS}
    return RuntimeSettings(
        name,
        options["globalOptions"],
        options["runOptions"],
        options["registryOptions"],
        chosen.get(CACHE_LIMIT_KEY),
        chosen.get(REGISTRIES_KEY),
    )


# ---- images ---------------------------------------------------------------------------------------


def _has_registry(image: str) -> bool:
    first = image.split("/", 1)[0]
    return "/" in image and ("." in first or ":" in first or first == "localhost")


def image_reference(container: ContainerSettings) -> str:
    """The image's full name: under serverUrl when given and not already in the name; a name without
    a registry is Docker Hub's, as on Batch AI (runtimes refuse to guess one for a short name)."""
    image, server = container.image, container.server_url
    if server and not image.startswith(server + "/"):
        return f"{server}/{image}"
    return image if _has_registry(image) else f"docker.io/{image}"


def registry_of(reference: str) -> str:
    return reference.split("/", 1)[0]


def image_file(cache_dir: str, reference: str, runtime: str = "apptainer") -> str:
    """Where apptainer (a SIF) or pyxis (enroot's squashfs) keeps a pulled image on the node, one per reference."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in reference)
    return f"{cache_dir}/{safe}.{'sqsh' if runtime == 'pyxis' else 'sif'}"


def enroot_uri(reference: str) -> str:
    """enroot's name for an image: docker://REGISTRY#NAME:TAG."""
    registry, name = reference.split("/", 1)
    return f"docker://{registry}#{name}"


def pull_script(
    settings: RuntimeSettings, container: ContainerSettings, private_dir: str, cache_dir: str
) -> tuple[str, str]:
    """(bash script, its stdin) that makes the job's image present on a node: nothing when it is there
    already, else a pull (with a login first when the job gives credentials); then, with an
    imageCacheLimit, the images this node used least recently beyond the limit are removed. The password
    is the stdin.

    A private image is never reused on trust: each job that names it asks the registry again with its own
    credentials (none, or wrong ones, fail as a first pull would). podman nodes ask for every image they
    have (skopeo fetches its manifest only; without skopeo podman pulls it again, which downloads its layers
    again), so a registry that is down fails the job even when the node has the image; apptainer has no
    check short of a pull, so it pulls again the images it pulled with credentials (the others it reuses).

    An image named `localhost/...` is the node's own (built there, as podman names what it builds or
    imports): used when the node has it, never pulled, never removed for the cache limit."""
    reference = image_reference(container)
    if reference.startswith(LOCAL_IMAGES):
        return _local_image_script(settings, reference, image_file(cache_dir, reference, settings.name)), ""
    quoted = shlex.quote(reference)
    base = shlex.join(settings.base)
    registry = shlex.join(settings.registry_options)
    spaced = f" {registry}" if registry else ""
    login = bool(container.username)
    private_list = shlex.quote(f"{private_dir}/{PRIVATE_IMAGES}")
    podman = settings.name == "podman"
    if podman:  # one store may serve several nodes of a machine: no list of ours could say how it got there
        target, remove = reference, f"{base} rmi"
        conf = settings.registries_conf
        skopeo_conf = f" --registries-conf={shlex.quote(conf)}" if conf else ""  # skopeo 1.9 ignores the variable
        lines = [
            "set -u",
            *([f"export CONTAINERS_REGISTRIES_CONF={shlex.quote(conf)}"] if conf else []),
            "fetch() {",
            "check=",
            f"if {base} image exists {quoted}; then",
            "  if command -v skopeo >/dev/null; then check=1",
            f"    echo 'image {reference} is on this node already: the registry checks that this job may use it "
            "(its manifest only)'",
            f"  else echo 'image {reference} is on this node already: pulled again to check that this job may use "
            f"it (install skopeo on the node to check its manifest only)'; fi",
            f"else echo 'pulling image {reference}'; fi",
        ]
    else:  # the node's own image files
        target, remove = image_file(cache_dir, reference, settings.name), "rm -f"
        lines = [
            "set -u",
            "fetch() {",
            f"if [ -s {shlex.quote(target)} ]; then",
            f"  if ! grep -qxF {quoted} {private_list} 2>/dev/null; then",
            f"    echo 'image {reference} is on this node already: not pulled'; return 0",
            "  fi",
            f"  echo 'image {reference} is on this node already, from a private registry: pulled again to check "
            "that this job may use it'",
            f"else echo 'pulling image {reference}'; fi",
        ]
    if podman:
        lines += [
            # An auth file only for this pull, in a directory only root reads, gone when the script ends;
            # empty without credentials, so that no login the node keeps itself stands in for the job's.
            f"auth=$(mktemp -d {shlex.quote(private_dir)}/registry-auth.XXXXXX) || return 1",
            "trap 'rm -rf \"$auth\"' EXIT",
            "echo '{}' > \"$auth/auth.json\" || return 1",
        ]
        if login:
            server = container.server_url or registry_of(reference)
            lines.append(
                f'{base} login {registry} --authfile="$auth/auth.json" --username={shlex.quote(container.username)} '
                f"--password-stdin {shlex.quote(server)} >/dev/null || return 2"
            )
        lines += [
            'if [ -n "$check" ]; then',
            f'  skopeo{skopeo_conf} inspect --raw{spaced} --authfile="$auth/auth.json" docker://{quoted}'
            " >/dev/null || return $?",
            f'else {base} pull{spaced} --authfile="$auth/auth.json" {quoted} || return $?; fi',
        ]
    elif settings.name == "pyxis":
        lines += _enroot_lines(settings, container, reference, private_dir, cache_dir, target)
    else:
        sif = shlex.quote(target)
        lines.append(f"mkdir -p {shlex.quote(cache_dir)} || return 1")
        if login:  # apptainer reads registry credentials from its environment, never from argv
            lines += [
                f"export APPTAINER_DOCKER_USERNAME={shlex.quote(container.username)}",
                "IFS= read -r APPTAINER_DOCKER_PASSWORD; export APPTAINER_DOCKER_PASSWORD",
            ]
        lines.append(
            f"rm -f {sif}.part; {base} pull {registry} {sif}.part docker://{quoted} && mv {sif}.part {sif} || return $?"
        )
    if login and not podman:
        lines.append(f"grep -qxF {quoted} {private_list} 2>/dev/null || echo {quoted} >> {private_list}")
    lines += ["}", "fetch || exit $?"]
    if settings.image_cache_limit is not None:
        lines += _cache_lines(f"{private_dir}/images-used", target, remove, settings.image_cache_limit)
    return "\n".join(lines) + "\n", (container.password + "\n") if login else ""


def _enroot_lines(
    settings: RuntimeSettings,
    container: ContainerSettings,
    reference: str,
    private_dir: str,
    cache_dir: str,
    target: str,
) -> list[str]:
    """enroot's import into the node's squashfs file, with the job's credentials alone in a config
    directory only for this pull (enroot reads them from $ENROOT_CONFIG_PATH/.credentials, netrc's form)."""
    squashfs = shlex.quote(target)
    lines = [
        f"mkdir -p {shlex.quote(cache_dir)} || return 1",
        f"config=$(mktemp -d {shlex.quote(private_dir)}/enroot-config.XXXXXX) || return 1",
        "trap 'rm -rf \"$config\"' EXIT",
        'export ENROOT_CONFIG_PATH="$config"',
    ]
    if container.username:
        server = shlex.quote(registry_of(reference))
        lines += [  # printf is bash's own: the password is in no command line
            "IFS= read -r password",
            f"printf 'machine %s login %s password %s\\n' {server} {shlex.quote(container.username)} \"$password\""
            ' > "$config/.credentials" || return 1',
        ]
    registry = shlex.join(settings.registry_options)
    lines.append(
        f"rm -f {squashfs}.part; {shlex.join(settings.base)} import {registry} -o {squashfs}.part "
        f"{shlex.quote(enroot_uri(reference))} && mv {squashfs}.part {squashfs} || return $?"
    )
    return lines


def _local_image_script(settings: RuntimeSettings, reference: str, sif: str) -> str:
    present = (
        f"{shlex.join(settings.base)} image exists {shlex.quote(reference)}"
        if settings.name == "podman"
        else f"[ -s {shlex.quote(sif)} ]"
    )
    return (
        f"if {present}; then echo 'image {reference} is on this node (a localhost/ image: built here, "
        "never pulled)'; exit 0; fi\n"
        f"echo 'image {reference} is not on this node: a localhost/ image is built on the node itself, "
        "never pulled from a registry; build it there, or name a registry'\n"
        "exit 3\n"
    )


def _cache_lines(used_file: str, target: str, remove: str, limit: int) -> list[str]:
    """Keeps `used_file` ("<time> <image>" per line) up to date with this use, and removes the images used
    least recently beyond `limit` (one a running container holds stays, and is tried again next time)."""
    used, image = shlex.quote(used_file), shlex.quote(target)
    return [
        f"touch {used} && {{ awk -v image={image} '$2 != image' {used}; echo \"$(date +%s) \"{image}; }} > {used}.new",
        f"sort -rn {used}.new | head -n {limit} > {used}",
        f"sort -rn {used}.new | tail -n +{limit + 1} | while read -r when old; do",
        f'  if {remove} "$old" >/dev/null 2>&1; then',
        f'    echo "image $old removed from this node (imageCacheLimit {limit})"',
        f'  else echo "$when $old" >> {used}; fi',
        f"done; rm -f {used}.new",
    ]


# ---- running a task in the image ------------------------------------------------------------------


def covering_paths(paths: Iterable[str]) -> list[str]:
    """The absolute paths of `paths` that no other one contains, sorted: what to bind into a container
    so that all of them are seen there at the same place."""
    kept: list[str] = []
    for path in sorted({p.rstrip("/") or "/" for p in paths if p.startswith("/")}):
        if not any(path == top or path.startswith(top.rstrip("/") + "/") for top in kept):
            kept.append(path)
    return kept


def gpu_options(settings: RuntimeSettings, gpus: int, gpu_mode: str) -> list[str]:
    """What hands a node's NVIDIA GPUs to the container: CDI's device name when the node has a CDI spec,
    else the nvidia hook; nothing without GPUs."""
    if gpus <= 0 or not gpu_mode:
        return []
    if settings.name == "apptainer":
        return ["--nv"]
    if settings.name == "pyxis":
        return []  # enroot's own nvidia hook gives the GPUs NVIDIA_VISIBLE_DEVICES names
    if gpu_mode == "cdi":
        return ["--device=nvidia.com/gpu=all"]
    return [
        f"--hooks-dir={NVIDIA_HOOKS_DIR}",
        "--env=NVIDIA_VISIBLE_DEVICES=all",
        "--env=NVIDIA_DRIVER_CAPABILITIES=compute,utility",
    ]


def gpu_environment(gpus: int, gpu_mode: str) -> dict[str, str]:
    """CUDA_VISIBLE_DEVICES for a task given all of its node's `gpus` (AZ_BATCHAI_NUM_GPUS says as many)."""
    return {"CUDA_VISIBLE_DEVICES": ",".join(str(index) for index in range(gpus))} if gpus > 0 and gpu_mode else {}


def run_argv(
    settings: RuntimeSettings,
    container: ContainerSettings,
    *,
    env_names: Iterable[str],
    binds: Sequence[str],
    cwd: str,
    name: str,
    cache_dir: str,
    gpus: int = 0,
    gpu_mode: str = "",
) -> list[str]:
    """The command line that runs a shell command, its last word to come, in the job's image: host
    network, `binds` at the same paths, `cwd`, the variables `env_names` passed by name."""
    reference = image_reference(container)
    names = sorted(set(env_names))
    if settings.name == "podman":
        return [
            *settings.base,
            "run",
            "--rm",
            "--pull=never",
            f"--name={name}",
            "--network=host",
            "--entrypoint=/bin/sh",
            f"--workdir={cwd}",
            *(f"--volume={path}:{path}" for path in binds),
            *(f"--env={variable}" for variable in names),
            *([f"--shm-size={container.shm_size}"] if container.shm_size else []),
            *gpu_options(settings, gpus, gpu_mode),
            *settings.run_options,
            reference,
            "-c",
            _SHELL,
            "batchai-task",
        ]
    if settings.name == "pyxis":  # a step of its own on this node of the allocation, in the image
        return [
            "/bin/sh",
            "-c",
            'exec srun --overlap --nodes=1 --ntasks=1 --nodelist="$SLURMD_NODENAME" "$@"',
            "batchai-pyxis",
            f"--container-image={image_file(cache_dir, reference, settings.name)}",
            f"--container-mounts={','.join(f'{path}:{path}' for path in binds)}",
            f"--container-workdir={cwd}",
            *settings.run_options,
            "/bin/sh",
            "-c",
            _SHELL,
            "batchai-task",
        ]
    # apptainer shares the host's network and passes the caller's environment by itself
    return [
        *settings.base,
        "exec",
        "--no-home",
        f"--pwd={cwd}",
        *(f"--bind={path}:{path}" for path in binds),
        *gpu_options(settings, gpus, gpu_mode),
        *settings.run_options,
        image_file(cache_dir, reference),
        "/bin/sh",
        "-c",
        _SHELL,
        "batchai-task",
    ]


def task_command(settings: RuntimeSettings, container: ContainerSettings, *, command: str, **run: Any) -> str:
    """The task's command line (run by the wrapper's bash) that runs `command` in the job's image
    (run_argv's keywords say how)."""
    return "exec " + shlex.join([*run_argv(settings, container, **run), command])
