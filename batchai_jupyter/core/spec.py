"""Job specs: the native spec and Batch AI's job.json, and the field reader cluster specs share.

The two dialects share Batch AI's camelCase field names. A Batch AI file wraps them in
`{"$schema": ..., "properties": {...}}`; the native spec is the bare object plus conveniences
(`name`, `cluster` as a name, `toolkit`, dict-shaped environment, ...). Every key either dialect
may carry is read wherever it appears; the dialect only decides which fields are required and
whether error paths start with `properties.`. Unknown and legacy keys are ignored. Cluster specs
(cluster_spec.py) are read with the same Fields reader.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Container
from typing import Any, Literal, overload

from ..errors import SpecError
from ..ports.datastores import MASKED
from .durations import format_duration, parse_duration
from .limits import check_spec_limits
from .locations import FORMS, parse_data_path
from .models import (
    DEFAULT_EXPERIMENT,
    DEFAULT_MAX_WALL_CLOCK_SECONDS,
    DEFAULT_WORKSPACE,
    MAX_NODES_PER_CLUSTER,
    MAX_PROCESSES_PER_JOB,
    PRIORITY_BY_NAME,
    TOOLKITS,
    ContainerSettings,
    InputDirectory,
    JobSpec,
    OutputDirectory,
    ToolkitSettings,
    priority_name,
)
from .mount_spec import check_mount_volumes
from .names import validate_name

API_VERSIONS = ("2017-09-01-preview", "2018-03-01", "2018-05-01")
NATIVE = "native"
# Where a cluster's ARM-style id points in what the API returns (there is no subscription here).
LOCAL_ARM_PREFIX = "/subscriptions/local/resourceGroups/local/providers/Microsoft.BatchAI"

TOOLKIT_BLOCKS = {
    "tensorFlowSettings": "tensorflow",
    "pyTorchSettings": "pytorch",
    "horovodSettings": "horovod",
    "chainerSettings": "chainer",
    "cntkSettings": "cntk",
    "caffeSettings": "caffe",
    "caffe2Settings": "caffe2",
    "customMpiSettings": "customMpi",
    "customToolkitSettings": "custom",
}
BLOCK_BY_KIND = {kind: block for block, kind in TOOLKIT_BLOCKS.items()}
# Batch AI's `toolType` for each kind (its enum says `mpi` for custom MPI).
TOOL_TYPES = {kind: kind for kind in TOOLKITS} | {"customMpi": "mpi"}
_KIND_BY_NAME = {kind.lower(): kind for kind in TOOLKITS} | {"mpi": "customMpi"}

COMMUNICATION_BACKENDS = ("tcp", "gloo", "mpi")
CNTK_LANGUAGES = ("BrainScript", "Python")

_ID_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECRET_KEY = re.compile(r"(key|password|sastoken|token)$", re.IGNORECASE)
# An image reference or registry as a runtime's argv takes it: never an option ("-..."), never blank.
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,511}")
_SHM_SIZE = re.compile(r"[1-9][0-9]*[bkmgBKMG]?")
_HIDDEN = "<hidden>"


class Fields:
    """A JSON object being read, with its JSON-ish path for error messages. None means absent."""

    def __init__(self, data: Any, path: str):
        if not isinstance(data, dict):
            raise SpecError(path or "(document)", data, "a JSON object")
        self.data = data
        self.path = path

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def missing(self, key: str, allowed: str) -> SpecError:
        return SpecError(self.at(key), None, f"{key} is required: {allowed}", code="MissingField")

    def obj(self, key: str) -> Fields | None:
        return Fields(self.data[key], self.at(key)) if self.has(key) else None

    def present_obj(self, key: str) -> Fields:
        """The object at `key`, which the caller has seen is given."""
        return Fields(self.data[key], self.at(key))

    def text(self, key: str, default: str = "", required: str = "") -> str:
        if not self.has(key):
            if required:
                raise self.missing(key, required)
            return default
        value = self.data[key]
        if not isinstance(value, str):
            raise SpecError(self.at(key), value, "a string")
        return value

    @overload
    def integer(
        self, key: str, default: int, *, minimum: int = 0, maximum: int | None = None, required: bool = False
    ) -> int: ...

    @overload
    def integer(
        self, key: str, default: None = None, *, minimum: int = 0, maximum: int | None = None, required: Literal[True]
    ) -> int: ...

    @overload
    def integer(
        self, key: str, default: None = None, *, minimum: int = 0, maximum: int | None = None, required: bool = False
    ) -> int | None: ...

    def integer(
        self,
        key: str,
        default: int | None = None,
        *,
        minimum: int = 0,
        maximum: int | None = None,
        required: bool = False,
    ) -> int | None:
        """An int within the range; integral floats and numeric strings ("2") count."""
        if not self.has(key):
            if required:
                raise self.missing(key, _int_range(minimum, maximum))
            return default
        number = _to_int(self.data[key])
        if number is None or number < minimum or (maximum is not None and number > maximum):
            raise SpecError(self.at(key), self.data[key], _int_range(minimum, maximum))
        return number

    def flag(self, key: str, default: bool = False) -> bool:
        if not self.has(key):
            return default
        value = self.data[key]
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if not isinstance(value, bool):
            raise SpecError(self.at(key), value, "true or false")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        """One of `choices`, matched case-insensitively and returned as spelled in `choices`."""
        if not self.has(key):
            return default
        value = self.data[key]
        by_lower = {choice.lower(): choice for choice in choices}
        if isinstance(value, str) and value.strip().lower() in by_lower:
            return by_lower[value.strip().lower()]
        raise SpecError(self.at(key), value, "one of " + ", ".join(choices))

    def items(self, key: str) -> list[Fields]:
        """A list of objects, each with its `key[i]` path."""
        if not self.has(key):
            return []
        value = self.data[key]
        if not isinstance(value, list):
            raise SpecError(self.at(key), value, "a list of objects")
        return [Fields(item, f"{self.at(key)}[{i}]") for i, item in enumerate(value)]


def one_of(*places: tuple[Fields | None, str]) -> tuple[Fields, str] | None:
    """The (fields, key) of the one place among `places` where a value is given, if any."""
    given = [(fields, key) for fields, key in places if fields is not None and fields.has(key)]
    if len(given) > 1:
        (first, first_key), (second, second_key) = given[:2]
        raise SpecError(
            second.at(second_key),
            second.get(second_key),
            f"give either {first.at(first_key)} or {second.at(second_key)}, not both",
        )
    return given[0] if given else None


def _int_range(minimum: int, maximum: int | None) -> str:
    if maximum is None:
        return f"an integer >= {minimum}"
    return f"an integer from {minimum} to {maximum}"


def _to_int(value: Any) -> int | None:
    """An int from an int, an integral float or a numeric string ("2"); None if it is none of those."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
        return int(value)
    return None


