"""Batch AI's REST examples (Azure/azure-rest-api-specs, specification/batchai/resource-manager/
Microsoft.BatchAI/stable/2018-05-01/examples/*.json): each request's parameters as published, and the
response bodies cut to the fields whose shape a replay compares (values are the examples' own)."""

from __future__ import annotations

RG, WS, EXP, JOB, CLUSTER, FILE_SERVER = (
    "demo_resource_group",
    "demo_workspace",
    "demo_experiment",
    "demo_job",
    "demo_cluster",
    "demo_nfs",
)
# PutCluster's fileServers mount names this file server (its id, not PutFileServer's name).
MOUNTED_FILE_SERVER = "fileservercedd134b"
ROOT = f"/resourceGroups/{RG}/providers/Microsoft.BatchAI/workspaces/{WS}"
SUB = "/subscriptions/00000000-0000-0000-0000-000000000000"

PUT_WORKSPACE = {"location": "eastus"}
PATCH_WORKSPACE = {"tags": {"key1": "value1"}}
PUT_EXPERIMENT = {"properties": {}}
PUT_FILE_SERVER = {
    "properties": {
        "sshConfiguration": {
            "userAccountSettings": {"adminUserPassword": "admin_user_password", "adminUserName": "admin_user_name"}
        },
        "dataDisks": {"diskSizeInGB": 10, "storageAccountType": "Standard_LRS", "diskCount": 2},
        "vmSize": "STANDARD_NC6",
    }
}
PUT_CLUSTER = {
    "properties": {
        "scaleSettings": {"manual": {"nodeDeallocationOption": "requeue", "targetNodeCount": 1}},
        "userAccountSettings": {
            "adminUserPassword": "admin_user_password",
            "adminUserSshPublicKey": "ssh-rsa AAAAB3NzaC1yc...",
            "adminUserName": "admin_user_name",
        },
        "nodeSetup": {
            "mountVolumes": {
                "fileServers": [
                    {
                        "fileServer": {
                            "id": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/"
                            "demo_resource_group/providers/Microsoft.BatchAI/workspaces/demo_workspaces/"
                            "fileservers/fileservercedd134b"
                        },
                        "mountOptions": "rw",
                        "relativeMountPath": "nfs",
                    }
                ],
                "azureFileShares": [
                    {
                        "relativeMountPath": "azfiles",
                        "directoryMode": "0777",
                        "accountName": "storage_account_name",
                        "azureFileUrl": "https://storage_account_name.file.core.windows.net/azure_file_share_name",
                        "fileMode": "0777",
                        "credentials": {"accountKey": "0" * 86 + "=="},
                    }
                ],
            }
        },
        "vmPriority": "dedicated",
        "vmSize": "STANDARD_NC6",
    }
}
PATCH_CLUSTER = {"properties": {"scaleSettings": {"autoScale": {"minimumNodeCount": 0, "maximumNodeCount": 10}}}}
PUT_JOB = {
    "properties": {
        "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/azfiles",
        "cluster": {
            "id": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/demo_resource_group/"
            "providers/Microsoft.BatchAI/workspace/demo_workspace/clusters/demo_cluster"
        },
        "nodeCount": 1,
        "customToolkitSettings": {"commandLine": "echo hi | tee $AZ_BATCHAI_OUTPUT_OUTPUTS/hi.txt"},
        "inputDirectories": [{"id": "INPUT", "path": "$AZ_BATCHAI_MOUNT_ROOT/azfiles/input"}],
        "priority": "normal",
        "containerSettings": {"imageSourceRegistry": {"image": "ubuntu"}},
        "outputDirectories": [
            {"pathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/azfiles/", "id": "OUTPUTS", "pathSuffix": "files"}
        ],
    }
}

