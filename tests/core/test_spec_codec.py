"""The stored form of specs (core/spec_codec.py): versioned, strict, and able to read what earlier
releases wrote (tests/data/store-v0.sql holds specs as the release before versions stored them)."""

import dataclasses
import json
import os
import re
import sqlite3

import pytest

from batchai_jupyter.core.cluster_spec import parse_cluster_spec
from batchai_jupyter.core.models import JobSpec
from batchai_jupyter.core.spec import parse_job_spec
from batchai_jupyter.core.spec_codec import (
    SPEC_VERSION,
    StoredSpecError,
    decode_cluster_spec,
    decode_job_spec,
    encode_cluster_spec,
    encode_job_spec,
)

V0_DUMP = os.path.join(os.path.dirname(__file__), "..", "data", "store-v0.sql")


def _job() -> JobSpec:
    return parse_job_spec(
        {
            "name": "j",
            "cluster": "c",
            "toolkit": "custom",
            "commandLine": "echo hi",
            "inputDirectories": [{"id": "DATA", "path": "/data"}],
            "outputDirectories": [{"id": "OUT", "pathPrefix": "/out"}],
            "secrets": {"TOKEN": "s3cr3t"},
        }
    )


def _v0_specs() -> tuple[list[dict], list[dict]]:
    with open(V0_DUMP) as dump, sqlite3.connect(":memory:") as db:
        db.executescript(dump.read().replace("@BATCHAI_HOME@", "/nowhere"))
        jobs = [json.loads(row[0]) for row in db.execute("SELECT spec FROM jobs")]
        clusters = [json.loads(row[0]) for row in db.execute("SELECT spec FROM clusters")]
    return jobs, clusters


def test_a_spec_is_stored_with_its_version_and_without_secret_values():
    stored = json.loads(json.dumps(encode_job_spec(_job())))
    assert stored["v"] == SPEC_VERSION
    assert "secrets" not in stored and "s3cr3t" not in json.dumps(stored)
    assert decode_job_spec(stored) == dataclasses.replace(_job(), secrets={})


def test_renaming_a_field_cannot_silently_drop_stored_data():
    """What a field rename does to specs already stored: without an upgrade step, decoding names the field."""
    stored = json.loads(json.dumps(encode_job_spec(_job())))
    stored["toolkit"]["cmd"] = stored["toolkit"].pop("command_line")  # stored under a name the model lost
    with pytest.raises(StoredSpecError) as raised:
        decode_job_spec(stored)
    assert "unknown field job spec.toolkit.cmd" in raised.value.message
    assert "missing field job spec.toolkit.command_line" in raised.value.message


def test_a_field_the_store_lacks_is_an_error_not_a_default():
    stored = encode_job_spec(_job())
    del stored["max_retries"]
    with pytest.raises(StoredSpecError, match=re.escape("missing field job spec.max_retries")):
        decode_job_spec(stored)
    stored = encode_job_spec(_job())
    stored["input_directories"][0]["mount"] = True
    with pytest.raises(StoredSpecError, match=re.escape("unknown field job spec.input_directories[0].mount")):
        decode_job_spec(stored)


def test_a_spec_from_a_newer_release_is_refused_clearly():
    stored = dict(encode_cluster_spec(parse_cluster_spec({"name": "c"})), v=SPEC_VERSION + 1)
    with pytest.raises(StoredSpecError, match="newer release") as raised:
        decode_cluster_spec(stored)
    assert raised.value.status == 409


def test_specs_stored_by_the_release_before_versions_load():
    jobs, clusters = _v0_specs()
    assert jobs and clusters and all("v" not in spec for spec in jobs + clusters)
    for stored in jobs:
        spec = decode_job_spec(stored)
        assert (spec.name, spec.cluster, spec.toolkit.kind) == (stored["name"], stored["cluster"], "custom")
        assert spec.toolkit.command_line == stored["toolkit"]["command_line"]
        assert decode_job_spec(json.loads(json.dumps(encode_job_spec(spec)))) == spec
    for stored in clusters:
        spec = decode_cluster_spec(stored)
        assert (spec.name, spec.scale.target) == (stored["name"], stored["scale"]["target"])
        assert decode_cluster_spec(json.loads(json.dumps(encode_cluster_spec(spec)))) == spec


def test_a_version_0_setup_task_drops_its_empty_secrets():
    spec = parse_cluster_spec({"name": "c", "nodeSetup": {"setupTask": {"commandLine": "true", "secrets": {"K": "v"}}}})
    v0 = {key: value for key, value in encode_cluster_spec(spec).items() if key != "v"}
    v0["setup_task"] = dict(v0["setup_task"], secrets={})
    assert decode_cluster_spec(v0).setup_task.command_line == "true"
    assert decode_cluster_spec(v0).setup_task.secrets == {}