def unwrap(doc: Any) -> tuple[Fields, Fields, str]:
    """(body, the whole document, api version): the `properties` wrapper makes a Batch AI file."""
    outer = Fields(doc, "")
    schema = outer.get("$schema")
    if outer.has("properties"):
        return Fields(outer.get("properties"), "properties"), outer, _schema_version(schema)
    if schema is not None:
        return outer, outer, _schema_version(schema)
    return outer, outer, NATIVE


def _schema_version(schema: Any) -> str:
    """The API version named in a `$schema` URL; the newest one when it names none we know."""
    for version in API_VERSIONS:
        if isinstance(schema, str) and f"/{version}/" in schema:
            return version
    return API_VERSIONS[-1]


def resource_name(
    kind: str, override: str | None, key: str, body: Fields, outer: Fields | None = None, default: str | None = None
) -> str:
    """A validated name: the keyword argument, else the body's or the outer document's, else `default`."""
    if override is not None:
        return validate_name(kind, override, key)
    places = [body] if outer is None or outer is body else [body, outer]
    for fields in places:
        if fields.has(key):
            return validate_name(kind, fields.get(key), fields.at(key))
    if default is None:
        raise places[-1].missing(key, f"a {kind} name (or pass it as an argument)")
    return default


def named_values(fields: Fields, key: str, *, secret: bool = False) -> dict[str, str]:
    """`[{name, value}]` or `{name: value}` as a dict; secrets refuse Key Vault references."""
    if not fields.has(key):
        return {}
    value = fields.get(key)
    if secret:
        _check_secret_shapes(value, fields.at(key))
    if isinstance(value, dict):  # (name, value, path of the name, path of the value)
        entries = [(name, item, f"{fields.at(key)}.{name}", f"{fields.at(key)}.{name}") for name, item in value.items()]
    else:
        entries = []
        for item in fields.items(key):
            _check_secret_reference(item, secret)
            entries.append((item.get("name"), item.get("value"), item.at("name"), item.at("value")))
    result: dict[str, str] = {}
    for name, item, name_path, value_path in entries:
        _identifier(name, name_path, result, "a variable name", fields.at(key))
        result[name] = _variable_value(item, value_path, secret)
    return result


