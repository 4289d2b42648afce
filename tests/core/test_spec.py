"""Parsing the native spec and Batch AI's job.json / cluster.json, the wire form and the store form.

The Batch AI documents below are written after the public schemas and recipes of each API version
(2017-09-01-preview, 2018-03-01, 2018-05-01), including the legacy keys old files still carry.
"""

import copy
import dataclasses
import json

import pytest

from batchai_jupyter.core.cluster_spec import (
    cluster_spec_to_wire,
    parse_cluster_spec,
    vm_size_resources,
)
from batchai_jupyter.core.models import (
    ClusterSpec,
    InputDirectory,
    JobSpec,
    OutputDirectory,
    ScaleSettings,
    SetupTask,
    ToolkitSettings,
)
from batchai_jupyter.core.spec import (
    LOCAL_ARM_PREFIX,
    TOOLKIT_BLOCKS,
    job_spec_to_wire,
    mask_secrets,
    parse_job_spec,
)
from batchai_jupyter.core.spec_codec import (
    decode_cluster_spec,
    decode_job_spec,
    encode_cluster_spec,
    encode_job_spec,
)
from batchai_jupyter.errors import SpecError

SCHEMAS = "https://raw.githubusercontent.com/Azure/BatchAI/master/schemas"
SUBSCRIPTION = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/batchai.recipes"
STORAGE_KEY = "c3RvcmFnZS1hY2NvdW50LWtleS1uZXZlci1yZXR1cm5lZA=="
ADMIN_PASSWORD = "Adm1n-P@ssw0rd-never-kept"
REGISTRY_PASSWORD = "registry-pass-never-kept"
JOB_SECRET = "wandb-s3cr3t-value"
SETUP_SECRET = "setup-s3cr3t-value"

JOB_2017_09_TENSORFLOW = {
    "$schema": f"{SCHEMAS}/2017-09-01-preview/job.json",
    "location": "eastus",
    "properties": {
        "experimentName": "MNIST Train",
        "priority": 100,
        "nodeCount": 2,
        "cluster": {"id": f"{SUBSCRIPTION}/providers/Microsoft.BatchAI/clusters/nc6"},
        "tensorFlowSettings": {
            "pythonScriptFilePath": "$AZ_BATCHAI_INPUT_SCRIPT/mnist_replica.py",
            "masterCommandLineArgs": "--job_name=worker --num_gpus=1 --ps_hosts=$AZ_BATCHAI_PS_HOSTS "
            "--worker_hosts=$AZ_BATCHAI_WORKER_HOSTS --task_index=$AZ_BATCHAI_TASK_INDEX",
            "workerCommandLineArgs": "--job_name=worker --num_gpus=1 --ps_hosts=$AZ_BATCHAI_PS_HOSTS "
            "--worker_hosts=$AZ_BATCHAI_WORKER_HOSTS --task_index=$AZ_BATCHAI_TASK_INDEX",
            "parameterServerCommandLineArgs": "--job_name=ps --num_gpus=0 --ps_hosts=$AZ_BATCHAI_PS_HOSTS "
            "--worker_hosts=$AZ_BATCHAI_WORKER_HOSTS "
            "--task_index=$AZ_BATCHAI_TASK_INDEX",
            "workerCount": 2,
            "parameterServerCount": 1,
        },
        "inputDirectories": [
            {"id": "SCRIPT", "path": "$AZ_BATCHAI_MOUNT_ROOT/external/tensorflow"},
            {"id": "DATASET", "path": "$AZ_BATCHAI_MOUNT_ROOT/external/mnist_dataset"},
        ],
        "outputDirectories": [
            {
                "id": "MODEL",
                "pathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/external",
                "pathSuffix": "Models",
                "type": "model",
                "createNew": True,
            },
        ],
        "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/external",
        "mountVolumes": {
            "azureFileShares": [
                {
                    "accountName": "batchaisample",
                    "azureFileUrl": "https://batchaisample.file.core.windows.net/external",
                    "credentialsInfo": {"accountKey": STORAGE_KEY},
                    "relativeMountPath": "external",
                }
            ],
        },
        "containerSettings": {"imageSourceRegistry": {"image": "tensorflow/tensorflow:1.1.0-gpu"}},
    },
}

JOB_2017_09_CNTK = {
    "$schema": f"{SCHEMAS}/2017-09-01-preview/job.json",
    "properties": {
        "nodeCount": 1,
        "priority": "-5",
        "cntkSettings": {
            "languageType": "brainscript",
            "configFilePath": "$AZ_BATCHAI_INPUT_SCRIPT/ConvNet_MNIST.cntk",
            "commandLineArgs": "rootDir=$AZ_BATCHAI_INPUT_SCRIPT outputDir=$AZ_BATCHAI_OUTPUT_MODEL",
            "processCount": 1,
        },
        "inputDirectories": [{"id": "SCRIPT", "path": "$AZ_BATCHAI_MOUNT_ROOT/afs/cntk"}],
        "outputDirectories": [
            {"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs", "type": "custom", "createNew": False}
        ],
        "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs",
    },
}

JOB_2018_03_PYTORCH = {
    "$schema": f"{SCHEMAS}/2018-03-01/job.json",
    "location": "westeurope",
    "properties": {
        "priority": -50,
        "nodeCount": 2,
        "cluster": {"id": f"{SUBSCRIPTION}/providers/Microsoft.BatchAI/clusters/nc6s"},
        "pyTorchSettings": {
            "pythonScriptFilePath": "$AZ_BATCHAI_JOB_MOUNT_ROOT/scripts/mnist_trainer.py",
            "commandLineArgs": "--dist_url $AZ_BATCHAI_PYTORCH_INIT_METHOD --rank $AZ_BATCHAI_TASK_INDEX "
            "--world-size 2",
            "communicationBackend": "TCP",
            "processCount": "2",
        },
        "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/logs",
        "environmentVariables": [{"name": "NCCL_DEBUG", "value": "INFO"}, {"name": "EPOCHS", "value": 10}],
        "secrets": [{"name": "WANDB_API_KEY", "value": JOB_SECRET}],
        "jobPreparation": {"commandLine": "pip install -r $AZ_BATCHAI_JOB_MOUNT_ROOT/scripts/requirements.txt"},
        "constraints": {"maxWallClockTime": "1.00:00:00"},
        "mountVolumes": {
            "azureFileShares": [
                {
                    "accountName": "recipes",
                    "azureFileUrl": "https://recipes.file.core.windows.net/scripts",
                    "credentials": {"accountKey": STORAGE_KEY},
                    "relativeMountPath": "scripts",
                    "fileMode": "0777",
                    "directoryMode": "0777",
                }
            ],
            "azureBlobFileSystems": [
                {
                    "accountName": "recipes",
                    "containerName": "data",
                    "credentials": {
                        "accountKeySecretReference": {
                            "sourceVault": {"id": "/vaults/v"},
                            "secretUrl": "https://v.vault.azure.net/secrets/k",
                        }
                    },
                    "relativeMountPath": "data",
                }
            ],
        },
    },
}

