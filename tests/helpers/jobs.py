"""A job seen through the API: its files, tasks, nodes and logs; running one to success; the scripts
it runs and the `RECORD {...}` lines they print."""

from __future__ import annotations

import json
import textwrap

from .api import read_log, submit, wait_job


def write_script(directory, name: str, body: str) -> str:
    path = directory / name
    path.write_text(textwrap.dedent(body).lstrip())
    return str(path)


def job_path(client, job: str) -> str:
    return client.job_path("default", "default", job)


def list_files(client, job: str, output_id: str = "stdouterr") -> dict[str, dict]:
    entries = client.list(f"{job_path(client, job)}/files", outputdirectoryid=output_id)
    return {entry["name"]: entry for entry in entries}


def job_tasks(client, job: str) -> list[dict]:
    return client.list(f"{job_path(client, job)}/tasks")


def job_nodes(client, job: str) -> list[dict]:
    """The job's nodes in launch order (index 0 is the master)."""
    return client.list(f"{job_path(client, job)}/nodes")


def read_bytes(client, job: str, path: str, output_id: str) -> bytes:
    return client.read_job_file("default", "default", job, path, output_id)


def logs_of(client, job: str) -> str:
    """Every file of the job's stdouterr directory, for failure messages."""
    parts = []
    for name, entry in sorted(list_files(client, job).items()):
        if entry["fileType"] == "file":
            parts.append(f"--- {name}\n{read_log(client, job, name)[-3000:]}")
    return "\n".join(parts)


def run_job(client, name: str, cluster: str, spec: dict, timeout: float = 120.0) -> dict:
    """Submits a job, waits for it, and fails with all its logs unless it succeeded."""
    submit(client, name, cluster, spec)
    job = wait_job(client, name, timeout=timeout)
    assert job["executionState"] == "succeeded", (
        f"job {name} {job['executionState']}: {job['executionInfo']}\n{logs_of(client, name)}"
    )
    assert job["executionInfo"]["exitCode"] == 0, job["executionInfo"]
    return job


def records(text: str, tag: str = "RECORD") -> list[dict]:
    """The JSON objects a script printed as `<tag> {...}` lines."""
    prefix = tag + " "
    return [json.loads(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix)]


def one_record(text: str, tag: str = "RECORD") -> dict:
    found = records(text, tag)
    assert len(found) == 1, f"expected one {tag} line in:\n{text}"
    return found[0]


def task_by_name(tasks: list[dict], phase: str = "main") -> dict[str, dict]:
    return {t["name"]: t for t in tasks if t["phase"] == phase}