def _check_secret_shapes(value: Any, path: str) -> None:
    """A secrets block of the wrong shape is refused without showing what it holds: it may be the secret."""
    if not isinstance(value, (dict, list)):
        raise SpecError(path, _HIDDEN, 'a list of {"name": ..., "value": ...} objects or an object of names to values')
    for index, item in enumerate(value if isinstance(value, list) else []):
        if not isinstance(item, dict):
            raise SpecError(f"{path}[{index}]", _HIDDEN, 'an object {"name": ..., "value": ...}')


def _check_secret_reference(item: Fields, secret: bool) -> None:
    if secret and not item.has("value") and item.has("valueSecretReference"):
        raise SpecError(
            item.at("valueSecretReference"),
            item.get("valueSecretReference"),
            "Key Vault references cannot be resolved here; put the secret itself in `value`",
            code="UnsupportedSecretReference",
        )


def _variable_value(value: Any, path: str, secret: bool) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    shown = _HIDDEN if secret and value is not None else value
    if value is None:
        # A job read back from the service names its secrets without their values.
        again = "; the service never returns a secret's value, so give it again" if secret else ""
        raise SpecError(path, shown, f"a string value (value is required{again})")
    raise SpecError(path, shown, "a string value")


def _ids(fields: Fields, key: str) -> list[Fields]:
    """The objects of an input/output directory list, with valid ids unique within the list."""
    seen: set[str] = set()
    items = fields.items(key)
    for item in items:
        seen.add(
            _identifier(
                item.text("id", required="an id of letters, digits and '_'"),
                item.at("id"),
                seen,
                "an id",
                fields.at(key),
            )
        )
    return items


def _identifier(value: Any, path: str, seen: Container[str], what: str, where: str) -> str:
    """An id or variable name: letters, digits, '_', not a leading digit, once in its list."""
    if not isinstance(value, str) or not _ID_PATTERN.fullmatch(value):
        raise SpecError(path, value, f"{what} of letters, digits and '_', not starting with a digit")
    if value in seen:
        raise SpecError(path, value, f"each {what.split()[-1]} once in {where}")
    return value


# ---- toolkit settings -----------------------------------------------------------------------

_text = Fields.text


def _count(fields: Fields, key: str) -> int | None:
    return fields.integer(key, minimum=1, maximum=MAX_PROCESSES_PER_JOB)


