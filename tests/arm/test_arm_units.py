"""The ARM face's pure parts: ISO 8601 durations as the SDK reads them, and the signing of download links."""

from __future__ import annotations

import datetime

import isodate
import pytest

from batchai_jupyter.errors import BatchAIError
from batchai_jupyter.server.arm.envelopes import iso_duration
from batchai_jupyter.server.arm.links import KEY_FILE, LinkSigner, load_key
from batchai_jupyter.server.arm.operations import CREATE, DELETE, TERMINATE, Resource, Target, status_of


@pytest.mark.parametrize("seconds", [604800, 5400, 90061.5, 59, 3600, 1])
def test_durations_read_back_as_the_same_seconds(seconds):
    text = iso_duration(seconds)
    assert text.startswith("P")
    assert isodate.parse_duration(text) == datetime.timedelta(seconds=seconds)  # what the SDK deserializes


def test_batch_ai_s_default_wall_clock_is_p7d():
    assert iso_duration(7 * 86400) == "P7D" and iso_duration(5400) == "PT1H30M"


def test_a_link_is_good_for_its_file_until_it_expires(tmp_path, monkeypatch):
    key = load_key(str(tmp_path))
    assert (tmp_path / KEY_FILE).stat().st_mode & 0o777 == 0o600 and load_key(str(tmp_path)) == key
    signer = LinkSigner(key)
    values = {"ws": "w", "exp": "e", "job": "j", "uuid": "u", "dir": "stdouterr", "path": "stdout.txt"}
    query = dict(part.split("=", 1) for part in signer.query(values, 5).split("&"))
    signed = {field: query[field] for field in LinkSigner.FIELDS}
    signer.check(signed, query["sig"])
    with pytest.raises(BatchAIError, match="not valid"):
        signer.check({**signed, "path": "stderr.txt"}, query["sig"])
    with pytest.raises(BatchAIError, match="not valid"):
        LinkSigner(b"another key of thirty-two bytes!").check(signed, query["sig"])
    monkeypatch.setattr("time.time", lambda: float(signed["se"]) + 1)
    with pytest.raises(BatchAIError, match="expired"):
        signer.check(signed, query["sig"])


def _resource(state: str = "succeeded", uid: str = "u1", execution: str = "running") -> Resource:
    return Resource({"uuid": uid, "executionState": execution}, {"properties": {"provisioningState": state}})


@pytest.mark.parametrize(
    ("action", "found", "mine", "error", "expected"),
    [
        (CREATE, _resource(), False, None, "Succeeded"),
        (CREATE, _resource("creating"), False, None, "InProgress"),
        (CREATE, _resource("failed"), False, None, "Failed"),
        (CREATE, None, False, None, "Succeeded"),  # made, then deleted since
        (DELETE, None, False, None, "Succeeded"),
        (DELETE, _resource(uid="another"), False, None, "Succeeded"),  # made again under its name
        (DELETE, _resource(), True, None, "InProgress"),  # the engine is still at it
        (DELETE, _resource("deleting"), False, None, "InProgress"),  # resumed after a restart
        (DELETE, _resource(), False, None, "Failed"),  # a restart interrupted it before it took hold
        (DELETE, _resource(), True, {"code": "X", "message": "m"}, "Failed"),
        (TERMINATE, _resource(execution="failed"), False, None, "Succeeded"),
        (TERMINATE, _resource(execution="terminating"), False, None, "InProgress"),
        (TERMINATE, _resource(), True, None, "InProgress"),
        (TERMINATE, _resource(), False, None, "Failed"),
        (TERMINATE, None, False, None, "Succeeded"),
    ],
)
def test_an_operations_status_follows_from_its_resource(action, found, mine, error, expected):
    assert status_of(Target(action, "/subscriptions/s/x", "u1"), found, mine, error) == expected


def test_operation_ids_name_their_target_and_nothing_else_is_taken_for_one():
    target = Target(DELETE, "/subscriptions/s/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/w", "u", 5.0)
    operation_id = target.operation_id()
    assert "/" not in operation_id and Target.of(operation_id) == target
    assert operation_id != target.operation_id()  # two operations on one resource are two
    for bad in ("nope", "e30", Target("explode", "/x").operation_id()):
        with pytest.raises(BatchAIError) as refused:
            Target.of(bad)
        assert refused.value.status == 404 and refused.value.code == "OperationNotFound"