JOB_2018_05_HOROVOD = {
    "$schema": f"{SCHEMAS}/2018-05-01/horovod.json",
    "location": "westus2",
    "toolType": "horovod",
    "properties": {
        "nodeCount": 2,
        "schedulingPriority": "high",
        "cluster": {"id": f"{SUBSCRIPTION}/providers/Microsoft.BatchAI/workspaces/ws1/clusters/nc24"},
        "horovodSettings": {
            "pythonScriptFilePath": "$AZ_BATCHAI_INPUT_SCRIPTS/tensorflow_mnist.py",
            "pythonInterpreterPath": "/usr/bin/python3",
            "commandLineArgs": "--epochs 5",
            "processCount": 8,
        },
        "jobPreparation": {
            "commandLine": "apt update; apt install mpi-default-dev mpi-default-bin -y; pip install horovod"
        },
        "inputDirectories": [{"id": "SCRIPTS", "path": "$AZ_BATCHAI_JOB_MOUNT_ROOT/scripts"}],
        "outputDirectories": [{"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/output", "type": "model"}],
        "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/logs",
        "constraints": {"maxWallClockTime": "P1DT12H"},
        "containerSettings": {
            "imageSourceRegistry": {
                "image": "myregistry.azurecr.io/horovod:0.13",
                "serverUrl": "myregistry.azurecr.io",
                "credentials": {"username": "myregistry", "password": REGISTRY_PASSWORD},
            },
            "shmSize": "8g",
        },
        "credentialsInfo": {"accountKey": STORAGE_KEY},
    },
}

JOB_2018_05_CUSTOM_MPI = {
    "$schema": f"{SCHEMAS}/2018-05-01/job.json",
    "toolType": "mpi",
    "properties": {
        "nodeCount": "2",
        "schedulingPriority": "Low",
        "customMpiSettings": {
            "commandLine": "python $AZ_BATCHAI_JOB_MOUNT_ROOT/scripts/allreduce.py",
            "processCount": 4,
        },
        "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/logs",
        "constraints": {"maxWallClockTime": "7 days, 0:00:00"},
    },
}

CLUSTER_2017_09_MANUAL = {
    "$schema": f"{SCHEMAS}/2017-09-01-preview/cluster.json",
    "location": "eastus",
    "properties": {
        "vmSize": "STANDARD_NC6",
        "vmPriority": "dedicated",
        "scaleSettings": {"manual": {"targetNodeCount": 2, "nodeDeallocationOption": "waitforjobcompletion"}},
        "virtualMachineConfiguration": {
            "imageReference": {
                "publisher": "microsoft-ads",
                "offer": "linux-data-science-vm-ubuntu",
                "sku": "linuxdsvmubuntu",
                "version": "latest",
            }
        },
        "nodeSetup": {
            "setupTask": {
                "commandLine": "$AZ_BATCHAI_MOUNT_ROOT/external/setup.sh",
                "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/external",
                "runElevated": True,
            },
            "mountVolumes": {
                "azureFileShares": [
                    {
                        "accountName": "batchaisample",
                        "azureFileUrl": "https://batchaisample.file.core.windows.net/external",
                        "credentialsInfo": {"accountKey": STORAGE_KEY},
                        "relativeMountPath": "external",
                    }
                ]
            },
        },
        "userAccountSettings": {"adminUserName": "demoUser", "adminUserPassword": ADMIN_PASSWORD},
    },
}

CLUSTER_2018_03_AUTOSCALE = {
    "$schema": f"{SCHEMAS}/2018-03-01/cluster.json",
    "location": "eastus",
    "properties": {
        "vmSize": "Standard_NC24s_v3",
        "vmPriority": "lowPriority",
        "scaleSettings": {"autoScale": {"minimumNodeCount": 0, "maximumNodeCount": 4, "initialNodeCount": 1}},
        "userAccountSettings": {
            "adminUserName": "batchai",
            "adminUserSshPublicKey": "ssh-rsa AAAAB3Nza",
            "adminUserPassword": ADMIN_PASSWORD,
        },
        "subnet": {"id": f"{SUBSCRIPTION}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/default"},
    },
}

CLUSTER_2018_05_SETUP = {
    "$schema": f"{SCHEMAS}/2018-05-01/cluster.json",
    "properties": {
        "vmSize": "STANDARD_D1",
        "scaleSettings": {"manual": {"targetNodeCount": 1, "nodeDeallocationOption": "Requeue"}},
        "nodeSetup": {
            "setupTask": {
                "commandLine": "pip install -r $AZ_BATCHAI_MOUNT_ROOT/afs/requirements.txt",
                "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs",
                "environmentVariables": [{"name": "PIP_INDEX_URL", "value": "https://pypi.org/simple"}],
                "secrets": [{"name": "HF_TOKEN", "value": SETUP_SECRET}],
            },
            "mountVolumes": {
                "fileServers": [
                    {
                        "fileServer": {"id": f"{SUBSCRIPTION}/fileServers/nfs"},
                        "relativeMountPath": "nfs",
                        "mountOptions": "rw",
                    }
                ]
            },
            "performanceCountersSettings": {
                "appInsightsReference": {"component": {"id": "ai"}, "instrumentationKey": "ikey"}
            },
        },
        "userAccountSettings": {"adminUserName": "batchai", "adminUserPassword": ADMIN_PASSWORD},
    },
}


def dumped(value) -> str:
    """Everything a form could show: its repr and, when it is JSON, its JSON text."""
    return repr(value) + (json.dumps(value) if isinstance(value, dict) else "")


# ---- jobs: one realistic file per API version ---------------------------------------------------


def test_job_2017_09_tensorflow():
    spec = parse_job_spec(copy.deepcopy(JOB_2017_09_TENSORFLOW), name="mnist")
    assert spec.api_version == "2017-09-01-preview"
    assert (spec.name, spec.cluster, spec.workspace, spec.experiment) == ("mnist", "nc6", "default", "default")
    assert spec.priority == 100
    assert spec.node_count == 2
    tf = spec.toolkit
    assert tf.kind == "tensorflow"
    assert tf.python_script == "$AZ_BATCHAI_INPUT_SCRIPT/mnist_replica.py"
    assert tf.master_args.startswith("--job_name=worker") and tf.ps_args.startswith("--job_name=ps")
    assert (tf.worker_count, tf.ps_count, tf.tf_config_chief) == (2, 1, False)
    assert spec.input_directories == [
        InputDirectory("SCRIPT", "$AZ_BATCHAI_MOUNT_ROOT/external/tensorflow"),
        InputDirectory("DATASET", "$AZ_BATCHAI_MOUNT_ROOT/external/mnist_dataset"),
    ]
    assert spec.output_directories == [OutputDirectory("MODEL", "$AZ_BATCHAI_MOUNT_ROOT/external", "Models")]
    assert spec.max_wall_clock_seconds == 7 * 86400
    assert spec.mount_volumes["azureFileShares"][0]["credentialsInfo"]["accountKey"] == STORAGE_KEY
    assert spec.std_out_err_path_prefix == "$AZ_BATCHAI_MOUNT_ROOT/external"


def test_job_2017_09_cntk_brainscript():
    spec = parse_job_spec(JOB_2017_09_CNTK, name="convnet", cluster="d1")
    assert spec.toolkit == ToolkitSettings(
        kind="cntk",
        language="BrainScript",
        config_file="$AZ_BATCHAI_INPUT_SCRIPT/ConvNet_MNIST.cntk",
        args="rootDir=$AZ_BATCHAI_INPUT_SCRIPT outputDir=$AZ_BATCHAI_OUTPUT_MODEL",
        process_count=1,
    )
    assert spec.priority == -5
    assert spec.output_directories == [OutputDirectory("MODEL", "$AZ_BATCHAI_MOUNT_ROOT/afs", "")]


