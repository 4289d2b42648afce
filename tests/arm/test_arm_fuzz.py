"""A bounded hypothesis run over the ARM face's create and update bodies: whatever is sent, no 5xx, and
every refusal is ARM's `{"error": {"code", "message"}}`."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.arm import SUBSCRIPTION

BASE = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/fuzz-rg/providers/Microsoft.BatchAI/workspaces/fuzzws"
SETTINGS = settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["", "../..", "eastus", "$AZ_BATCHAI_MOUNT_ROOT/x", "a" * 300, "P7D", "normal"])
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
    max_leaves=10,
)
PROPERTY_KEYS = [
    "vmSize",
    "scaleSettings",
    "nodeSetup",
    "nodeCount",
    "cluster",
    "customToolkitSettings",
    "stdOutErrPathPrefix",
    "outputDirectories",
    "inputDirectories",
    "schedulingPriority",
    "constraints",
    "mountVolumes",
    "dataDisks",
]
bodies = st.one_of(
    values,
    st.fixed_dictionaries(
        {},
        optional={
            "location": values,
            "tags": values,
            "properties": st.dictionaries(st.sampled_from(PROPERTY_KEYS), values, max_size=5),
        },
    ),
)


@pytest.fixture(scope="module")
def fuzz_workspace(arm):
    arm.follow(arm.request("PUT", BASE, {"location": "eastus"}))
    arm.follow(arm.request("PUT", f"{BASE}/experiments/exp", {"properties": {}}))
    arm.follow(arm.request("PUT", f"{BASE}/clusters/c", {"properties": {"vmSize": "STANDARD_D1"}}))
    return BASE


@pytest.mark.parametrize(
    "method,path",
    [
        ("PUT", "/experiments/exp/jobs/fz"),
        ("PUT", "/clusters/fz"),
        ("PATCH", "/clusters/c"),
        ("PUT", ""),
        ("PATCH", ""),
        ("PUT", "/fileServers/fz"),
    ],
)
def test_no_body_makes_a_5xx(arm, fuzz_workspace, method, path):
    @SETTINGS
    @given(body=bodies)
    def run(body):
        response = arm.request(method, f"{fuzz_workspace}{path}", body)
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            error = response.json()["error"]
            assert error["code"] and error["message"]
        elif method == "PUT" and path:  # accepted: remove it for the next example
            arm.follow(response)
            deleted = arm.request("DELETE", f"{fuzz_workspace}{path}")
            if deleted.status_code == 202:
                arm.follow(deleted)

    run()