_FIELD_READERS: dict[str, tuple[str, Callable[[Fields, str], Any]]] = {
    "commandLine": ("command_line", _text),
    "pythonScriptFilePath": ("python_script", _text),
    "pythonInterpreterPath": ("python_interpreter", _text),
    "commandLineArgs": ("args", _text),
    "processCount": ("process_count", _count),
    "communicationBackend": ("communication_backend", lambda f, k: f.choice(k, COMMUNICATION_BACKENDS, "gloo")),
    "masterCommandLineArgs": ("master_args", _text),
    "workerCommandLineArgs": ("worker_args", _text),
    "parameterServerCommandLineArgs": ("ps_args", _text),
    "workerCount": ("worker_count", _count),
    "parameterServerCount": ("ps_count", lambda f, k: f.integer(k, minimum=0)),
    "tfConfigChief": ("tf_config_chief", lambda f, k: f.flag(k)),
    "languageType": ("language", lambda f, k: f.choice(k, CNTK_LANGUAGES, "BrainScript")),
    "configFilePath": ("config_file", _text),
}
_PYTHON = ("pythonScriptFilePath", "pythonInterpreterPath", "commandLineArgs")
TOOLKIT_FIELDS: dict[str, tuple[str, ...]] = {
    "tensorflow": (
        "pythonScriptFilePath",
        "pythonInterpreterPath",
        "masterCommandLineArgs",
        "workerCommandLineArgs",
        "parameterServerCommandLineArgs",
        "workerCount",
        "parameterServerCount",
        "tfConfigChief",
    ),
    "pytorch": _PYTHON + ("processCount", "communicationBackend"),
    "horovod": _PYTHON + ("processCount",),
    "chainer": _PYTHON + ("processCount",),
    "cntk": ("languageType", "configFilePath") + _PYTHON + ("processCount",),
    "caffe": ("configFilePath",) + _PYTHON + ("processCount",),
    "caffe2": _PYTHON,
    "customMpi": ("commandLine", "processCount"),
    "custom": ("commandLine",),
}
_NEEDS_SCRIPT = ("tensorflow", "pytorch", "horovod", "chainer", "caffe2")


def _toolkit(body: Fields) -> ToolkitSettings:
    """The one toolkit: a Batch AI settings block, or the native `toolkit` (kind or object)."""
    given = [key for key in (*TOOLKIT_BLOCKS, "toolkit") if body.has(key)]
    if not given:
        allowed = ", ".join(TOOLKIT_BLOCKS)
        raise SpecError(
            body.path or "toolkit",
            None,
            f"a job needs exactly one toolkit block: one of {allowed} (or a native `toolkit`)",
            code="MissingField",
        )
    if len(given) > 1:
        raise SpecError(
            body.at(given[1]),
            body.get(given[1]),
            f"a job has exactly one toolkit block, not both {given[0]} and {given[1]}",
        )
    key = given[0]
    if key in TOOLKIT_BLOCKS:
        return _toolkit_settings(TOOLKIT_BLOCKS[key], body.present_obj(key))
    value = body.get("toolkit")
    if isinstance(value, str):  # the kind alone; its fields sit at the top of the native spec
        return _toolkit_settings(_toolkit_kind(value, body.at("toolkit")), body)
    if not isinstance(value, dict):
        raise SpecError(
            body.at("toolkit"), value, 'a toolkit kind or an object {"type": kind, ...the fields of its settings block}'
        )
    block = body.present_obj("toolkit")
    if not block.has("type"):
        raise block.missing("type", "one of " + ", ".join(TOOLKITS))
    return _toolkit_settings(_toolkit_kind(block.get("type"), block.at("type")), block)


def _toolkit_kind(value: Any, path: str) -> str:
    if isinstance(value, str) and value.strip().lower() in _KIND_BY_NAME:
        return _KIND_BY_NAME[value.strip().lower()]
    raise SpecError(path, value, "one of " + ", ".join(TOOLKITS))


def _toolkit_settings(kind: str, fields: Fields) -> ToolkitSettings:
    settings = ToolkitSettings(kind=kind)
    if kind == "cntk":
        settings.language = _cntk_language(fields)
    for key in TOOLKIT_FIELDS[kind]:
        if fields.has(key):
            attr, read = _FIELD_READERS[key]
            setattr(settings, attr, read(fields, key))
    _check_toolkit(settings, fields)
    return settings


def _cntk_language(fields: Fields) -> str:
    """BrainScript unless said otherwise; a block with a Python script and no config file is Python, as
    every CNTK Python recipe writes it (without languageType)."""
    if fields.has("pythonScriptFilePath") and not fields.has("configFilePath"):
        return "Python"
    return "BrainScript"