def test_job_2018_03_pytorch_with_secrets_and_mounts():
    spec = parse_job_spec(JOB_2018_03_PYTORCH, name="ddp", workspace="team", experiment="mnist")
    assert spec.api_version == "2018-03-01"
    assert (spec.workspace, spec.experiment, spec.cluster) == ("team", "mnist", "nc6s")
    assert spec.priority == -50
    assert spec.toolkit.kind == "pytorch"
    assert spec.toolkit.communication_backend == "tcp"
    assert spec.toolkit.process_count == 2
    assert spec.environment == {"NCCL_DEBUG": "INFO", "EPOCHS": "10"}
    assert spec.secrets == {"WANDB_API_KEY": JOB_SECRET}
    assert spec.job_preparation.startswith("pip install -r")
    assert spec.max_wall_clock_seconds == 86400
    assert set(spec.mount_volumes) == {"azureFileShares", "azureBlobFileSystems"}


def test_job_2018_05_horovod_ignores_location_and_tooltype_and_keeps_its_container_password_apart():
    spec = parse_job_spec(JOB_2018_05_HOROVOD, name="hvd", experiment="e1")
    assert spec.api_version == "2018-05-01"
    assert spec.cluster == "nc24"
    assert spec.priority == 100  # high
    assert spec.toolkit == ToolkitSettings(
        kind="horovod",
        python_script="$AZ_BATCHAI_INPUT_SCRIPTS/tensorflow_mnist.py",
        python_interpreter="/usr/bin/python3",
        args="--epochs 5",
        process_count=8,
    )
    assert spec.max_wall_clock_seconds == 36 * 3600
    assert spec.output_directories == [OutputDirectory("MODEL", "$AZ_BATCHAI_JOB_MOUNT_ROOT/output")]
    assert spec.mount_volumes is None
    assert spec.container is not None and spec.container.image == "myregistry.azurecr.io/horovod:0.13"
    assert spec.container.password == REGISTRY_PASSWORD  # for the pull only: the spec's secrets hold it
    for form in (encode_job_spec(spec), job_spec_to_wire(spec)):
        assert REGISTRY_PASSWORD not in dumped(form)
        assert STORAGE_KEY not in dumped(form)
    assert STORAGE_KEY not in dumped(spec)


def test_job_2018_05_custom_mpi():
    spec = parse_job_spec(JOB_2018_05_CUSTOM_MPI, name="allreduce", cluster="cpu")
    assert spec.node_count == 2
    assert spec.priority == -100
    assert spec.toolkit == ToolkitSettings(
        kind="customMpi", command_line="python $AZ_BATCHAI_JOB_MOUNT_ROOT/scripts/allreduce.py", process_count=4
    )
    assert spec.max_wall_clock_seconds == 7 * 86400
    assert job_spec_to_wire(spec)["toolType"] == "mpi"


def test_wrapper_without_schema_is_2018_05_and_a_schema_without_wrapper_is_batch_ai():
    body = {"nodeCount": 1, "stdOutErrPathPrefix": "/logs", "customToolkitSettings": {"commandLine": "true"}}
    assert parse_job_spec({"properties": body}, name="j", cluster="c").api_version == "2018-05-01"
    flat = {"$schema": f"{SCHEMAS}/2018-03-01/job.json", **body}
    assert parse_job_spec(flat, name="j", cluster="c").api_version == "2018-03-01"
    odd = {"$schema": "file:///home/me/job.schema.json", "properties": body}
    assert parse_job_spec(odd, name="j", cluster="c").api_version == "2018-05-01"


def test_a_get_response_parses_back_with_its_outer_name():
    doc = {
        "name": "fromget",
        "id": "/x/jobs/fromget",
        "type": "Microsoft.BatchAI/workspaces/experiments/jobs",
        "properties": {
            **JOB_2018_05_CUSTOM_MPI["properties"],
            "provisioningState": "succeeded",
            "executionState": "running",
            "containerSettings": None,
            "jobPreparation": None,
        },
    }
    spec = parse_job_spec(doc, cluster="c")
    assert spec.name == "fromget" and spec.job_preparation == ""


def test_keyword_arguments_override_the_document():
    doc = {"name": "a", "workspace": "w", "experiment": "e", "cluster": "c", "toolkit": "custom", "commandLine": "true"}
    spec = parse_job_spec(doc, name="b", workspace="w2", experiment="e2", cluster="c2")
    assert (spec.name, spec.workspace, spec.experiment, spec.cluster) == ("b", "w2", "e2", "c2")


def test_the_callers_document_is_left_alone():
    doc = copy.deepcopy(JOB_2018_03_PYTORCH)
    spec = parse_job_spec(doc, name="x")
    spec.mount_volumes["azureFileShares"].clear()
    assert doc == JOB_2018_03_PYTORCH


# ---- jobs: the native spec -----------------------------------------------------------------------


def test_native_minimal_defaults():
    spec = parse_job_spec({"name": "hello", "cluster": "local", "toolkit": "custom", "commandLine": "echo hi"})
    assert spec == JobSpec(name="hello", cluster="local", toolkit=ToolkitSettings(command_line="echo hi"))
    assert spec.api_version == "native" and spec.node_count == 1 and spec.priority == 0
    assert spec.std_out_err_path_prefix == "" and spec.max_retries == 0


def test_native_conveniences():
    spec = parse_job_spec(
        {
            "name": "sweep-1",
            "workspace": "team",
            "experiment": "lr",
            "cluster": "gpu",
            "toolkit": {
                "type": "PyTorch",
                "pythonScriptFilePath": "train.py",
                "commandLineArgs": "--lr 0.1",
                "processCount": 4,
                "communicationBackend": "Gloo",
            },
            "nodeCount": 2,
            "schedulingPriority": 7,
            "maxRetries": "3",
            "environmentVariables": {"LR": "0.1", "SEED": 1},
            "secrets": {"API_TOKEN": "t0ken"},
            "jobPreparation": "pip install -e .",
            "constraints": {"maxWallClockTime": "2h"},
            "inputDirectories": [{"id": "DATA", "path": "/data"}],
            "outputDirectories": [{"id": "MODEL", "pathPrefix": "/out", "pathSuffix": "m"}],
            "mountVolumes": {
                "unmanagedFileSystems": [{"mountCommand": "mount -t nfs 10.0.0.4:/x", "relativeMountPath": "x"}]
            },
        }
    )
    assert (spec.workspace, spec.experiment, spec.cluster, spec.node_count) == ("team", "lr", "gpu", 2)
    assert spec.toolkit == ToolkitSettings(
        kind="pytorch", python_script="train.py", args="--lr 0.1", process_count=4, communication_backend="gloo"
    )
    assert spec.priority == 7 and spec.max_retries == 3
    assert spec.environment == {"LR": "0.1", "SEED": "1"}
    assert spec.secrets == {"API_TOKEN": "t0ken"}
    assert spec.job_preparation == "pip install -e ."
    assert spec.max_wall_clock_seconds == 7200
    assert spec.mount_volumes["unmanagedFileSystems"][0]["relativeMountPath"] == "x"


