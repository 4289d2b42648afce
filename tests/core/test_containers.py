"""Jobs in images, without running one: containerSettings and `image` in specs, how they are stored (the
password apart), the cluster's containerRuntime, and the scripts and command lines core/containers.py
writes (the GPU choice included: this machine has no GPU)."""

from __future__ import annotations

import dataclasses
import json
import shlex

import pytest

from batchai_jupyter.core import containers
from batchai_jupyter.core.cluster_spec import cluster_spec_to_wire, parse_cluster_spec
from batchai_jupyter.core.models import REGISTRY_PASSWORD, ContainerSettings, stored_secrets
from batchai_jupyter.core.spec import job_spec_to_wire, parse_job_spec
from batchai_jupyter.core.spec_codec import decode_cluster_spec, decode_job_spec, encode_job_spec
from batchai_jupyter.errors import SpecError
from helpers.records import queued_job

SCHEMA = "https://raw.githubusercontent.com/Azure/BatchAI/master/schemas/2018-05-01/job.json"
PASSWORD = "pa$$-w0rd"


def batch_ai(container: dict) -> dict:
    return {
        "$schema": SCHEMA,
        "properties": {
            "name": "j",
            "cluster": "c",
            "nodeCount": 1,
            "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs",
            "customToolkitSettings": {"commandLine": "true"},
            "containerSettings": container,
        },
    }


PRIVATE = {
    "imageSourceRegistry": {
        "serverUrl": "https://myregistry.azurecr.io/",
        "image": "team/train:1.0",
        "credentials": {"username": "robot", "password": PASSWORD},
    },
    "shmSize": "2g",
}


def test_batch_ai_container_settings_are_read_with_the_password_kept_apart():
    spec = parse_job_spec(batch_ai(PRIVATE))
    assert spec.container == ContainerSettings("team/train:1.0", "myregistry.azurecr.io", "robot", PASSWORD, "2g")
    assert containers.image_reference(spec.container) == "myregistry.azurecr.io/team/train:1.0"
    stored = encode_job_spec(spec)
    assert PASSWORD not in json.dumps(stored)
    assert stored_secrets(spec) == {REGISTRY_PASSWORD: PASSWORD}
    wire = job_spec_to_wire(spec)["containerSettings"]
    assert wire == {
        "imageSourceRegistry": {
            "image": "team/train:1.0",
            "serverUrl": "myregistry.azurecr.io",
            "credentials": {"username": "robot"},
        },
        "shmSize": "2g",
    }
    # what runs the job gets the password back; the job's variables never see it
    job = queued_job(decode_job_spec(stored), stored_secrets(spec))
    assert job.with_secrets().container == spec.container
    assert job.with_secrets().secrets == {}


def test_the_native_image_and_short_names_are_docker_hubs():
    spec = parse_job_spec({"name": "j", "cluster": "c", "toolkit": "custom", "commandLine": "x", "image": "ubuntu"})
    assert spec.container == ContainerSettings("ubuntu")
    assert containers.image_reference(spec.container) == "docker.io/ubuntu"
    assert containers.image_reference(ContainerSettings("localhost/x:1")) == "localhost/x:1"
    assert containers.image_reference(ContainerSettings("127.0.0.1:5000/x:1")) == "127.0.0.1:5000/x:1"


def test_stored_specs_of_version_1_have_no_container():
    stored = encode_job_spec(parse_job_spec({"name": "j", "cluster": "c", "toolkit": "custom", "commandLine": "x"}))
    stored.pop("container")
    assert decode_job_spec(dict(stored, v=1)).container is None
    cluster = dataclasses.asdict(parse_cluster_spec({"name": "c"}))
    cluster.pop("container_runtime")
    assert decode_cluster_spec(dict(cluster, v=1)).container_runtime is None


