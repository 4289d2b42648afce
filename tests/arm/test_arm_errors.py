"""ARM's side of every refusal: `{"error": {"code", "message"}}` with a 4xx that says what and where, for
api-version, subscription, resource group, routes, tokens, bodies, paging and download links; no 500."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests

from helpers.arm import SUBSCRIPTION
from helpers.waits import wait_for

RG = "errors-rg"
WS_PATH = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.BatchAI/workspaces/errws"


def spec(cluster: str, command: str) -> dict:
    return {
        "nodeCount": 1,
        "cluster": {"id": cluster},
        "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs",
        "customToolkitSettings": {"commandLine": command},
    }


def arm_error(response: requests.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code, error
    return error["message"]


@pytest.fixture(scope="module")
def workspace(arm):
    arm.follow(arm.request("PUT", WS_PATH, {"location": "eastus"}))
    arm.follow(arm.request("PUT", f"{WS_PATH}/experiments/exp", {"properties": {}}))
    return WS_PATH


def test_api_version_is_required_and_checked(arm, workspace):
    assert "2018-05-01" in arm_error(arm.request("GET", workspace, api_version=None), 400, "MissingApiVersionParameter")
    message = arm_error(arm.request("GET", workspace, api_version="2018-03-01"), 400, "InvalidApiVersionParameter")
    assert "'2018-03-01'" in message and "2018-05-01" in message


def test_subscription_and_resource_group_are_the_workspace_s(arm, workspace):
    other = workspace.replace(SUBSCRIPTION, "00000000-0000-0000-0000-000000000000")
    assert SUBSCRIPTION in arm_error(arm.request("GET", other), 404, "SubscriptionNotFound")
    elsewhere = workspace.replace(RG, "another-rg")
    assert "'errors-rg'" in arm_error(arm.request("GET", elsewhere), 404, "ResourceNotFound")
    assert arm.request("GET", workspace.replace(RG, RG.upper())).status_code == 200  # ARM: names in any case
    bad = workspace.replace(RG, "a b")
    assert "resourceGroupName" in arm_error(arm.request("GET", bad), 400, "InvalidResourceGroupName")


def test_unknown_routes_and_methods_answer_arm_json(arm, workspace):
    assert "not a Microsoft.BatchAI route" in arm_error(arm.request("GET", f"{workspace}/gadgets"), 404, "NotFound")
    assert arm_error(arm.request("GET", "/providers/Microsoft.Compute/operations"), 404, "NotFound")
    arm_error(arm.request("POST", workspace, {}), 405, "MethodNotAllowed")
    arm_error(arm.request("GET", f"{workspace}/experiments/exp/jobs/nope"), 404, "JobNotFound")


def test_a_request_without_the_token_is_refused_in_arm_json(arm, workspace):
    response = requests.get(f"{arm.url}{workspace}", params={"api-version": "2018-05-01"}, timeout=30)
    arm_error(response, 403, "AuthenticationFailed")
    wrong = requests.get(
        f"{arm.url}{workspace}",
        params={"api-version": "2018-05-01"},
        headers={"Authorization": "Bearer not-the-token"},
        timeout=30,
    )
    arm_error(wrong, 403, "AuthenticationFailed")


def test_bodies_are_checked(arm, workspace):
    url = f"{workspace}/experiments/exp/jobs/j"
    not_json = arm.session.put(f"{arm.url}{url}", params={"api-version": "2018-05-01"}, data=b"{nope", timeout=30)
    assert "not valid JSON" in arm_error(not_json, 400, "InvalidJson")
    assert arm_error(
        arm.request("PUT", WS_PATH.replace("errws", "nolocation"), {"tags": {}}), 400, "InvalidRequestContent"
    )
    job = {"properties": {**spec("nope", "true")}}
    assert "cluster 'nope' not found" in arm_error(arm.request("PUT", url, job), 404, "ClusterNotFound")
    assert arm.request("GET", url).status_code == 404  # nothing was created
    elsewhere = {"properties": {**spec(WS_PATH.replace("errws", "otherws") + "/clusters/c", "true")}}
    assert "workspace 'otherws'" in arm_error(arm.request("PUT", url, elsewhere), 400, "ClusterInOtherWorkspace")
    patch = arm.request("PATCH", f"{workspace}/clusters/c", {"properties": {}})
    assert "scaleSettings" in arm_error(patch, 400, "InvalidRequestContent")
    assert "tags" in arm_error(arm.request("PATCH", workspace, {"tags": ["x"]}), 400, "InvalidTags")


def test_lists_page_with_absolute_next_links(arm, workspace):
    for name in ("p1", "p2"):
        arm.follow(arm.request("PUT", f"{workspace}/experiments/{name}", {"properties": {}}))
    seen, page = [], arm.request("GET", f"{workspace}/experiments", maxresults=1).json()
    while True:
        seen += [e["name"] for e in page["value"]]
        if "nextLink" not in page:
            break
        assert page["nextLink"].startswith(arm.url) and "api-version=2018-05-01" in page["nextLink"]
        page = arm.session.get(page["nextLink"], timeout=30).json()
    assert {"exp", "p1", "p2"} <= set(seen) and len(seen) == len(set(seen))
    assert "maxresults" in arm_error(
        arm.request("GET", f"{workspace}/experiments", maxresults=0), 400, "InvalidMaxResults"
    )


def test_output_files_need_an_output_directory(arm, workspace):
    job = f"{workspace}/experiments/exp/jobs/nofiles"
    arm.follow(arm.request("PUT", f"{workspace}/clusters/none", {"properties": {"vmSize": "STANDARD_D1"}}))
    arm.follow(arm.request("PUT", job, {"properties": spec("none", "true")}))
    assert "outputdirectoryid" in arm_error(arm.request("POST", f"{job}/listOutputFiles"), 400, "InvalidArgument")
    message = arm_error(
        arm.request("POST", f"{job}/listOutputFiles", outputdirectoryid="X"), 400, "InvalidOutputDirectoryId"
    )
    assert "stdouterr" in message


def test_operation_urls_of_unknown_operations(arm, workspace):
    status = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.BatchAI/locations/eastus/operationStatuses/nope"
    assert "not an operation of this service" in arm_error(arm.request("GET", status), 404, "OperationNotFound")


def test_download_links_cannot_be_altered(arm, workspace):
    """A link names one file of one job until it expires: any change to it is refused."""
    job = f"{workspace}/experiments/exp/jobs/linked"
    arm.follow(
        arm.request(
            "PUT",
            f"{workspace}/clusters/one",
            {"properties": {"vmSize": "STANDARD_D1", "scaleSettings": {"manual": {"targetNodeCount": 1}}}},
        )
    )
    arm.follow(arm.request("PUT", job, {"properties": spec("one", "echo secret-of-linked")}))

    def stdout_link():
        files = arm.request("POST", f"{job}/listOutputFiles", outputdirectoryid="stdouterr").json()["value"]
        link = next((f["downloadUrl"] for f in files if f["name"] == "stdout.txt"), None)
        state = arm.request("GET", job).json()["properties"]["executionState"]
        return link if state == "succeeded" else None

    link = wait_for(stdout_link, "the job's stdout", timeout=120)
    assert requests.get(link, timeout=30).text == "secret-of-linked\n"
    url = urlsplit(link)
    query = dict(parse_qsl(url.query))
    for field, value in (("path", "stderr.txt"), ("se", str(int(query["se"]) + 3600)), ("job", "other"), ("sig", "x")):
        altered = f"{url.scheme}://{url.netloc}{url.path}?{urlencode({**query, field: value})}"
        arm_error(requests.get(altered, timeout=30), 403, "AuthenticationFailed")
    missing = {k: v for k, v in query.items() if k != "sig"}
    arm_error(
        requests.get(f"{url.scheme}://{url.netloc}{url.path}?{urlencode(missing)}", timeout=30),
        403,
        "AuthenticationFailed",
    )
    ranged = requests.get(link, headers={"Range": "bytes=7-"}, timeout=30)
    assert ranged.status_code == 206 and ranged.text == "of-linked\n"


@pytest.mark.parametrize(
    "method,path,params",
    [
        ("GET", "/experiments", {"maxresults": "many"}),
        ("GET", "/experiments", {"maxresults": str(2**70)}),
        ("GET", "/experiments/%00", {}),
        ("PUT", "/experiments/" + "x" * 300, {}),
        (
            "POST",
            "/experiments/exp/jobs/none/listOutputFiles",
            {"outputdirectoryid": "stdouterr", "directory": "../.."},
        ),
        ("POST", "/experiments/exp/jobs/none/terminate", {}),
        ("PUT", "/clusters/%2e%2e", {}),
        ("PATCH", "/clusters/%2e%2e", {}),
        ("PUT", "/fileServers/default", {}),
    ],
)
def test_hostile_input_is_a_4xx(arm, workspace, method, path, params):
    response = arm.request(method, f"{workspace}{path}", {"properties": {}} if method == "PUT" else None, **params)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["message"]