@pytest.mark.parametrize("kind", ["tensorflow", "TensorFlow"])
def test_native_tensorflow_chief_flag(kind):
    spec = parse_job_spec(
        {
            "name": "tf",
            "cluster": "c",
            "tensorFlowSettings": {
                "pythonScriptFilePath": "t.py",
                "tfConfigChief": True,
                "workerCount": "3",
                "parameterServerCount": 0,
            },
        }
    )
    assert (spec.toolkit.tf_config_chief, spec.toolkit.worker_count, spec.toolkit.ps_count) == (True, 3, 0)
    flat = parse_job_spec(
        {"name": "tf", "cluster": "c", "toolkit": kind, "pythonScriptFilePath": "t.py", "tfConfigChief": "true"}
    )
    assert flat.toolkit.kind == "tensorflow" and flat.toolkit.tf_config_chief


def test_max_retries_inside_constraints_and_cluster_arm_id():
    spec = parse_job_spec(
        {
            "name": "j",
            "cluster": {"id": "/subscriptions/s/x/workspaces/w/clusters/gpu4"},
            "toolkit": {"type": "mpi", "commandLine": "hostname"},
            "constraints": {"maxRetries": 2},
        }
    )
    assert (spec.max_retries, spec.cluster, spec.toolkit.kind) == (2, "gpu4", "customMpi")


@pytest.mark.parametrize(
    "block, kind, fields",
    [
        ("tensorFlowSettings", "tensorflow", {"pythonScriptFilePath": "s.py"}),
        ("pyTorchSettings", "pytorch", {"pythonScriptFilePath": "s.py"}),
        ("horovodSettings", "horovod", {"pythonScriptFilePath": "s.py"}),
        ("chainerSettings", "chainer", {"pythonScriptFilePath": "s.py", "processCount": 2}),
        ("cntkSettings", "cntk", {"languageType": "Python", "pythonScriptFilePath": "s.py"}),
        ("caffeSettings", "caffe", {"configFilePath": "solver.prototxt"}),
        ("caffeSettings", "caffe", {"pythonScriptFilePath": "s.py"}),
        ("caffe2Settings", "caffe2", {"pythonScriptFilePath": "s.py"}),
        ("customMpiSettings", "customMpi", {"commandLine": "hostname"}),
        ("customToolkitSettings", "custom", {}),
    ],
)
def test_every_toolkit_block(block, kind, fields):
    spec = parse_job_spec(
        {"properties": {"nodeCount": 1, "stdOutErrPathPrefix": "/l", block: fields}}, name="j", cluster="c"
    )
    assert spec.toolkit.kind == kind == TOOLKIT_BLOCKS[block]
    wire = job_spec_to_wire(spec)
    assert set(TOOLKIT_BLOCKS) & set(wire) == {block}
    assert {key: wire[block][key] for key in fields} == fields


def test_fields_a_toolkit_does_not_have_are_ignored():
    spec = parse_job_spec(
        native(
            toolkit={
                "type": "caffe2",
                "pythonScriptFilePath": "s.py",
                "processCount": 9,
                "commandLine": "x",
                "workerCount": 2,
            }
        )
    )
    assert spec.toolkit == ToolkitSettings(kind="caffe2", python_script="s.py")


def test_unknown_and_legacy_keys_are_ignored():
    spec = parse_job_spec(
        {
            "name": "j",
            "cluster": "c",
            "toolkit": "custom",
            "whatever": {"x": 1},
            "experimentName": "Not A Valid Name!",
            "credentialsInfo": {},
            "location": "x",
            "toolType": "cntk",
            "containerSettings": {"imageSourceRegistry": {"image": "i"}},
        }
    )
    assert spec.experiment == "default" and spec.toolkit.kind == "custom"


# ---- jobs: every error names the path, the value and what is allowed --------------------------------


def wrapped(**properties):
    """A valid 2018-05-01 job.json with `properties` changed (None leaves a field out)."""
    base = {
        "nodeCount": 1,
        "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/logs",
        "pyTorchSettings": {"pythonScriptFilePath": "train.py"},
    }
    return {"$schema": f"{SCHEMAS}/2018-05-01/job.json", "properties": {**base, **properties}}


def native(**fields):
    return {"name": "j", "cluster": "c", "toolkit": {"type": "custom", "commandLine": "true"}, **fields}


def pytorch(**fields):
    return wrapped(pyTorchSettings={"pythonScriptFilePath": "train.py", **fields})


NODE_COUNTS = "an integer from 1 to 1000"  # a job spans at most a whole cluster
CLUSTER_SIZES = "an integer from 0 to 1000"