BAD = {
    "an option as image": ({"imageSourceRegistry": {"image": "--privileged"}}, "imageSourceRegistry.image"),
    "no image": ({"imageSourceRegistry": {}}, "imageSourceRegistry.image"),
    "no registry block": ({"shmSize": "1g"}, "containerSettings.imageSourceRegistry"),
    "bad shm size": ({"imageSourceRegistry": {"image": "x"}, "shmSize": "lots"}, "containerSettings.shmSize"),
    "user without password": (
        {"imageSourceRegistry": {"image": "x", "credentials": {"username": "u"}}},
        "credentials.password",
    ),
    "key vault reference": (
        {"imageSourceRegistry": {"image": "x", "credentials": {"username": "u", "passwordSecretReference": {}}}},
        "credentials.passwordSecretReference",
    ),
}


@pytest.mark.parametrize("block, where", BAD.values(), ids=BAD.keys())
def test_bad_container_settings_are_refused_naming_the_field(block, where):
    with pytest.raises(SpecError) as raised:
        parse_job_spec(batch_ai(block))
    assert where in str(raised.value)


def test_a_bad_password_is_refused_without_showing_it():
    block = {"imageSourceRegistry": {"image": "x", "credentials": {"username": "u", "password": ["hunter2"]}}}
    with pytest.raises(SpecError) as raised:
        parse_job_spec(batch_ai(block))
    assert "hunter2" not in str(raised.value) and "credentials.password" in str(raised.value)


def test_a_cluster_names_its_runtime_and_replaces_its_options():
    spec = parse_cluster_spec({"name": "c", "containerRuntime": {"name": "podman", "runOptions": ["--init"]}})
    assert cluster_spec_to_wire(spec)["containerRuntime"] == {"name": "podman", "runOptions": ["--init"]}
    settings = containers.runtime_settings(spec.container_runtime, [])
    assert settings.run_options == ("--init",) and settings.image_cache_limit is None
    assert settings.global_options == containers.DEFAULTS["podman"]["globalOptions"]
    assert parse_cluster_spec({"name": "c", "containerRuntime": "apptainer"}).container_runtime == {"name": "apptainer"}
    bad_runtimes = (
        ("docker", "containerRuntime.name"),
        ({"name": "podman", "runOptions": "x"}, "runOptions"),
        ({"name": "podman", "imageCacheLimit": 0}, "imageCacheLimit"),
        ({"name": "podman", "cacheLimit": 3}, "containerRuntime.cacheLimit"),
        ({"name": "podman", "registriesConf": "registries.conf"}, "containerRuntime.registriesConf"),
    )
    for bad, where in bad_runtimes:
        with pytest.raises(SpecError) as raised:
            parse_cluster_spec({"name": "c", "containerRuntime": bad})
        assert where in str(raised.value)


def test_a_clusters_registries_conf_is_what_its_pulls_and_checks_read():
    runtime = {"name": "podman", "registriesConf": "/etc/site/registries.conf"}
    spec = parse_cluster_spec({"name": "c", "containerRuntime": runtime})
    settings = containers.runtime_settings(spec.container_runtime, [])
    script, _ = containers.pull_script(settings, ContainerSettings("pytorch/pytorch:1.0"), "/p", "/p")
    assert "export CONTAINERS_REGISTRIES_CONF=/etc/site/registries.conf" in script  # podman's login and pull
    assert "skopeo --registries-conf=/etc/site/registries.conf inspect" in script
    assert "docker.io/pytorch/pytorch:1.0" in script  # the name stays Docker Hub's: the file says where it is


def test_the_runtime_is_what_the_node_has_podman_first():
    assert containers.runtime_settings(None, ["apptainer", "podman"]).name == "podman"
    assert containers.runtime_settings(None, ["apptainer"]).name == "apptainer"
    with pytest.raises(containers.ContainerError, match="no container runtime"):
        containers.runtime_settings(None, [])
    facts = containers.node_facts("runtime=podman\nruntime=apptainer\ngpu=hook\ngpu=cdi\n")
    assert facts == {"runtimes": ["podman", "apptainer"], "gpu": "cdi"}


PODMAN = containers.runtime_settings(None, ["podman"])
APPTAINER = containers.runtime_settings(None, ["apptainer"])
PRIVATE_IMAGE = ContainerSettings("team/train:1.0", "reg.example:5000", "robot", PASSWORD, "1g")


