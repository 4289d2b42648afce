"""Content-hashed uploads into a workspace datastore: `--data NAME=PATH` and cell packages.

A set of files goes to `<prefix>/<digest>/...`, where the digest covers every file's relative path
and SHA-256. The service is asked which files it does not hold yet (`missing`), and only those are
sent, in chunks, each checked against its hash: a second upload of the same data sends 0 bytes.
Specs then name the folder by its location, `datastore://<datastore>/<prefix>/<digest>`: where the
service keeps it, and where nodes see it, is the service's business.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from ..client import Client
from ..client.uploads import Progress, UploadFile, files_of, upload_files

DIGEST_LENGTH = 20
__all__ = ["Progress", "UploadFile", "UploadReport", "files_of", "location_of", "tree_digest", "upload"]


@dataclass
class UploadReport:
    datastore_path: str  # the upload's folder inside the datastore
    location: str  # the same folder as specs name it: datastore://<datastore>/<folder>
    files: int
    total_bytes: int
    bytes_sent: int = 0  # as counted by the datastore (bytesWritten)
    files_sent: list[str] = field(default_factory=list)


def tree_digest(files: list[UploadFile]) -> tuple[str, dict[str, str]]:
    """(digest of the whole set, {path: sha256})."""
    hashes = {f.path: f.sha256() for f in files}
    digest = hashlib.sha256()
    for path in sorted(hashes):
        digest.update(f"{path}\0{hashes[path]}\n".encode())
    return digest.hexdigest()[:DIGEST_LENGTH], hashes


def upload(
    client: Client,
    workspace: str,
    prefix: str,
    files: list[UploadFile],
    datastore: str = "default",
    progress: Progress | None = None,
) -> UploadReport:
    """Uploads `files` under `<prefix>/<digest>/` unless the datastore holds them already."""
    digest, hashes = tree_digest(files)
    folder = f"{prefix}/{digest}"
    report = UploadReport(folder, f"datastore://{datastore}/{folder}", len(files), sum(f.size for f in files))
    # The folder's name is the digest of every file's content: a file there at that size is the same file.
    result = upload_files(client, workspace, datastore, files, folder, hashes=hashes, progress=progress)
    report.bytes_sent, report.files_sent = result.bytes_sent, result.files_sent
    return report


def location_of(report: UploadReport, local_path: str, files: list[UploadFile]) -> str:
    """The location naming what `local_path` was: the upload's folder, or the one file in it."""
    single = os.path.isfile(os.path.expanduser(local_path))
    return f"{report.location}/{files[0].path}" if single else report.location