_TIMES = {"creationTime": "2017-09-27T21:50:03.828Z", "provisioningState": "succeeded"}
WORKSPACE_BODY = {
    "id": f"{SUB}{ROOT}",
    "name": WS,
    "type": "Microsoft.BatchAI/Workspaces",
    "location": "eastus",
    "properties": {**_TIMES, "provisioningStateTransitionTime": "2017-09-27T21:50:03.828Z"},
}
EXPERIMENT_BODY = {
    "id": f"{SUB}{ROOT}/experiments/{EXP}",
    "name": EXP,
    "type": "Microsoft.BatchAI/Experiments",
    "properties": {"provisioningState": "succeeded", "provisioningStateTransitionTime": "2017-09-27T22:28:08.327Z"},
}
CLUSTER_BODY = {
    "id": f"{SUB}{ROOT}/clusters/{CLUSTER}",
    "name": CLUSTER,
    "type": "Microsoft.BatchAI/Clusters",
    "location": "eastus",
    "properties": {
        **_TIMES,
        "allocationState": "resizing",
        "allocationStateTransitionTime": "2017-09-27T21:50:04.521Z",
        "provisioningStateTransitionTime": "2017-09-27T21:50:03.828Z",
        "vmSize": "STANDARD_NC6",
        "currentNodeCount": 0,
        "nodeStateCounts": {
            "runningNodeCount": 0,
            "idleNodeCount": 0,
            "unusableNodeCount": 0,
            "preparingNodeCount": 0,
            "leavingNodeCount": 0,
        },
        "vmPriority": "dedicated",
        "scaleSettings": {"manual": {"targetNodeCount": 1, "nodeDeallocationOption": "requeue"}},
        "virtualMachineConfiguration": {
            "imageReference": {
                "publisher": "Canonical",
                "offer": "UbuntuServer",
                "sku": "16.04-LTS",
                "version": "latest",
            }
        },
        "userAccountSettings": {"adminUserName": "admin_user_name"},
        "nodeSetup": {
            "mountVolumes": {
                "azureFileShares": [
                    {
                        "accountName": "storage_account_name",
                        "azureFileUrl": "https://storage_account_name.file.core.windows.net/azure_file_share_name",
                        "credentials": {},
                        "relativeMountPath": "azfiles",
                        "fileMode": "0777",
                        "directoryMode": "0777",
                    }
                ],
                "fileServers": [
                    {
                        "fileServer": {"id": f"{SUB}{ROOT}/fileservers/fileservercedd134b"},
                        "relativeMountPath": "nfs",
                        "mountOptions": "rw",
                    }
                ],
            }
        },
        "subnet": {"id": "/subscriptions/.../subnets/Subnet-1"},
    },
}
FILE_SERVER_BODY = {
    "id": f"{SUB}{ROOT}/fileservers/fileservercedd134b",
    "name": FILE_SERVER,
    "type": "Microsoft.BatchAI/FileServers",
    "properties": {
        **_TIMES,
        "provisioningStateTransitionTime": "2017-09-27T21:49:25.416Z",
        "vmSize": "STANDARD_NC6",
        "sshConfiguration": {"userAccountSettings": {"adminUserName": "admin_user_name"}},
        "dataDisks": {"diskSizeInGB": 10, "cachingType": "none", "diskCount": 2, "storageAccountType": "Standard_LRS"},
        "subnet": {"id": "/subscriptions/.../subnets/Subnet-1"},
        "mountSettings": {
            "mountPoint": "/mnt/data",
            "fileServerPublicIP": "13.90.141.66",
            "fileServerInternalIP": "10.0.0.4",
        },
    },
}
JOB_BODY = {
    "id": f"{SUB}{ROOT}/experiments/{EXP}/jobs/{JOB}",
    "name": JOB,
    "type": "Microsoft.BatchAI/Jobs",
    "properties": {
        "priority": "normal",
        "cluster": {"id": f"{SUB}{ROOT}/clusters/{CLUSTER}"},
        "nodeCount": 1,
        "containerSettings": {"imageSourceRegistry": {"image": "ubuntu"}},
        "toolType": "custom",
        "customToolkitSettings": {"commandLine": "echo hi | tee $AZ_BATCHAI_OUTPUT_OUTPUTS/hi.txt"},
        "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/azfiles",
        "jobOutputDirectoryPathSegment": "00000000-0000-0000-0000-000000000000/demo_resource_group/workspaces/"
        "demo_workspace/experiments/demo_experiment/jobs/demo_job/00000000-0000-0000-0000-000000000000",
        "inputDirectories": [{"id": "INPUT", "path": "$AZ_BATCHAI_MOUNT_ROOT/azfiles/input"}],
        "outputDirectories": [
            {"id": "OUTPUTS", "pathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/azfiles/", "pathSuffix": "files"}
        ],
        "constraints": {"maxWallClockTime": "P7D"},
        "creationTime": "2017-09-27T23:36:52.611Z",
        "provisioningState": "succeeded",
        "provisioningStateTransitionTime": "2017-09-27T23:36:53.701Z",
        "executionState": "running",
        "executionStateTransitionTime": "2017-09-27T23:36:56.395Z",
        "executionInfo": {"startTime": "2017-09-27T23:36:54.115Z"},
    },
}
OUTPUT_FILE = {
    "name": "stdout.txt",
    "fileType": "file",
    "downloadUrl": "https://storage_account_name.file.core.windows.net/share/.../stdout.txt?sv=2016-05-31&sr=f&sig=...",
    "properties": {"lastModified": "2017-09-28T00:22:19Z", "contentLength": 32},
}
OUTPUT_DIRECTORY = {"name": "counters", "fileType": "directory"}
REMOTE_LOGIN = {"nodeId": "tvm-3601533753_1-20170719t162906z", "ipAddress": "13.84.190.124", "port": 50000}
USAGE = {
    "currentValue": 5,
    "limit": 20,
    "name": {"localizedValue": "Clusters", "value": "Clusters"},
    "unit": "Count",
}
OPERATION = {
    "name": "Microsoft.BatchAI/clusters/read",
    "display": {
        "provider": "Microsoft Batch AI",
        "resource": "Batch AI Clusters",
        "operation": "List or get Batch AI clusters",
        "description": "Lists Batch AI clusters or gets the properties of a Batch AI cluster",
    },
    "origin": "user,system",
}