def test_the_pull_logs_in_with_the_password_on_stdin_only():
    script, stdin = containers.pull_script(PODMAN, PRIVATE_IMAGE, "/node/run/images", "/node/run/images")
    assert PASSWORD not in script and stdin == PASSWORD + "\n"
    assert "--password-stdin reg.example:5000" in script
    assert "image exists reg.example:5000/team/train:1.0" in script  # a node that has it pulls nothing
    script, stdin = containers.pull_script(APPTAINER, PRIVATE_IMAGE, "/p", "/cache")
    assert PASSWORD not in script and stdin == PASSWORD + "\n"
    public, stdin = containers.pull_script(PODMAN, ContainerSettings("ubuntu"), "/p", "/p")
    assert stdin == "" and "login" not in public


def test_an_image_on_the_node_is_checked_with_the_jobs_own_credentials_only():
    script, _ = containers.pull_script(PODMAN, PRIVATE_IMAGE, "/p", "/p")
    # its manifest, with an auth file of this job's alone (empty without credentials: no node login helps)
    assert 'skopeo inspect --raw --authfile="$auth/auth.json" docker://reg.example:5000/team/train:1.0' in script
    assert "echo '{}' > \"$auth/auth.json\"" in script
    script, _ = containers.pull_script(APPTAINER, PRIVATE_IMAGE, "/p", "/cache")
    assert "grep -qxF reg.example:5000/team/train:1.0 /p/private-images" in script  # pulled again if private


def _argv(settings, gpus=0, gpu_mode="") -> list[str]:
    command = containers.task_command(
        settings,
        PRIVATE_IMAGE,
        command="python3 train.py --lr $LR",
        env_names=["AZ_BATCHAI_JOB_TEMP", "SECRET_TOKEN"],
        binds=["/home/batchai/nodes/n1", "/data"],
        cwd="/home/batchai/nodes/n1/jobs/j",
        name="batchai-1234-1-master",
        cache_dir="/cache",
        gpus=gpus,
        gpu_mode=gpu_mode,
    )
    assert command.startswith("exec ")
    return shlex.split(command[len("exec ") :])


def test_a_task_runs_in_its_image_with_the_hosts_network_and_its_directories_at_the_same_paths():
    argv = _argv(PODMAN)
    assert argv[: len(PODMAN.base)] == PODMAN.base
    for option in (
        "--network=host",
        "--pull=never",
        "--volume=/data:/data",
        "--volume=/home/batchai/nodes/n1:/home/batchai/nodes/n1",
        "--workdir=/home/batchai/nodes/n1/jobs/j",
        "--env=SECRET_TOKEN",  # by name: the value comes from the wrapper's environment
        "--shm-size=1g",
        *PODMAN.run_options,
    ):
        assert option in argv
    assert argv[-1] == "python3 train.py --lr $LR" and "reg.example:5000/team/train:1.0" in argv
    apptainer = _argv(APPTAINER)
    assert "--bind=/data:/data" in apptainer and "/cache/reg.example_5000_team_train_1.0.sif" in apptainer


GPU_CASES = {
    "cdi": (PODMAN, "cdi", ["--device=nvidia.com/gpu=all"]),
    "hook": (PODMAN, "hook", [f"--hooks-dir={containers.NVIDIA_HOOKS_DIR}", "--env=NVIDIA_VISIBLE_DEVICES=all"]),
    "apptainer": (APPTAINER, "cdi", ["--nv"]),
}


@pytest.mark.parametrize("settings, mode, expected", GPU_CASES.values(), ids=GPU_CASES.keys())
def test_a_gpu_node_gives_its_gpus_to_the_container_the_way_it_can(settings, mode, expected):
    argv = _argv(settings, gpus=4, gpu_mode=mode)
    assert all(option in argv for option in expected)
    assert containers.gpu_environment(4, mode) == {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}


