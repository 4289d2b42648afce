"""Symbolic data locations (`datastore://<name>/<path>`): parsing, normal form, and how job specs take them."""

import pytest

from batchai_jupyter.core.locations import Location, location_of, parse_data_path, parse_location
from batchai_jupyter.core.spec import job_spec_to_wire, parse_job_spec
from batchai_jupyter.core.spec_codec import decode_job_spec, encode_job_spec
from batchai_jupyter.errors import SpecError


@pytest.mark.parametrize(
    ("text", "datastore", "path"),
    [
        ("datastore://default/datasets/mnist", "default", "datasets/mnist"),
        ("datastore://default/datasets//mnist/./", "default", "datasets/mnist"),
        ("datastore://my-store_2/a/b/../c.txt", "my-store_2", "a/c.txt"),
        ("datastore://default/", "default", ""),
        ("datastore://default", "default", ""),
        ("datastore://default/a\\b", "default", "a/b"),
    ],
)
def test_a_location_names_a_datastore_and_a_normal_path_inside_it(text, datastore, path):
    location = parse_location(text, "inputDirectories[0].path")
    assert location == Location(datastore, path)
    assert parse_location(str(location), "x") == location  # the normal form reads back the same


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("datastore://default/../other/x", "points outside datastore 'default'"),
        ("datastore://default/a/../../x", "points outside datastore 'default'"),
        ("datastore://default/..", "points outside datastore 'default'"),
        ("datastore:///data", "the datastore's name comes right after datastore://"),
        ("datastore://bad name/x", "the datastore's name comes right after datastore://"),
        ("datastore://" + "n" * 65 + "/x", "the datastore's name comes right after datastore://"),
        ("s3://bucket/data", "s3:// locations are not known here"),
        ("DataStore://default/x", "DataStore:// locations are not known here"),
    ],
)
def test_a_bad_location_is_an_error_naming_the_field_and_the_forms(text, says):
    with pytest.raises(SpecError) as caught:
        parse_location(text, "inputDirectories[2].path")
    assert caught.value.code == "InvalidLocation"
    assert caught.value.message.startswith("inputDirectories[2].path: ")
    assert says in caught.value.message


@pytest.mark.parametrize(
    "path",
    [
        "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs/mnist",
        "$AZ_BATCHAI_MOUNT_ROOT/external",
        "/data/mnist",
        "relative/dir",
        "C:\\data",
    ],
)
def test_paths_that_are_not_uris_are_kept_as_given(path):
    assert parse_data_path(path, "path") == path
    assert location_of(path) is None


def test_a_job_spec_takes_locations_in_input_directories_and_keeps_them_in_normal_form():
    spec = parse_job_spec(
        {
            "name": "j",
            "cluster": "c",
            "toolkit": "custom",
            "commandLine": "true",
            "inputDirectories": [
                {"id": "DATA", "path": "datastore://default/sets/./mnist/"},
                {"id": "OLD", "path": "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs"},
                {"id": "HERE", "path": "/data/x"},
            ],
        }
    )
    assert [d.path for d in spec.input_directories] == [
        "datastore://default/sets/mnist",
        "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs",
        "/data/x",
    ]
    assert decode_job_spec(encode_job_spec(spec)).input_directories == spec.input_directories
    assert job_spec_to_wire(spec)["inputDirectories"][0] == {"id": "DATA", "path": "datastore://default/sets/mnist"}
    assert location_of(spec.input_directories[0].path) == Location("default", "sets/mnist")


def test_a_batch_ai_job_json_with_a_bad_location_names_the_field_under_properties():
    document = {
        "properties": {
            "nodeCount": 1,
            "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs",
            "customToolkitSettings": {"commandLine": "true"},
            "inputDirectories": [{"id": "A", "path": "datastore://default/../x"}],
        }
    }
    with pytest.raises(SpecError) as caught:
        parse_job_spec(document, name="j", cluster="c")
    assert caught.value.message.startswith("properties.inputDirectories[0].path: 'datastore://default/../x'")