def _check_toolkit(settings: ToolkitSettings, fields: Fields) -> None:
    kind = settings.kind
    required = None
    if kind in _NEEDS_SCRIPT or (kind == "cntk" and settings.language == "Python"):
        required = ("pythonScriptFilePath", settings.python_script, "the path of the Python script to run")
    elif kind == "cntk":
        required = ("configFilePath", settings.config_file, "the BrainScript config file to run")
    elif kind == "customMpi":
        required = ("commandLine", settings.command_line, "the command mpirun starts on each node")
    elif kind == "caffe" and bool(settings.config_file) == bool(settings.python_script):
        raise SpecError(
            fields.at("configFilePath"),
            settings.config_file or None,
            "caffe needs exactly one of configFilePath (solver prototxt) or pythonScriptFilePath",
        )
    if required and not required[1]:
        raise fields.missing(required[0], f"{required[2]} ({kind})")


# ---- jobs -----------------------------------------------------------------------------------


def parse_job_spec(
    doc: Any,
    *,
    name: str | None = None,
    workspace: str | None = None,
    experiment: str | None = None,
    cluster: str | None = None,
) -> JobSpec:
    """A JobSpec from a native spec or a Batch AI job.json (already decoded); SpecError if invalid.

    Keyword arguments (the CLI's -n/-w/-e/-c) override the document.
    """
    check_spec_limits(doc)
    body, outer, api_version = unwrap(doc)
    batch_ai = api_version != NATIVE
    constraints = body.obj("constraints")
    return JobSpec(
        name=resource_name("job", name, "name", body, outer),
        cluster=_job_cluster(body, cluster),
        toolkit=_toolkit(body),
        workspace=resource_name("workspace", workspace, "workspace", body, outer, DEFAULT_WORKSPACE),
        experiment=resource_name("experiment", experiment, "experiment", body, outer, DEFAULT_EXPERIMENT),
        node_count=body.integer("nodeCount", 1, minimum=1, maximum=MAX_NODES_PER_CLUSTER, required=batch_ai),
        priority=_priority(body),
        max_wall_clock_seconds=_max_wall_clock(constraints),
        max_retries=_max_retries(body, constraints),
        job_preparation=_job_preparation(body),
        input_directories=[
            InputDirectory(
                id=item.text("id"),
                path=parse_data_path(item.text("path", required=f"a path: {FORMS}"), item.at("path")),
            )
            for item in _ids(body, "inputDirectories")
        ],
        output_directories=[
            OutputDirectory(
                id=item.text("id"),
                path_prefix=item.text("pathPrefix", required="a path prefix"),
                path_suffix=item.text("pathSuffix"),
            )
            for item in _ids(body, "outputDirectories")
        ],
        environment=named_values(body, "environmentVariables"),
        secrets=named_values(body, "secrets", secret=True),
        std_out_err_path_prefix=body.text(
            "stdOutErrPathPrefix", required="where the stdouterr directory goes" if batch_ai else ""
        ),
        mount_volumes=raw_block(body, "mountVolumes"),
        api_version=api_version,
        params=_params(body),
        container=_container(body),
    )


MAX_PARAMS = 1000
MAX_PARAM_NAME = 200


def _params(body: Fields) -> dict[str, Any]:
    """`params`: the run's parameters, {name: a string, number, true/false or null}."""
    if not body.has("params"):
        return {}
    value = body.get("params")
    if not isinstance(value, dict):
        raise SpecError(body.at("params"), value, 'an object of parameter names to values, e.g. {"lr": 0.01}')
    if len(value) > MAX_PARAMS:
        raise SpecError(body.at("params"), f"{len(value)} parameters", f"at most {MAX_PARAMS} parameters")
    for name, item in value.items():
        if not name or len(name) > MAX_PARAM_NAME:
            raise SpecError(body.at("params"), name, f"parameter names of 1 to {MAX_PARAM_NAME} characters")
        if item is not None and not isinstance(item, (str, int, float, bool)):
            raise SpecError(f"{body.at('params')}.{name}", item, "a string, a number, true, false or null")
    return dict(value)