def test_no_gpus_no_gpu_options():
    for gpus, mode in ((0, "cdi"), (2, "")):
        argv = _argv(PODMAN, gpus=gpus, gpu_mode=mode)
        assert not [option for option in argv if "nvidia" in option]
        assert containers.gpu_environment(gpus, mode) == {}


def test_binds_keep_only_the_outermost_paths():
    assert containers.covering_paths(["/a/b", "/a", "/ab", "/c/d/", "relative"]) == ["/a", "/ab", "/c/d"]


# ---- Apptainer, pyxis and node-local images, through the scripts themselves -----------------------------
# No Apptainer, enroot or pyxis can be installed here (Debian bookworm has none): a stand-in `apptainer` /
# `enroot` on PATH records the command line and the credentials each pull gets, and writes the image file
# it is asked for.

STAND_IN = """#!/bin/bash
printf '%s\\n' "$*" >> "$RECORDS/argv"
echo "user=${APPTAINER_DOCKER_USERNAME-} password=${APPTAINER_DOCKER_PASSWORD-}" >> "$RECORDS/env"
if [ -n "${ENROOT_CONFIG_PATH-}" ]; then cat "$ENROOT_CONFIG_PATH/.credentials" >> "$RECORDS/credentials"; fi
for word in "$@"; do case "$word" in *.part) echo sif > "$word";; esac; done
"""


def _run_script(tmp_path, script: str, stdin: str) -> tuple[int, str]:
    import os
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("apptainer", "podman", "enroot"):
        (bin_dir / tool).write_text(STAND_IN)
        (bin_dir / tool).chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", RECORDS=str(tmp_path))
    done = subprocess.run(["bash", "-c", script], input=stdin, capture_output=True, text=True, env=env)
    return done.returncode, done.stdout + done.stderr


def test_apptainer_pulls_a_private_image_with_the_password_in_its_environment_only(tmp_path):
    private, cache = tmp_path / "private", tmp_path / "cache"
    private.mkdir()
    script, stdin = containers.pull_script(APPTAINER, PRIVATE_IMAGE, str(private), str(cache))
    code, output = _run_script(tmp_path, script, stdin)
    assert code == 0, output
    assert "pulling image reg.example:5000/team/train:1.0" in output
    argv = (tmp_path / "argv").read_text()
    assert PASSWORD not in argv and PASSWORD not in script
    assert argv.split() == ["--quiet", "pull", f"{cache}/reg.example_5000_team_train_1.0.sif.part"] + [
        "docker://reg.example:5000/team/train:1.0"
    ]
    assert (tmp_path / "env").read_text() == f"user=robot password={PASSWORD}\n"
    assert (cache / "reg.example_5000_team_train_1.0.sif").read_text() == "sif\n"  # in place, whole
    assert (private / containers.PRIVATE_IMAGES).read_text() == "reg.example:5000/team/train:1.0\n"

    # The next job naming it pulls again with its own credentials (no check short of a pull).
    code, output = _run_script(tmp_path, script, stdin)
    assert code == 0 and "from a private registry: pulled again" in output, output
    assert len((tmp_path / "argv").read_text().splitlines()) == 2


def test_apptainer_reuses_a_public_image_and_keeps_its_cache_limit(tmp_path):
    private, cache = tmp_path / "private", tmp_path / "cache"
    private.mkdir()
    limited = dataclasses.replace(APPTAINER, image_cache_limit=1)
    first, _ = containers.pull_script(limited, ContainerSettings("reg.example:5000/a:1"), str(private), str(cache))
    assert _run_script(tmp_path, first, "")[0] == 0
    code, output = _run_script(tmp_path, first, "")
    assert code == 0 and "is on this node already: not pulled" in output, output
    assert (tmp_path / "env").read_text() == "user= password=\n"  # once, and with no credentials
    second, _ = containers.pull_script(limited, ContainerSettings("reg.example:5000/b:1"), str(private), str(cache))
    code, output = _run_script(tmp_path, second, "")
    assert code == 0 and "reg.example_5000_a_1.sif removed from this node (imageCacheLimit 1)" in output, output
    assert sorted(path.name for path in cache.iterdir()) == ["reg.example_5000_b_1.sif"]


