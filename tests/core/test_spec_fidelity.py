"""Old Batch AI documents that must parse as Batch AI read them: the 2018-05-01 REST examples' string
`priority`, CNTK Python recipes, legacy `credentialsInfo`, and a job body read back with GET and sent again."""

import pytest

from batchai_jupyter.core.models import PRIORITY_BY_NAME
from batchai_jupyter.core.spec import job_spec_to_wire, parse_job_spec
from batchai_jupyter.errors import SpecError
from batchai_jupyter.ports.datastores import MASKED, entry_credentials, given_key

SCHEMA_2018_05 = "https://raw.githubusercontent.com/Azure/BatchAI/master/schemas/2018-05-01/job.json"
KEY = "c3RvcmFnZS1rZXk="


def job(**properties) -> dict:
    """A 2018-05-01 job.json (the REST example's shape) with `properties` added."""
    base = {
        "nodeCount": 1,
        "cluster": {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/w/clusters/c"},
        "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/azfiles",
        "customToolkitSettings": {"commandLine": "echo hi"},
    }
    return {"$schema": SCHEMA_2018_05, "properties": {**base, **properties}}


@pytest.mark.parametrize("name", ["low", "normal", "high", "High"])
def test_the_rest_examples_string_priority_is_the_scheduling_priority(name):
    spec = parse_job_spec(job(priority=name), name="j")
    assert spec.priority == PRIORITY_BY_NAME[name.lower()]
    assert job_spec_to_wire(spec)["schedulingPriority"] == name.lower()


def test_the_older_integer_priority_still_counts():
    assert parse_job_spec(job(priority=-250), name="j").priority == -250


def test_a_bad_priority_names_the_field_and_its_new_name():
    with pytest.raises(SpecError) as caught:
        parse_job_spec(job(priority="urgent"), name="j")
    assert caught.value.path == "properties.priority"
    assert "'urgent'" in caught.value.message and "low, normal, high" in caught.value.message
    assert "renamed schedulingPriority" in caught.value.message


def test_priority_and_scheduling_priority_together_are_refused():
    with pytest.raises(SpecError) as caught:
        parse_job_spec(job(priority="low", schedulingPriority="high"), name="j")
    assert "properties.schedulingPriority" in caught.value.message and "properties.priority" in caught.value.message


def test_a_cntk_python_recipe_is_python():
    recipe = job(
        customToolkitSettings=None,
        cntkSettings={
            "pythonScriptFilePath": "$AZ_BATCHAI_INPUT_SCRIPT/ConvNet_MNIST.py",
            "commandLineArgs": "$AZ_BATCHAI_INPUT_DATASET $AZ_BATCHAI_OUTPUT_MODEL",
            "processCount": 2,
        },
    )
    toolkit = parse_job_spec(recipe, name="j").toolkit
    assert (toolkit.kind, toolkit.language, toolkit.config_file) == ("cntk", "Python", "")
    assert toolkit.python_script.endswith("ConvNet_MNIST.py") and toolkit.process_count == 2


def test_a_cntk_block_with_a_config_file_stays_brainscript():
    recipe = job(customToolkitSettings=None, cntkSettings={"configFilePath": "ConvNet.cntk"})
    assert parse_job_spec(recipe, name="j").toolkit.language == "BrainScript"
    with pytest.raises(SpecError) as caught:
        parse_job_spec(job(customToolkitSettings=None, cntkSettings={"commandLineArgs": "x"}), name="j")
    assert caught.value.path == "properties.cntkSettings.configFilePath"


def test_legacy_credentials_info_is_the_mounts_credentials():
    entry = {"credentialsInfo": {"accountKey": KEY}}
    assert entry_credentials(entry) == ("credentialsInfo", {"accountKey": KEY})
    assert entry_credentials({"credentials": {"accountKey": KEY}, "credentialsInfo": None})[1] == {"accountKey": KEY}


SHARE = {
    "accountName": "acct",
    "azureFileUrl": "https://acct.file.core.windows.net/share",
    "relativeMountPath": "azfiles",
}


def get_body(**properties) -> dict:
    """What GET returns for a job: the ARM envelope and the read-only properties around the spec."""
    spec = parse_job_spec(job(**properties), name="first")
    return {
        "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/w/experiments/e/jobs/first",
        "name": "first",
        "type": "Microsoft.BatchAI/workspaces/experiments/jobs",
        "properties": {
            **job_spec_to_wire(spec),
            "executionState": "succeeded",
            "executionStateTransitionTime": "2018-06-12T21:27:18.223Z",
            "creationTime": "2018-06-12T21:25:23.380Z",
            "provisioningState": "succeeded",
            "provisioningStateTransitionTime": "2018-06-12T21:25:23.380Z",
            "jobOutputDirectoryPathSegment": "s/rg/workspaces/w/experiments/e/jobs/first/0e6bb7e9-c8d2-4a51-86d2",
            "executionInfo": {"startTime": "2018-06-12T21:25:29Z", "endTime": None, "exitCode": 0, "errors": []},
            "toolType": "custom",
            "containerSettings": None,
        },
    }


def test_a_resubmitted_get_body_is_accepted():
    body = get_body(
        schedulingPriority="high",
        environmentVariables=[{"name": "A", "value": "1"}],
        outputDirectories=[{"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/azfiles", "pathSuffix": "m"}],
    )
    again = parse_job_spec(body, name="second")
    first = parse_job_spec(job(schedulingPriority="high", environmentVariables=[{"name": "A", "value": "1"}]), name="x")
    assert (again.name, again.priority, again.environment) == ("second", first.priority, {"A": "1"})
    assert again.output_directories[0].path_suffix == "m"


def test_a_get_body_says_to_give_secret_values_again():
    body = get_body(secrets=[{"name": "TOKEN", "value": "s3cr3t"}])
    with pytest.raises(SpecError) as caught:
        parse_job_spec(body, name="second")
    assert caught.value.path == "properties.secrets[0].value" and "give it again" in caught.value.message
    assert "s3cr3t" not in caught.value.message


def test_a_get_bodys_masked_mount_key_counts_as_no_key():
    body = get_body(mountVolumes={"azureFileShares": [{**SHARE, "credentials": {"accountKey": KEY}}]})
    again = parse_job_spec(body, name="second")
    masked = again.mount_volumes["azureFileShares"][0]["credentials"]["accountKey"]
    assert masked == MASKED and given_key(masked) == ""
    assert given_key(KEY) == KEY and given_key("<AZURE_BATCHAI_STORAGE_KEY>") == ""
