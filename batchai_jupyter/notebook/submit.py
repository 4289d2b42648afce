"""A notebook cell as a job: package it, upload it and its --data, and submit the spec that runs it.

The package lands in the workspace datastore (content-hashed) and is the job's input directory
BATCHAI_PACKAGE; the job's preparation copies it into each node's working directory, where the
toolkit runs `_batchai_cell.py`. Each `--data NAME=PATH` is the input directory NAME. Every cell job
has the output directories OUTPUTS (for the user's files) and BATCHAI_RESULT (pulled variables).
"""

from __future__ import annotations

import os
import re
import shlex
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from ..client.specs import with_image
from ..errors import BatchAIError
from ..jsonfile import read_json_object
from ..runtime import cellrunner
from . import datasets
from .jobhandle import OUTPUTS_ID, Job
from .packaging import DEFAULT_LIMIT_BYTES, Package, build_package, human_size
from .workspace import Workspace

FRAMEWORKS = ("custom", "pytorch", "tensorflow", "mpi", "horovod", "chainer", "cntk", "caffe", "caffe2")
PRIORITIES = ("low", "normal", "high")
PACKAGE_INPUT_ID = "BATCHAI_PACKAGE"
PACKAGES_PREFIX = ".batchai/packages"
DATASETS_PREFIX = ".batchai/datasets"
# The service's rule for input directory ids (and so for the $AZ_BATCHAI_INPUT_<ID> variable names).
INPUT_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BLOCKS = {
    "custom": "customToolkitSettings",
    "mpi": "customMpiSettings",
    "pytorch": "pyTorchSettings",
    "tensorflow": "tensorFlowSettings",
    "horovod": "horovodSettings",
    "chainer": "chainerSettings",
    "cntk": "cntkSettings",
    "caffe": "caffeSettings",
    "caffe2": "caffe2Settings",
}


@dataclass
class CellJobOptions:
    cluster: str | None = None
    nodes: int | None = None
    processes: int | None = None
    framework: str | None = None
    files: list[str] = field(default_factory=list)
    data: list[str] = field(default_factory=list)  # NAME=PATH
    push: list[str] = field(default_factory=list)
    pull: list[str] = field(default_factory=list)
    requirements: str | None = None
    env: list[str] = field(default_factory=list)  # K=V
    priority: str | None = None
    retries: int | None = None
    max_time: str | None = None
    experiment: str = "default"
    name: str | None = None
    config_file: str | None = None
    replace: bool = False  # a job of the same name is deleted first (a notebook run again)
    image: str | None = None  # the image the cell runs in
    registry_credentials: str | None = None  # the notebook variable with the registry's username and password


@dataclass
class Submission:
    job: Job
    package: Package
    package_upload: datasets.UploadReport
    data_uploads: dict[str, datasets.UploadReport]


Announce = Callable[[str], None]
ProgressFactory = Callable[[str, int], datasets.Progress | None]  # (label, total bytes) -> progress callback


