"""The Spot VM's watcher against the fake instance metadata service: only a Preempt of this very VM is
an eviction notice, and IMDS insists on its `Metadata: true` header (which the watcher sends)."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from batchai_jupyter.runtime import spot_watcher
from helpers.fake_arm import FakeArm, FakeImds


def event(kind: str, vm: str) -> dict:
    return {"EventId": "E1", "EventType": kind, "EventStatus": "Scheduled", "Resources": [vm], "NotBefore": "x"}


@pytest.fixture
def imds():
    arm = FakeArm([], on_release=lambda machine: None)
    server = FakeImds(arm, "127.0.0.1")
    yield arm, server
    server.close()


def test_only_a_preempt_of_this_vm_is_a_notice(imds, tmp_path):
    arm, server = imds
    assert spot_watcher.preempt_event(server.url, "nodes_1") is None
    arm.scheduled["127.0.0.1"] = [event("Reboot", "nodes_1"), event("Preempt", "nodes_2")]
    assert spot_watcher.preempt_event(server.url, "nodes_1") is None
    arm.scheduled["127.0.0.1"].append(event("Preempt", "nodes_1"))
    notice = tmp_path / "eviction-notice"
    spot_watcher.watch(server.url, "nodes_1", str(notice), 0.1)  # returns once it has written the notice
    assert '"Preempt"' in notice.read_text() and '"nodes_1"' in notice.read_text()
    with pytest.raises(urllib.error.HTTPError) as refused:  # without the header, as the real IMDS does
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(server.url + spot_watcher.API, timeout=5)
    assert refused.value.code == 400