def _container(body: Fields) -> ContainerSettings | None:
    """containerSettings (Batch AI's, at job level), or the native spec's `image` alone."""
    place = one_of((body, "containerSettings"), (body, "image"))
    if place is None:
        return None
    if place[1] == "image":
        return ContainerSettings(image=_image_text(body, "image", "an image name such as pytorch/pytorch:1.0"))
    block = body.present_obj("containerSettings")
    registry = block.obj("imageSourceRegistry")
    if registry is None:
        raise block.missing("imageSourceRegistry", 'the image the job runs in: {"image": "pytorch/pytorch:1.0"}')
    username, password = "", ""
    credentials = registry.obj("credentials")
    if credentials is not None:
        username = credentials.text("username", required="the registry user the password belongs to")
        if not credentials.has("password") and credentials.has("passwordSecretReference"):
            raise SpecError(
                credentials.at("passwordSecretReference"),
                credentials.get("passwordSecretReference"),
                "Key Vault references cannot be resolved here; put the password itself in `password`",
                code="UnsupportedSecretReference",
            )
        if not credentials.has("password"):
            raise credentials.missing("password", "the registry password for the username")
        password = _variable_value(credentials.get("password"), credentials.at("password"), secret=True)
    server = registry.text("serverUrl").strip()
    server = re.sub(r"^[a-z]+://", "", server).rstrip("/")
    if server and not _IMAGE.fullmatch(server):
        raise SpecError(registry.at("serverUrl"), server, "a registry address such as myregistry.azurecr.io")
    shm_size = block.text("shmSize").strip()
    if shm_size and not _SHM_SIZE.fullmatch(shm_size):
        raise SpecError(block.at("shmSize"), shm_size, "a size such as 2g, 512m or 1073741824")
    return ContainerSettings(
        image=_image_text(registry, "image", "an image name such as pytorch/pytorch:1.0"),
        server_url=server,
        username=username,
        password=password,
        shm_size=shm_size,
    )


def _image_text(fields: Fields, key: str, required: str) -> str:
    image = fields.text(key, required=required).strip()
    if not _IMAGE.fullmatch(image):
        raise SpecError(fields.at(key), image, required)
    return image


def container_to_wire(container: ContainerSettings | None) -> dict[str, Any] | None:
    """containerSettings as Batch AI showed it: the username, never the password."""
    if container is None:
        return None
    registry: dict[str, Any] = {"image": container.image}
    if container.server_url:
        registry["serverUrl"] = container.server_url
    if container.username:
        registry["credentials"] = {"username": container.username}
    return {"imageSourceRegistry": registry, "shmSize": container.shm_size or None}


def _job_cluster(body: Fields, override: str | None) -> str:
    """The cluster name: the argument, a plain name, or the last segment of `{"id": ARM id}`."""
    if override is not None or not isinstance(body.get("cluster"), dict):
        return resource_name("cluster", override, "cluster", body)
    reference = body.present_obj("cluster")
    arm_id = reference.text("id", required="the cluster's ARM id or name")
    return validate_name("cluster", arm_id.rstrip("/").rsplit("/", 1)[-1], reference.at("id"))


def _priority(body: Fields) -> int:
    """schedulingPriority (2018-05-01: low|normal|high), or the older `priority` (an integer from -1000 to
    1000 before 2018-05-01; the 2018-05-01 REST examples write it with the new names)."""
    place = one_of((body, "schedulingPriority"), (body, "priority"))
    if place is None:
        return 0
    fields, key = place
    value = fields.get(key)
    if isinstance(value, str) and value.strip().lower() in PRIORITY_BY_NAME:
        return PRIORITY_BY_NAME[value.strip().lower()]
    number = _to_int(value)
    if number is None or not -1000 <= number <= 1000:
        renamed = " (`priority` was renamed schedulingPriority in 2018-05-01)" if key == "priority" else ""
        raise SpecError(fields.at(key), value, f"low, normal, high or an integer from -1000 to 1000{renamed}")
    return number


def _max_wall_clock(constraints: Fields | None) -> float:
    if constraints is None or not constraints.has("maxWallClockTime"):
        return DEFAULT_MAX_WALL_CLOCK_SECONDS
    return parse_duration(constraints.get("maxWallClockTime"), constraints.at("maxWallClockTime"))