def split_pairs(values: list[str], option: str, what: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, equals, rest = value.partition("=")
        if not equals or not key:
            raise BatchAIError("InvalidArgument", f"{option} {value!r}: give {what} as NAME=VALUE")
        pairs[key] = rest
    return pairs


def _toolkit(framework: str, processes: int | None, python: str) -> dict:
    if framework not in FRAMEWORKS:
        raise BatchAIError("InvalidArgument", f"--framework {framework!r}: use one of {', '.join(FRAMEWORKS)}")
    runner = cellrunner.RUNNER_NAME
    if framework in ("custom", "mpi"):
        toolkit = {"commandLine": f"{python} {runner}"}
    elif framework == "cntk":
        toolkit = {"languageType": "Python", "pythonScriptFilePath": runner}
    else:
        toolkit = {"pythonScriptFilePath": runner}
    if processes is not None and framework not in ("custom", "caffe2"):
        toolkit["workerCount" if framework == "tensorflow" else "processCount"] = processes
    return toolkit


def load_config(path: str) -> dict:
    """The body of a job.json / cluster.json / native spec given with -f (the `properties` unwrapped)."""
    document = read_json_object(path)
    return dict(document.get("properties", document))


def _file_framework(body: dict) -> str | None:
    for framework, block in _BLOCKS.items():
        if block in body:
            return framework
    return None


def _with_toolkit(body: dict, framework: str, processes: int | None, python: str = "python") -> dict:
    """The spec with its toolkit set to run the cell (a -f file's block keeps its other settings)."""
    block = _BLOCKS[framework]
    settings = {
        key: value
        for key, value in dict(body.get(block) or {}).items()
        if key not in ("commandLine", "pythonScriptFilePath", "configFilePath")
    }
    settings.update(_toolkit(framework, processes, python))
    body = {key: value for key, value in body.items() if key not in _BLOCKS.values() and key != "toolkit"}
    body[block] = settings
    return body


def _preparation(body: dict, requirements: str | None, image: bool = False) -> str:
    package = f"$AZ_BATCHAI_INPUT_{PACKAGE_INPUT_ID}"
    # An image needs nothing but a Python: the package is copied by it (node: by cp).
    copy = (
        f'python3 -c \'import shutil, sys; shutil.copytree(sys.argv[1], ".", dirs_exist_ok=True)\' "{package}"'
        if image
        else f'cp -a "{package}"/. .'
    )
    steps = [copy]
    if requirements:
        python = "python3" if image else "python"
        steps.append(f"{python} -m pip install -q -r {shlex.quote(os.path.basename(requirements))}")
    given = body.get("jobPreparation")
    given = given.get("commandLine") if isinstance(given, dict) else given
    if given:
        steps.append(given)
    return " && ".join(steps)


def _default_cluster(ws: Workspace) -> str:
    clusters = [c["name"] for c in ws.clusters.list()]
    if len(clusters) == 1:
        return clusters[0]
    if not clusters:
        raise BatchAIError(
            "NoCluster",
            "--cluster: this workspace has no cluster; create one with `%batchai_cluster create NAME --nodes 1`",
        )
    raise BatchAIError(
        "NoCluster", f"--cluster: give the cluster to run on (this workspace has: {', '.join(clusters)})"
    )


def _data_pairs(data: list[str]) -> dict[str, str]:
    """--data NAME=PATH, each NAME an input directory id: checked before anything is uploaded."""
    pairs = split_pairs(data, "--data", "a dataset")
    for name in pairs:
        if not INPUT_ID.fullmatch(name):
            raise BatchAIError(
                "InvalidArgument",
                f"--data {name}=...: {name!r} is not a dataset name; use letters, "
                "digits and '_', not starting with a digit (it becomes the input "
                f"directory id, $AZ_BATCHAI_INPUT_<NAME>)",
            )
    return pairs


def _upload_data(
    ws: Workspace, data: dict[str, str], progress: ProgressFactory | None, announce: Announce
) -> tuple[list[dict], dict[str, datasets.UploadReport]]:
    inputs, reports = [], {}
    for name, local in data.items():
        files = datasets.files_of(local, f"--data {name}")
        label = f"data {name}"
        report = datasets.upload(
            ws.client,
            ws.name,
            f"{DATASETS_PREFIX}/{name}",
            files,
            progress=progress(label, sum(f.size for f in files)) if progress else None,
        )
        inputs.append({"id": name, "path": datasets.location_of(report, local, files)})
        reports[name] = report
        announce(
            f"{label}: {report.files} file(s) {human_size(report.total_bytes)}, "
            f"{human_size(report.bytes_sent)} sent"
            + (" (already in the datastore)" if report.bytes_sent == 0 and report.total_bytes else "")
        )
    return inputs, reports


def _registry_credentials(variable: str | None, namespace: dict) -> dict | None:
    if variable is None:
        return None
    if variable not in namespace:
        raise BatchAIError(
            "InvalidArgument",
            f"--registry-credentials {variable}: no such notebook variable; set it first, e.g. "
            f"{variable} = {{'username': 'me', 'password': getpass.getpass()}}",
        )
    value = namespace[variable]
    if not isinstance(value, dict):
        raise BatchAIError(
            "InvalidArgument",
            f"--registry-credentials {variable}: a dict with username and password, not a {type(value).__name__}",
        )
    return value


@dataclass
class PreparedCell:
    """A cell packaged and uploaded, and the job spec that runs it (not submitted yet)."""

    body: dict
    cluster: str | None
    package: Package
    package_upload: datasets.UploadReport
    data_uploads: dict[str, datasets.UploadReport]


# A pushed variable is also one of the run's `params` (the run history shows it) when it is a plain value.
MAX_PARAM_TEXT = 200


def pushed_params(names: list[str], namespace: dict) -> dict:
    params = {}
    for name in names:
        value = namespace.get(name)
        if value is None or isinstance(value, (bool, int, float)):
            params[name] = value
        elif isinstance(value, str) and len(value) <= MAX_PARAM_TEXT:
            params[name] = value
    return params


def prepare_cell(
    ws: Workspace,
    cell: str,
    options: CellJobOptions,
    namespace: dict,
    root: str,
    limit: int = DEFAULT_LIMIT_BYTES,
    announce: Announce = print,
    progress: ProgressFactory | None = None,
) -> PreparedCell:
    """Packages and uploads the cell, its --files, --push and --data; returns the spec that runs it."""
    body = load_config(options.config_file) if options.config_file else {}
    framework = options.framework or _file_framework(body) or "custom"
    # In an image, its python3 (the name every Python image has); on a node, its python.
    body = _with_toolkit(body, framework, options.processes, "python3" if options.image else "python")
    if options.priority and options.priority not in PRIORITIES:
        raise BatchAIError("InvalidArgument", f"--priority {options.priority!r}: use one of {', '.join(PRIORITIES)}")
    env = split_pairs(options.env, "--env", "a variable")
    if options.registry_credentials and not options.image:
        raise BatchAIError("InvalidArgument", "--registry-credentials goes with --image: name the image to pull")
    credentials = _registry_credentials(options.registry_credentials, namespace)
    data = _data_pairs(options.data)
    patterns = list(options.files)
    if options.requirements:
        if not os.path.isfile(os.path.join(root, options.requirements)):
            raise BatchAIError("FileNotFound", f"--requirements {options.requirements!r}: no such file in {root}")
        patterns.append(options.requirements)
    cluster = options.cluster or (None if body.get("cluster") else _default_cluster(ws))
    package = build_package(cell, patterns, options.push, options.pull, namespace, root, limit)
    announce(f"{package.describe()}; uploading")
    data_inputs, data_reports = _upload_data(ws, data, progress, announce)
    package_report = datasets.upload(ws.client, ws.name, PACKAGES_PREFIX, package.files)
    body["inputDirectories"] = [
        *body.get("inputDirectories", []),
        *data_inputs,
        {"id": PACKAGE_INPUT_ID, "path": package_report.location},
    ]
    body["outputDirectories"] = [
        *body.get("outputDirectories", []),
        {"id": OUTPUTS_ID, "pathPrefix": "$AZ_BATCHAI_JOB_TEMP"},
        {"id": cellrunner.RESULT_OUTPUT_ID, "pathPrefix": "$AZ_BATCHAI_JOB_TEMP"},
    ]
    body["jobPreparation"] = {"commandLine": _preparation(body, options.requirements, bool(options.image))}
    if options.image:
        body = with_image(body, options.image, credentials)
    if options.nodes is not None:
        body["nodeCount"] = options.nodes
    if options.priority:
        body["schedulingPriority"] = options.priority
    if env:
        body["environmentVariables"] = [
            *body.get("environmentVariables", []),
            *({"name": k, "value": v} for k, v in env.items()),
        ]
    params = pushed_params(options.push, namespace)
    if params:
        body["params"] = {**(body.get("params") or {}), **params}
    constraints = dict(body.get("constraints") or {})
    if options.max_time:
        constraints["maxWallClockTime"] = options.max_time
    if options.retries is not None:
        constraints["maxRetries"] = options.retries
    if constraints:
        body["constraints"] = constraints
    if options.experiment != "default":
        ws.experiments.ensure(options.experiment)
    return PreparedCell(body, cluster, package, package_report, data_reports)


def submit_cell(
    ws: Workspace,
    cell: str,
    options: CellJobOptions,
    namespace: dict,
    root: str,
    limit: int = DEFAULT_LIMIT_BYTES,
    announce: Announce = print,
    progress: ProgressFactory | None = None,
) -> Submission:
    prepared = prepare_cell(ws, cell, options, namespace, root, limit, announce, progress)
    name = options.name or f"cell-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    try:
        job = ws.jobs.create(options.experiment, name, prepared.body, prepared.cluster, replace=options.replace)
    except BatchAIError as failure:
        if failure.code == "JobExists":
            raise BatchAIError(failure.code, f"{failure.message}; or add --replace to replace it") from None
        raise
    return Submission(job, prepared.package, prepared.package_upload, prepared.data_uploads)