@pytest.mark.parametrize("settings", [PODMAN, APPTAINER], ids=["podman", "apptainer"])
def test_a_localhost_image_is_the_nodes_own_and_never_pulled(tmp_path, settings):
    local = ContainerSettings("localhost/team/built:1", username="robot", password=PASSWORD)
    script, stdin = containers.pull_script(settings, local, str(tmp_path), str(tmp_path / "cache"))
    assert stdin == "" and "login" not in script and " pull " not in script
    # the stand-in podman answers `image exists` with 0; apptainer's image file is not there
    code, output = _run_script(tmp_path, script, "")
    if settings is PODMAN:
        assert code == 0 and "is on this node (a localhost/ image: built here, never pulled)" in output, output
    else:
        assert code == 3 and "is built on the node itself, never pulled from a registry" in output, output


PYXIS = containers.runtime_settings({"name": "pyxis"}, [])


def test_pyxis_imports_a_private_image_with_the_password_in_a_credentials_file_only(tmp_path):
    private, cache = tmp_path / "private", tmp_path / "cache"
    private.mkdir()
    script, stdin = containers.pull_script(PYXIS, PRIVATE_IMAGE, str(private), str(cache))
    assert PASSWORD not in script and stdin == PASSWORD + "\n"
    code, output = _run_script(tmp_path, script, stdin)
    assert code == 0, output
    squashfs = f"{cache}/reg.example_5000_team_train_1.0.sqsh"
    assert (tmp_path / "argv").read_text().split() == ["import", "-o", f"{squashfs}.part"] + [
        "docker://reg.example:5000#team/train:1.0"  # enroot's form of the name
    ]
    assert (tmp_path / "credentials").read_text() == f"machine reg.example:5000 login robot password {PASSWORD}\n"
    assert not list(private.glob("enroot-config.*"))  # gone after the pull
    assert open(squashfs).read() == "sif\n"
    code, output = _run_script(tmp_path, script, stdin)  # a private image: imported again with the job's own
    assert code == 0 and "pulled again" in output, output


def test_a_pyxis_task_is_a_step_of_its_own_in_the_image_with_its_directories_mounted():
    argv = _argv(PYXIS, gpus=2, gpu_mode="hook")
    assert argv[:3] == ["/bin/sh", "-c", 'exec srun --overlap --nodes=1 --ntasks=1 --nodelist="$SLURMD_NODENAME" "$@"']
    assert "--container-image=/cache/reg.example_5000_team_train_1.0.sqsh" in argv
    assert "--container-mounts=/home/batchai/nodes/n1:/home/batchai/nodes/n1,/data:/data" in argv
    assert "--container-workdir=/home/batchai/nodes/n1/jobs/j" in argv and "--no-container-mount-home" in argv
    assert argv[-1] == "python3 train.py --lr $LR"
    assert not [word for word in argv if PASSWORD in word]


def test_a_node_whose_srun_takes_container_image_has_pyxis(tmp_path):
    import os
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "enroot").write_text("#!/bin/sh\n")
    (bin_dir / "srun").write_text("#!/bin/sh\necho '      --container-image=[USER@][REGISTRY#]IMAGE[:TAG]|PATH'\n")
    for tool in ("enroot", "srun"):
        (bin_dir / tool).chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:/usr/bin:/bin")
    done = subprocess.run(["bash", "-c", containers.DETECT_SCRIPT], capture_output=True, text=True, env=env)
    assert "runtime=pyxis" in done.stdout.splitlines()
    assert "pyxis" in containers.node_facts(done.stdout)["runtimes"]
    assert containers.runtime_settings(None, ["pyxis"]).name == "pyxis"  # on nodes that have nothing else
    (bin_dir / "srun").write_text("#!/bin/sh\necho '      --nodelist=NODES'\n")  # Slurm without the plugin
    done = subprocess.run(["bash", "-c", containers.DETECT_SCRIPT], capture_output=True, text=True, env=env)
    assert "runtime=pyxis" not in done.stdout.splitlines()
