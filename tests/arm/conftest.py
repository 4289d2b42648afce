"""The ARM face (server/arm) of one real `batchai serve` for the whole folder, reached with Microsoft's
azure-mgmt-batchai SDK (through batchai_jupyter.azure_compat) and with plain HTTP."""

from __future__ import annotations

import pytest
from azure.mgmt.batchai import BatchAI

from batchai_jupyter.azure_compat import ServiceCredential
from helpers.arm import SUBSCRIPTION, ArmHttp
from helpers.service import TOKEN, ServiceProcess, kill_leftover_tasks


@pytest.fixture(scope="session")
def arm_service(tmp_path_factory):
    base = tmp_path_factory.mktemp("arm")
    service = ServiceProcess(
        str(base / "home"), str(base / "runtime"), extra_env={"BATCHAI_SUBSCRIPTION_ID": SUBSCRIPTION}
    )
    service.start()
    yield service
    service.stop()
    kill_leftover_tasks(service.home)


@pytest.fixture(scope="session")
def sdk(arm_service) -> BatchAI:
    """The SDK as a migrated notebook makes it: the only line that differs from Batch AI's."""
    credential = ServiceCredential(arm_service.url, TOKEN)
    # The SDK's own polling: it waits what each response's Retry-After says (30 s where one says nothing).
    return BatchAI(credential, credential.subscription_id, base_url=credential.base_url, **credential.client_options)


@pytest.fixture(scope="session")
def arm(arm_service) -> ArmHttp:
    return ArmHttp(arm_service.url, TOKEN)