JOB_ERRORS = [
    # (document, keyword arguments, path, value, part of what is allowed)
    (native(name="bad name!"), {}, "name", "bad name!", "job names are 1-64 characters"),
    (native(name=None), {}, "name", None, "name is required"),
    (wrapped(), {"cluster": "c"}, "name", None, "pass it as an argument"),
    (native(), {"name": "x" * 65}, "name", "x" * 65, "1-64 characters"),
    (native(cluster=None), {}, "cluster", None, "cluster is required"),
    (native(cluster="no/slash"), {}, "cluster", "no/slash", "cluster names are"),
    (
        wrapped(cluster={"id": "/subscriptions/s/clusters/bad name"}),
        {"name": "j"},
        "properties.cluster.id",
        "bad name",
        "cluster names are",
    ),
    (wrapped(cluster={"name": "c"}), {"name": "j"}, "properties.cluster.id", None, "ARM id"),
    (native(workspace="w s"), {}, "workspace", "w s", "workspace names are"),
    (native(experiment=""), {}, "experiment", "", "experiment names are"),
    (wrapped(pyTorchSettings=None), {"name": "j", "cluster": "c"}, "properties", None, "customMpiSettings"),
    (native(toolkit=None), {}, "toolkit", None, "exactly one toolkit block"),
    (
        wrapped(customToolkitSettings={"commandLine": "x"}),
        {"name": "j", "cluster": "c"},
        "properties.customToolkitSettings",
        {"commandLine": "x"},
        "not both pyTorchSettings and customToolkitSettings",
    ),
    (
        native(chainerSettings={"pythonScriptFilePath": "a"}),
        {},
        "toolkit",
        {"type": "custom", "commandLine": "true"},
        "not both chainerSettings and toolkit",
    ),
    (native(toolkit="keras"), {}, "toolkit", "keras", "one of custom, customMpi, pytorch"),
    (native(toolkit={"commandLine": "x"}), {}, "toolkit.type", None, "one of custom"),
    (native(toolkit=["custom"]), {}, "toolkit", ["custom"], 'a toolkit kind or an object {"type": kind'),
    (
        wrapped(pyTorchSettings="train.py"),
        {"name": "j", "cluster": "c"},
        "properties.pyTorchSettings",
        "train.py",
        "a JSON object",
    ),
    (wrapped(nodeCount=None), {"name": "j", "cluster": "c"}, "properties.nodeCount", None, NODE_COUNTS),
    (wrapped(nodeCount=0), {"name": "j", "cluster": "c"}, "properties.nodeCount", 0, NODE_COUNTS),
    (wrapped(nodeCount="two"), {"name": "j", "cluster": "c"}, "properties.nodeCount", "two", NODE_COUNTS),
    (wrapped(nodeCount=1.5), {"name": "j", "cluster": "c"}, "properties.nodeCount", 1.5, NODE_COUNTS),
    (wrapped(nodeCount=True), {"name": "j", "cluster": "c"}, "properties.nodeCount", True, NODE_COUNTS),
    (native(nodeCount=-1), {}, "nodeCount", -1, NODE_COUNTS),
    (native(nodeCount=100000), {}, "nodeCount", 100000, NODE_COUNTS),
    (
        wrapped(stdOutErrPathPrefix=None),
        {"name": "j", "cluster": "c"},
        "properties.stdOutErrPathPrefix",
        None,
        "stdOutErrPathPrefix is required",
    ),
    (wrapped(stdOutErrPathPrefix=5), {"name": "j", "cluster": "c"}, "properties.stdOutErrPathPrefix", 5, "a string"),
    (
        wrapped(schedulingPriority="urgent"),
        {"name": "j", "cluster": "c"},
        "properties.schedulingPriority",
        "urgent",
        "low, normal, high or an integer from -1000 to 1000",
    ),
    (native(schedulingPriority=1001), {}, "schedulingPriority", 1001, "low, normal, high"),
    (
        wrapped(priority=5000),
        {"name": "j", "cluster": "c"},
        "properties.priority",
        5000,
        "an integer from -1000 to 1000",
    ),
    (
        wrapped(constraints={"maxWallClockTime": "forever"}),
        {"name": "j", "cluster": "c"},
        "properties.constraints.maxWallClockTime",
        "forever",
        "7.00:00:00",
    ),
    (wrapped(constraints="1d"), {"name": "j", "cluster": "c"}, "properties.constraints", "1d", "a JSON object"),
    (native(maxRetries=-1), {}, "maxRetries", -1, "an integer >= 0"),
    (native(constraints={"maxRetries": "x"}), {}, "constraints.maxRetries", "x", "an integer >= 0"),
    (
        native(maxRetries=1, constraints={"maxRetries": 2}),
        {},
        "constraints.maxRetries",
        2,
        "either maxRetries or constraints.maxRetries",
    ),
    (
        pytorch(processCount=0),
        {"name": "j", "cluster": "c"},
        "properties.pyTorchSettings.processCount",
        0,
        "an integer from 1 to 100000",
    ),
    (
        pytorch(communicationBackend="nccl"),
        {"name": "j", "cluster": "c"},
        "properties.pyTorchSettings.communicationBackend",
        "nccl",
        "one of tcp, gloo, mpi",
    ),
    (
        pytorch(pythonScriptFilePath=None),
        {"name": "j", "cluster": "c"},
        "properties.pyTorchSettings.pythonScriptFilePath",
        None,
        "the path of the Python script",
    ),
    (
        pytorch(pythonScriptFilePath=["a.py"]),
        {"name": "j", "cluster": "c"},
        "properties.pyTorchSettings.pythonScriptFilePath",
        ["a.py"],
        "a string",
    ),
    (native(toolkit={"type": "horovod"}), {}, "toolkit.pythonScriptFilePath", None, "(horovod)"),
    (native(toolkit="chainer"), {}, "pythonScriptFilePath", None, "(chainer)"),
    (
        native(toolkit={"type": "customMpi", "processCount": 2}),
        {},
        "toolkit.commandLine",
        None,
        "the command mpirun starts",
    ),
    (native(toolkit={"type": "caffe"}), {}, "toolkit.configFilePath", None, "exactly one of configFilePath"),
    (
        native(toolkit={"type": "caffe", "configFilePath": "s", "pythonScriptFilePath": "p"}),
        {},
        "toolkit.configFilePath",
        "s",
        "exactly one of configFilePath",
    ),
    (native(toolkit={"type": "cntk"}), {}, "toolkit.configFilePath", None, "BrainScript config file"),
    (native(toolkit={"type": "cntk", "languageType": "Python"}), {}, "toolkit.pythonScriptFilePath", None, "(cntk)"),
    (
        native(toolkit={"type": "cntk", "languageType": "Lua"}),
        {},
        "toolkit.languageType",
        "Lua",
        "one of BrainScript, Python",
    ),
    (
        native(toolkit={"type": "tensorflow", "pythonScriptFilePath": "t", "tfConfigChief": "maybe"}),
        {},
        "toolkit.tfConfigChief",
        "maybe",
        "true or false",
    ),
    (
        native(toolkit={"type": "tensorflow", "pythonScriptFilePath": "t", "workerCount": 0}),
        {},
        "toolkit.workerCount",
        0,
        "an integer from 1 to 100000",
    ),
    (
        native(toolkit={"type": "tensorflow", "pythonScriptFilePath": "t", "parameterServerCount": -1}),
        {},
        "toolkit.parameterServerCount",
        -1,
        "an integer >= 0",
    ),
    (native(inputDirectories={"id": "A"}), {}, "inputDirectories", {"id": "A"}, "a list of objects"),
    (native(inputDirectories=["A"]), {}, "inputDirectories[0]", "A", "a JSON object"),
    (
        native(inputDirectories=[{"id": "1abc", "path": "/x"}]),
        {},
        "inputDirectories[0].id",
        "1abc",
        "letters, digits and '_'",
    ),
    (
        native(inputDirectories=[{"id": "with-dash", "path": "/x"}]),
        {},
        "inputDirectories[0].id",
        "with-dash",
        "letters, digits and '_'",
    ),
    (native(inputDirectories=[{"path": "/x"}]), {}, "inputDirectories[0].id", None, "id is required"),
    (native(inputDirectories=[{"id": "A"}]), {}, "inputDirectories[0].path", None, "path is required"),
    (
        native(inputDirectories=[{"id": "A", "path": "/a"}, {"id": "A", "path": "/b"}]),
        {},
        "inputDirectories[1].id",
        "A",
        "each id once in inputDirectories",
    ),
    (
        wrapped(outputDirectories=[{"id": "MODEL", "pathSuffix": "m"}]),
        {"name": "j", "cluster": "c"},
        "properties.outputDirectories[0].pathPrefix",
        None,
        "pathPrefix is required",
    ),
    (
        native(outputDirectories=[{"id": "M", "pathPrefix": "/a"}, {"id": "M", "pathPrefix": "/b"}]),
        {},
        "outputDirectories[1].id",
        "M",
        "each id once in outputDirectories",
    ),
    (
        wrapped(environmentVariables=[{"name": "1BAD", "value": "x"}]),
        {"name": "j", "cluster": "c"},
        "properties.environmentVariables[0].name",
        "1BAD",
        "a variable name",
    ),
    (native(environmentVariables=[{"value": "x"}]), {}, "environmentVariables[0].name", None, "a variable name"),
    (native(environmentVariables={"A=B": "x"}), {}, "environmentVariables.A=B", "A=B", "a variable name"),
    (
        native(environmentVariables=[{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
        {},
        "environmentVariables[1].name",
        "A",
        "each name once in environmentVariables",
    ),
    (native(environmentVariables=[{"name": "A"}]), {}, "environmentVariables[0].value", None, "value is required"),
    (native(environmentVariables={"A": ["x"]}), {}, "environmentVariables.A", ["x"], "a string value"),
    (native(environmentVariables="A=1"), {}, "environmentVariables", "A=1", "a list of objects"),
    (
        wrapped(secrets=[{"name": "KEY", "valueSecretReference": {"sourceVault": {"id": "/v"}, "secretUrl": "u"}}]),
        {"name": "j", "cluster": "c"},
        "properties.secrets[0].valueSecretReference",
        {"sourceVault": {"id": "/v"}, "secretUrl": "u"},
        "put the secret itself in `value`",
    ),
    (native(secrets=[{"name": "KEY"}]), {}, "secrets[0].value", None, "value is required"),
    (native(secrets={"KEY": {"nested": "hidden-value"}}), {}, "secrets.KEY", "<hidden>", "a string value"),
    (native(jobPreparation={"command": "x"}), {}, "jobPreparation.commandLine", None, "commandLine is required"),
    (native(jobPreparation=["x"]), {}, "jobPreparation", ["x"], 'a command string or an object {"commandLine"'),
    (wrapped(mountVolumes=["afs"]), {"name": "j", "cluster": "c"}, "properties.mountVolumes", ["afs"], "a JSON object"),
    ({"properties": "nodeCount=1"}, {"name": "j", "cluster": "c"}, "properties", "nodeCount=1", "a JSON object"),
    ("job.json", {}, "(document)", "job.json", "a JSON object"),
]


@pytest.mark.parametrize("doc, kwargs, path, value, allowed", JOB_ERRORS)
def test_job_errors_name_path_value_and_allowed(doc, kwargs, path, value, allowed):
    with pytest.raises(SpecError) as caught:
        parse_job_spec(doc, **kwargs)
    assert_spec_error(caught.value, path, value, allowed)


def assert_spec_error(error: SpecError, path: str, value, allowed: str) -> None:
    assert error.path == path, error.message
    assert error.status == 400
    assert error.message.startswith(f"{path}: "), error.message
    shown = value if isinstance(value, str) and value == "<hidden>" else repr(value)
    assert shown[:60] in error.message, error.message
    assert allowed in error.message, error.message


def test_secret_values_never_appear_in_errors():
    doc = native(secrets=[{"name": "bad name", "value": JOB_SECRET}])
    with pytest.raises(SpecError) as caught:
        parse_job_spec(doc)
    assert JOB_SECRET not in caught.value.message


# ---- jobs: wire form and store form --------------------------------------------------------------


def test_wire_form_has_batch_ai_names_and_no_secret_values():
    spec = parse_job_spec(JOB_2018_03_PYTORCH, name="ddp")
    wire = job_spec_to_wire(spec)
    assert wire["cluster"] == {"id": f"{LOCAL_ARM_PREFIX}/workspaces/default/clusters/nc6s"}
    assert wire["nodeCount"] == 2 and wire["schedulingPriority"] == -50
    assert wire["constraints"] == {"maxWallClockTime": "1.00:00:00", "maxRetries": 0}
    assert wire["toolType"] == "pytorch"
    assert wire["pyTorchSettings"] == {
        "pythonScriptFilePath": "$AZ_BATCHAI_JOB_MOUNT_ROOT/scripts/mnist_trainer.py",
        "commandLineArgs": JOB_2018_03_PYTORCH["properties"]["pyTorchSettings"]["commandLineArgs"],
        "processCount": 2,
        "communicationBackend": "tcp",
    }
    assert wire["secrets"] == [{"name": "WANDB_API_KEY"}]
    assert wire["environmentVariables"] == [{"name": "NCCL_DEBUG", "value": "INFO"}, {"name": "EPOCHS", "value": "10"}]
    assert wire["jobPreparation"] == {"commandLine": spec.job_preparation}
    assert wire["mountVolumes"]["azureFileShares"][0]["credentials"] == {"accountKey": "***"}
    assert wire["mountVolumes"]["azureBlobFileSystems"][0]["credentials"]["accountKeySecretReference"]["secretUrl"]
    assert JOB_SECRET not in dumped(wire) and STORAGE_KEY not in dumped(wire)
    json.dumps(wire)


@pytest.mark.parametrize(
    "doc, kwargs",
    [
        (JOB_2017_09_TENSORFLOW, {"name": "a"}),
        (JOB_2017_09_CNTK, {"name": "a", "cluster": "c"}),
        (JOB_2018_03_PYTORCH, {"name": "a", "workspace": "w", "experiment": "e"}),
        (JOB_2018_05_HOROVOD, {"name": "a"}),
        (JOB_2018_05_CUSTOM_MPI, {"name": "a", "cluster": "c"}),
        (
            native(
                toolkit={
                    "type": "tensorflow",
                    "pythonScriptFilePath": "t",
                    "tfConfigChief": True,
                    "parameterServerCount": 0,
                },
                schedulingPriority="normal",
                maxRetries=2,
            ),
            {},
        ),
    ],
)
def test_wire_form_parses_back_to_the_same_spec(doc, kwargs):
    spec = parse_job_spec(doc, **kwargs)
    wire = job_spec_to_wire(spec)
    secrets = [{"name": name, "value": value} for name, value in spec.secrets.items()]
    wire = json.loads(json.dumps(wire))
    if spec.container and spec.container.password:  # withheld as secret values are; given again
        wire["containerSettings"]["imageSourceRegistry"]["credentials"]["password"] = spec.container.password
    again = parse_job_spec(wire | {"secrets": secrets})
    assert again == dataclasses.replace(spec, api_version="native", mount_volumes=mask_secrets(spec.mount_volumes))


@pytest.mark.parametrize(
    "doc, kwargs",
    [
        (JOB_2017_09_TENSORFLOW, {"name": "a"}),
        (JOB_2018_03_PYTORCH, {"name": "a"}),
        (JOB_2018_05_HOROVOD, {"name": "a"}),
        (native(toolkit="custom"), {}),
    ],
)
def test_store_form_round_trips_exactly_without_secrets(doc, kwargs):
    spec = parse_job_spec(doc, **kwargs)
    stored = json.loads(json.dumps(encode_job_spec(spec)))
    assert "secrets" not in stored
    assert JOB_SECRET not in dumped(stored)
    container = spec.container and dataclasses.replace(spec.container, password="")  # kept with the secrets
    assert decode_job_spec(stored) == dataclasses.replace(spec, secrets={}, container=container)


# ---- clusters ------------------------------------------------------------------------------------


def test_cluster_2017_09_manual_keeps_no_password():
    spec = parse_cluster_spec(CLUSTER_2017_09_MANUAL, name="nc6")
    assert spec.api_version == "2017-09-01-preview"
    assert (spec.name, spec.workspace, spec.backend, spec.vm_size) == ("nc6", "default", "local", "STANDARD_NC6")
    assert (spec.cpus_per_node, spec.gpus_per_node, spec.memory_mb_per_node) == (6, 1, 56 * 1024)
    assert spec.scale == ScaleSettings(mode="manual", target=2, node_deallocation_option="waitforjobcompletion")
    assert spec.setup_task == SetupTask(
        command_line="$AZ_BATCHAI_MOUNT_ROOT/external/setup.sh",
        std_out_err_path_prefix="$AZ_BATCHAI_MOUNT_ROOT/external",
    )
    assert spec.mount_volumes["azureFileShares"][0]["relativeMountPath"] == "external"
    for form in (spec, encode_cluster_spec(spec), cluster_spec_to_wire(spec)):
        assert ADMIN_PASSWORD not in dumped(form)
        assert "demoUser" not in dumped(form)
    assert STORAGE_KEY not in dumped(cluster_spec_to_wire(spec))


def test_cluster_2018_03_autoscale_low_priority():
    spec = parse_cluster_spec(CLUSTER_2018_03_AUTOSCALE, name="v100", workspace="team")
    assert spec.vm_priority == "lowpriority"
    assert (spec.cpus_per_node, spec.gpus_per_node) == (24, 4)
    assert spec.scale == ScaleSettings(mode="auto", target=0, minimum=0, maximum=4, initial=1)
    assert spec.setup_task is None and spec.mount_volumes is None
    for form in (spec, encode_cluster_spec(spec), cluster_spec_to_wire(spec)):
        assert ADMIN_PASSWORD not in dumped(form) and "ssh-rsa" not in dumped(form)
    assert cluster_spec_to_wire(spec)["scaleSettings"] == {
        "autoScale": {"minimumNodeCount": 0, "maximumNodeCount": 4, "initialNodeCount": 1}
    }


def test_cluster_2018_05_setup_task_secrets_stay_inside():
    spec = parse_cluster_spec(CLUSTER_2018_05_SETUP, name="cpu")
    assert spec.scale.node_deallocation_option == "requeue" and spec.scale.target == 1
    assert (spec.cpus_per_node, spec.gpus_per_node) == (1, 0)
    assert spec.setup_task.environment == {"PIP_INDEX_URL": "https://pypi.org/simple"}
    assert spec.setup_task.secrets == {"HF_TOKEN": SETUP_SECRET}
    assert spec.mount_volumes["fileServers"][0]["mountOptions"] == "rw"
    wire = cluster_spec_to_wire(spec)
    assert wire["nodeSetup"]["setupTask"] == {
        "commandLine": "pip install -r $AZ_BATCHAI_MOUNT_ROOT/afs/requirements.txt",
        "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs",
        "environmentVariables": [{"name": "PIP_INDEX_URL", "value": "https://pypi.org/simple"}],
        "secrets": [{"name": "HF_TOKEN"}],
    }
    for form in (encode_cluster_spec(spec), wire):
        assert SETUP_SECRET not in dumped(form) and ADMIN_PASSWORD not in dumped(form)


def test_native_cluster_defaults():
    spec = parse_cluster_spec({"name": "local"})
    assert spec == ClusterSpec(name="local")
    assert spec.scale == ScaleSettings(mode="manual", target=1) and spec.api_version == "native"
    assert (spec.vm_size, spec.cpus_per_node, spec.gpus_per_node) == ("local", 1, 0)


def test_native_cluster_conveniences():
    spec = parse_cluster_spec(
        {
            "name": "ssh-pool",
            "workspace": "team",
            "backend": "ssh",
            "minNodes": 1,
            "maxNodes": "3",
            "idleSecondsBeforeScaledown": "10m",
            "cpusPerNode": 16,
            "gpusPerNode": "2",
            "memoryMbPerNode": 64000,
            "vmSize": "Standard_NC6",
            "setupTask": "pip install torch",
            "backendOptions": {"hosts": ["10.0.0.2", "10.0.0.3"], "user": "me", "sshKey": "PRIVATE-KEY"},
        }
    )
    assert (spec.workspace, spec.backend) == ("team", "ssh")
    assert spec.scale == ScaleSettings(mode="auto", target=0, minimum=1, maximum=3, idle_seconds_before_scaledown=600)
    assert (spec.cpus_per_node, spec.gpus_per_node, spec.memory_mb_per_node) == (16, 2, 64000)
    assert spec.setup_task == SetupTask(command_line="pip install torch")
    assert spec.backend_options["hosts"] == ["10.0.0.2", "10.0.0.3"]
    wire = cluster_spec_to_wire(spec)
    assert wire["backendOptions"] == {"hosts": ["10.0.0.2", "10.0.0.3"], "user": "me", "sshKey": "***"}
    assert wire["idleSecondsBeforeScaledown"] == 600


@pytest.mark.parametrize(
    "doc, kwargs, scale",
    [
        ({"name": "c", "nodeCount": 4}, {}, ScaleSettings(target=4)),
        ({"name": "c", "nodeCount": 0}, {}, ScaleSettings(target=0)),
        ({"name": "c", "maxNodes": 2}, {}, ScaleSettings(mode="auto", target=0, maximum=2)),
        ({"name": "c", "scaleSettings": {"manual": {}}}, {}, ScaleSettings(target=0)),
        (
            {"name": "c", "scaleSettings": {"autoScale": {"maximumNodeCount": 2, "idleSecondsBeforeScaledown": 0}}},
            {},
            ScaleSettings(mode="auto", target=0, maximum=2, idle_seconds_before_scaledown=0),
        ),
        (
            {
                "properties": {
                    "vmSize": "d1",
                    "scaleSettings": {"manual": {"targetNodeCount": "3", "nodeDeallocationOption": "Terminate"}},
                }
            },
            {"name": "c"},
            ScaleSettings(target=3, node_deallocation_option="terminate"),
        ),
    ],
)
def test_scale_forms(doc, kwargs, scale):
    assert parse_cluster_spec(doc, **kwargs).scale == scale


@pytest.mark.parametrize(
    "size, resources",
    [
        ("STANDARD_D1", (1, 0, 3584)),
        ("standard_d4_v2", (8, 0, 28 * 1024)),
        ("Standard_DS3_v2", (4, 0, 14 * 1024)),
        ("STANDARD_NC6", (6, 1, 56 * 1024)),
        ("STANDARD_NC12", (12, 2, 112 * 1024)),
        ("NC24", (24, 4, 224 * 1024)),
        ("Standard_NC6s_v2", (6, 1, 112 * 1024)),
        ("Standard_NC12s_v3", (12, 2, 224 * 1024)),
        ("Standard_NV6", (6, 1, 56 * 1024)),
        ("Standard_ND6s", (6, 1, 112 * 1024)),
        ("Standard_ND24rs", (24, 4, 448 * 1024)),
        ("local", (1, 0, 0)),
        ("Standard_Unknown99", (1, 0, 0)),
    ],
)
def test_vm_size_table(size, resources):
    assert vm_size_resources(size) == resources
    spec = parse_cluster_spec({"name": "c", "vmSize": size})
    assert (spec.cpus_per_node, spec.gpus_per_node, spec.memory_mb_per_node) == resources


def test_backend_argument_overrides_and_cluster_store_form_round_trips():
    spec = parse_cluster_spec(CLUSTER_2018_05_SETUP, name="cpu", workspace="w", backend="slurm")
    assert spec.backend == "slurm"
    stored = json.loads(json.dumps(encode_cluster_spec(spec)))
    assert "secrets" not in stored["setup_task"]
    expected = dataclasses.replace(spec, setup_task=dataclasses.replace(spec.setup_task, secrets={}))
    assert decode_cluster_spec(stored) == expected
    for doc in (CLUSTER_2017_09_MANUAL, CLUSTER_2018_03_AUTOSCALE, {"name": "x", "backendOptions": {"a": 1}}):
        spec = parse_cluster_spec(doc, name="x")
        assert decode_cluster_spec(json.loads(json.dumps(encode_cluster_spec(spec)))) == spec


def test_cluster_wire_form_parses_back():
    for doc in (CLUSTER_2017_09_MANUAL, CLUSTER_2018_03_AUTOSCALE, {"name": "n", "maxNodes": 3}):
        spec = parse_cluster_spec(doc, name="x")
        again = parse_cluster_spec(json.loads(json.dumps(cluster_spec_to_wire(spec))))
        masked = mask_secrets(spec.mount_volumes)
        assert again == dataclasses.replace(spec, api_version="native", mount_volumes=masked)


def cluster_wrapped(**properties):
    base = {
        "vmSize": "STANDARD_D1",
        "scaleSettings": {"manual": {"targetNodeCount": 1}},
        "userAccountSettings": {"adminUserName": "u", "adminUserPassword": ADMIN_PASSWORD},
    }
    return {"$schema": f"{SCHEMAS}/2018-05-01/cluster.json", "properties": {**base, **properties}}


def auto(**fields):
    return cluster_wrapped(scaleSettings={"autoScale": fields})


CLUSTER_ERRORS = [
    ({}, {}, "name", None, "name is required: a cluster name"),
    ({"name": "bad name"}, {}, "name", "bad name", "cluster names are 1-64"),
    (cluster_wrapped(), {}, "name", None, "pass it as an argument"),
    (cluster_wrapped(vmSize=None), {"name": "c"}, "properties.vmSize", None, "vmSize is required"),
    (cluster_wrapped(vmPriority="spot"), {"name": "c"}, "properties.vmPriority", "spot", "dedicated, lowpriority"),
    (
        cluster_wrapped(scaleSettings={}),
        {"name": "c"},
        "properties.scaleSettings.manual",
        None,
        "exactly one of manual or autoScale",
    ),
    (
        cluster_wrapped(scaleSettings={"manual": {}, "autoScale": {"maximumNodeCount": 1}}),
        {"name": "c"},
        "properties.scaleSettings.autoScale",
        {"maximumNodeCount": 1},
        "either properties.scaleSettings.manual",
    ),
    (
        cluster_wrapped(scaleSettings={"manual": {"targetNodeCount": -1}}),
        {"name": "c"},
        "properties.scaleSettings.manual.targetNodeCount",
        -1,
        CLUSTER_SIZES,
    ),
    (
        cluster_wrapped(scaleSettings={"manual": {"nodeDeallocationOption": "kill"}}),
        {"name": "c"},
        "properties.scaleSettings.manual.nodeDeallocationOption",
        "kill",
        "requeue, terminate, waitforjobcompletion",
    ),
    (
        auto(minimumNodeCount=3, maximumNodeCount=2),
        {"name": "c"},
        "properties.scaleSettings.autoScale.maximumNodeCount",
        2,
        "an integer from 3 to 1000",
    ),
    (
        auto(maximumNodeCount=0),
        {"name": "c"},
        "properties.scaleSettings.autoScale.maximumNodeCount",
        0,
        "an integer from 1 to 1000",
    ),
    (
        auto(minimumNodeCount=1),
        {"name": "c"},
        "properties.scaleSettings.autoScale.maximumNodeCount",
        None,
        "maximumNodeCount is required",
    ),
    (
        auto(maximumNodeCount=2, initialNodeCount=3),
        {"name": "c"},
        "properties.scaleSettings.autoScale.initialNodeCount",
        3,
        "an integer from 0 to 2",
    ),
    (
        auto(maximumNodeCount=2, idleSecondsBeforeScaledown="soon"),
        {"name": "c"},
        "properties.scaleSettings.autoScale.idleSecondsBeforeScaledown",
        "soon",
        "90s",
    ),
    (
        cluster_wrapped(
            scaleSettings={"autoScale": {"maximumNodeCount": 2, "idleSecondsBeforeScaledown": 5}},
            idleSecondsBeforeScaledown=6,
        ),
        {"name": "c"},
        "properties.scaleSettings.autoScale.idleSecondsBeforeScaledown",
        5,
        "not both",
    ),
    ({"name": "c", "idleSecondsBeforeScaledown": -1}, {}, "idleSecondsBeforeScaledown", -1, "positive duration"),
    ({"name": "c", "nodeCount": 2, "maxNodes": 3}, {}, "maxNodes", 3, "either nodeCount or maxNodes"),
    (
        {"name": "c", "nodeCount": 2, "scaleSettings": {"manual": {}}},
        {},
        "nodeCount",
        2,
        "either scaleSettings or nodeCount",
    ),
    ({"name": "c", "minNodes": 1}, {}, "maxNodes", None, "maxNodes is required"),
    ({"name": "c", "nodeCount": "many"}, {}, "nodeCount", "many", CLUSTER_SIZES),
    ({"name": "c", "nodeCount": 5000}, {}, "nodeCount", 5000, CLUSTER_SIZES),
    (
        cluster_wrapped(nodeSetup={"setupTask": {"stdOutErrPathPrefix": "/x"}}),
        {"name": "c"},
        "properties.nodeSetup.setupTask.commandLine",
        None,
        "commandLine is required",
    ),
    (
        cluster_wrapped(
            nodeSetup={
                "setupTask": {
                    "commandLine": "x",
                    "secrets": [{"name": "S", "valueSecretReference": {"secretUrl": "u"}}],
                }
            }
        ),
        {"name": "c"},
        "properties.nodeSetup.setupTask.secrets[0].valueSecretReference",
        {"secretUrl": "u"},
        "`value`",
    ),
    (
        cluster_wrapped(nodeSetup={"setupTask": {"commandLine": "x", "environmentVariables": [{"name": "E"}]}}),
        {"name": "c"},
        "properties.nodeSetup.setupTask.environmentVariables[0].value",
        None,
        "value is required",
    ),
    (
        cluster_wrapped(nodeSetup={"setupTask": "a"}, setupTask="b"),
        {"name": "c"},
        "properties.setupTask",
        "b",
        "either properties.nodeSetup.setupTask or properties.setupTask",
    ),
    ({"name": "c", "setupTask": 5}, {}, "setupTask", 5, 'a command string or an object {"commandLine"'),
    (cluster_wrapped(nodeSetup="setup.sh"), {"name": "c"}, "properties.nodeSetup", "setup.sh", "a JSON object"),
    (
        cluster_wrapped(nodeSetup={"mountVolumes": []}),
        {"name": "c"},
        "properties.nodeSetup.mountVolumes",
        [],
        "a JSON object",
    ),
    ({"name": "c", "cpusPerNode": 0}, {}, "cpusPerNode", 0, "an integer >= 1"),
    ({"name": "c", "gpusPerNode": -1}, {}, "gpusPerNode", -1, "an integer >= 0"),
    ({"name": "c", "backend": "my backend"}, {}, "backend", "my backend", "backend names are"),
    ({"name": "c", "backendOptions": "hosts=a"}, {}, "backendOptions", "hosts=a", "a JSON object"),
    ({"name": "c", "vmSize": 6}, {}, "vmSize", 6, "a string"),
    ({"name": "c"}, {"workspace": "w/x"}, "workspace", "w/x", "workspace names are"),
]


@pytest.mark.parametrize("doc, kwargs, path, value, allowed", CLUSTER_ERRORS)
def test_cluster_errors_name_path_value_and_allowed(doc, kwargs, path, value, allowed):
    with pytest.raises(SpecError) as caught:
        parse_cluster_spec(doc, **kwargs)
    assert_spec_error(caught.value, path, value, allowed)
    assert ADMIN_PASSWORD not in caught.value.message


def test_mask_secrets_is_a_copy():
    raw = {
        "azureFileShares": [{"credentials": {"accountKey": "k", "sasToken": "t"}, "accountName": "a"}],
        "password": "p",
        "key": 1234,
        "port": 22,
        "nested": {"clientKey": {"kept": "as object"}},
        "token": None,
    }
    masked = mask_secrets(raw)
    assert masked == {
        "azureFileShares": [{"credentials": {"accountKey": "***", "sasToken": "***"}, "accountName": "a"}],
        "password": "***",
        "key": "***",
        "port": 22,
        "nested": {"clientKey": {"kept": "as object"}},
        "token": None,
    }
    assert raw["password"] == "p"