def _max_retries(body: Fields, constraints: Fields | None) -> int:
    place = one_of((body, "maxRetries"), (constraints, "maxRetries"))
    return place[0].integer(place[1], minimum=0, required=True) if place else 0


def command_block(fields: Fields, key: str) -> Fields | str:
    """jobPreparation / setupTask: an object with a commandLine, or (native) the command alone."""
    value = fields.get(key)
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        raise SpecError(fields.at(key), value, 'a command string or an object {"commandLine": ...}')
    block = fields.present_obj(key)
    block.text("commandLine", required="the command to run on each node")
    return block


def _job_preparation(body: Fields) -> str:
    if not body.has("jobPreparation"):
        return ""
    block = command_block(body, "jobPreparation")
    return block if isinstance(block, str) else block.text("commandLine")


def raw_block(fields: Fields | None, key: str) -> dict[str, Any] | None:
    """A block kept as given (mountVolumes, backendOptions), copied so the caller's doc stays its own;
    mountVolumes is checked first."""
    if fields is None or not fields.has(key):
        return None
    block = fields.present_obj(key)
    if key == "mountVolumes":
        check_mount_volumes(block.data, block.path)
    return copy.deepcopy(block.data)


def job_spec_to_wire(spec: JobSpec) -> dict[str, Any]:
    """The camelCase job properties the API returns: no secret values, mount keys masked."""
    kind = spec.toolkit.kind
    return {
        "name": spec.name,
        "workspace": spec.workspace,
        "experiment": spec.experiment,
        "cluster": {"id": f"{LOCAL_ARM_PREFIX}/workspaces/{spec.workspace}/clusters/{spec.cluster}"},
        "nodeCount": spec.node_count,
        "schedulingPriority": priority_name(spec.priority),
        "constraints": {
            "maxWallClockTime": format_duration(spec.max_wall_clock_seconds),
            "maxRetries": spec.max_retries,
        },
        "toolType": TOOL_TYPES[kind],
        BLOCK_BY_KIND[kind]: toolkit_to_wire(spec.toolkit),
        "inputDirectories": [{"id": d.id, "path": d.path} for d in spec.input_directories],
        "outputDirectories": [
            {"id": d.id, "pathPrefix": d.path_prefix, "pathSuffix": d.path_suffix} for d in spec.output_directories
        ],
        "environmentVariables": variables_to_wire(spec.environment),
        "secrets": [{"name": name} for name in spec.secrets],
        "jobPreparation": {"commandLine": spec.job_preparation} if spec.job_preparation else None,
        "stdOutErrPathPrefix": spec.std_out_err_path_prefix,
        "mountVolumes": mask_secrets(spec.mount_volumes),
        "params": dict(spec.params),
        # only for a job in an image: the views of jobs without one stay as they were
        **({"containerSettings": container_to_wire(spec.container)} if spec.container else {}),
    }


def toolkit_to_wire(settings: ToolkitSettings) -> dict[str, Any]:
    """The settings block of `settings.kind` with the fields that apply and are set."""
    block = {}
    for key in TOOLKIT_FIELDS[settings.kind]:
        value = getattr(settings, _FIELD_READERS[key][0])
        if value is not None and value != "" and value is not False:
            block[key] = value
    return block


def variables_to_wire(variables: dict[str, str]) -> list[dict[str, Any]]:
    return [{"name": name, "value": value} for name, value in variables.items()]


def mask_secrets(value: Any) -> Any:
    """A copy of a raw block (mountVolumes, backendOptions) with keys, passwords and tokens as ***."""
    if isinstance(value, dict):
        return {key: MASKED if is_secret_field(key, item) else mask_secrets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [mask_secrets(item) for item in value]
    return value


def is_secret_field(key: str, value: Any) -> bool:
    """Whether a raw block's `key: value` is a key, password or token (masked in views, sealed in the store)."""
    # A `...Key` holding an object (e.g. accountKeySecretReference's parts) is walked into instead.
    return bool(_SECRET_KEY.search(key)) and value not in (None, "") and not isinstance(value, (dict, list))
