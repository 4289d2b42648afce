import pytest

from batchai_jupyter.core.names import MAX_NAME_LENGTH, NAME_PATTERN, validate_name
from batchai_jupyter.errors import BatchAIError, SpecError


@pytest.mark.parametrize("value", ["a", "train", "my-job_1", "-lead", "_x", "MNIST2018", "a" * MAX_NAME_LENGTH])
def test_valid_names_are_returned(value):
    assert validate_name("job", value, "name") == value
    assert NAME_PATTERN.match(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "a" * (MAX_NAME_LENGTH + 1),
        "has space",
        "dotted.name",
        "slash/name",
        "ünïcode",
        "job\n",
        "tab\tname",
        5,
        None,
        ["a"],
    ],
)
def test_invalid_names_name_the_field_value_and_rule(value):
    with pytest.raises(SpecError) as caught:
        validate_name("cluster", value, "properties.cluster.id")
    error = caught.value
    assert isinstance(error, BatchAIError) and error.status == 400
    assert error.path == "properties.cluster.id"
    assert error.code == "InvalidName"
    assert error.message.startswith("properties.cluster.id: ")
    assert repr(value)[:40] in error.message
    assert "cluster names are 1-64 characters" in error.message
    assert "'-' and '_'" in error.message


def test_pattern_is_ascii_only():
    assert NAME_PATTERN.match("abc_DEF-123")
    assert not NAME_PATTERN.match("naïve")
