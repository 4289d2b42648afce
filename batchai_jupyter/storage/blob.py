"""A datastore on an Azure Blob container (tested against Azurite, Microsoft's storage emulator).

Configured by one of: a connection string, an account name + key, a SAS token, or
`credential: "default"` (azure-identity's DefaultAzureCredential) for real Azure. The secret part
(connection string, key, SAS) lives in the datastore's stored secrets and never leaves this module:
errors carry the storage error code, never the service's message (which may echo a signature).

Nodes cannot write to a container directly, so `node_path()` is a local mirror of the container on
this machine; `storage/staging.MirrorSync` copies inputs into it and logs and outputs out of it.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import (
    BlobBlock,
    BlobSasPermissions,
    BlobServiceClient,
    ContainerClient,
    ContainerSasPermissions,
    ExponentialRetry,
    generate_blob_sas,
    generate_container_sas,
)

from ..errors import BatchAIError
from ..ports.datastores import (
    Checkable,
    ChunkedUploads,
    CountsTransfers,
    CreatesContainer,
    Datastore,
    DatastoreContext,
    DeletesFiles,
    DownloadLinks,
    FileEntry,
    PublicSettings,
    clean_relative_path,
)
from .native_mounts import MountableContainer
from .staging import Mirrored, MirrorSync, TransferCounters

Progress = Callable[[int, int], None]  # (bytes done, bytes in all)
DEFAULT_CONCURRENCY = 8
DEFAULT_LINK_EXPIRY_MINUTES = 60
APPEND_BLOCK_BYTES = 4 * 1024 * 1024  # the largest append block every service version takes
_CONTAINER_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class BlobSettings:
    """What a Blob datastore needs, from its stored configuration and secrets."""

    container: str
    account_name: str = ""
    endpoint: str = ""  # https://<account>.blob.core.windows.net, or Azurite's http://127.0.0.1:PORT/<account>
    connection_string: str = ""
    account_key: str = ""
    sas_token: str = ""
    use_default_credential: bool = False
    link_expiry_minutes: int = DEFAULT_LINK_EXPIRY_MINUTES
    flush_seconds: float = 2.0
    retries: int = 3  # per request, 1 + 2, 1 + 4, 1 + 8 seconds apart: an outage becomes an error, not a hang

    @classmethod
    def from_config(cls, config: dict) -> BlobSettings:
        container = str(config.get("container") or "")
        if not _CONTAINER_NAME.match(container):
            raise BatchAIError(
                "InvalidDatastore",
                f"containerName: {container!r} is not a valid container name; use "
                "3-63 lower-case letters, digits and single hyphens",
            )
        connection = str(config.get("connection_string") or "")
        parts = _connection_parts(connection) if connection else {}
        account = str(config.get("account_name") or parts.get("accountname") or "")
        endpoint = str(config.get("endpoint") or parts.get("blobendpoint") or "")
        if not endpoint and account:
            endpoint = f"https://{account}.blob.core.windows.net"
        settings = cls(
            container=container,
            account_name=account,
            endpoint=endpoint.rstrip("/"),
            connection_string=connection,
            account_key=str(config.get("account_key") or parts.get("accountkey") or ""),
            sas_token=str(config.get("sas_token") or parts.get("sharedaccesssignature") or "").lstrip("?"),
            use_default_credential=config.get("credential") == "default",
            link_expiry_minutes=int(config.get("link_expiry_minutes") or DEFAULT_LINK_EXPIRY_MINUTES),
            flush_seconds=float(config.get("flush_seconds") or 2.0),
            retries=int(config.get("retries", 3)),
        )
        if not (connection or settings.account_key or settings.sas_token or settings.use_default_credential):
            raise BatchAIError(
                "InvalidDatastore",
                "a blob datastore needs credentials: give connectionString, "
                'accountName + accountKey, sasToken, or credential: "default"',
            )
        if not settings.endpoint:
            raise BatchAIError(
                "InvalidDatastore", "a blob datastore needs accountName (or endpoint) to find its account"
            )
        return settings


def _connection_parts(connection: str) -> dict:
    parts = {}
    for item in connection.split(";"):
        if "=" in item:
            key, value = item.split("=", 1)
            parts[key.strip().lower()] = value.strip()
    return parts


class _Forbidden(Exception):
    error_code = ""


@contextmanager
def _forbidden_as_authentication() -> Iterator[None]:
    """A 403 is the account refusing the credentials (a wrong key, an expired or too narrow SAS)."""
    try:
        yield
    except HttpResponseError as failure:
        if failure.status_code == 403 and not isinstance(failure, ClientAuthenticationError):
            forbidden = _Forbidden()
            forbidden.error_code = failure.error_code or "AuthorizationFailure"
            raise forbidden from None
        raise


@contextmanager
def storage_errors(where: str) -> Iterator[None]:
    """Azure's exceptions as BatchAIErrors that say what failed and what to do, with no secret in them."""
    try:
        with _forbidden_as_authentication():
            yield
    except BatchAIError:
        raise
    except (ClientAuthenticationError, _Forbidden) as failure:
        code = getattr(failure, "error_code", None) or "AuthenticationFailed"  # a signing error has none
        raise BatchAIError(
            "StorageAuthenticationFailed",
            f"{where}: the storage account refused the datastore's "
            f"credentials ({code}); check the account key, the SAS "
            "token and its expiry, or "
            "the identity DefaultAzureCredential signs in with, then "
            "recreate the datastore",
            400,
        ) from None
    except ResourceNotFoundError as failure:
        code = failure.error_code or "ResourceNotFound"
        if code == "ContainerNotFound":
            raise BatchAIError(
                "ContainerNotFound",
                f"{where}: the container does not exist in the storage account; "
                "create it, or fix the datastore's containerName",
                404,
            ) from None
        raise BatchAIError("FileNotFound", f"{where}: no such blob ({code})", 404) from None
    except (ServiceRequestError, ServiceResponseError) as failure:
        raise BatchAIError(
            "StorageUnreachable",
            f"{where}: the storage service did not answer "
            f"({type(failure).__name__}); check that it is reachable and retry",
            503,
        ) from None
    except HttpResponseError as failure:
        status = failure.status_code if failure.status_code and 400 <= failure.status_code < 500 else 502
        raise BatchAIError(
            "StorageError",
            f"{where}: the storage service refused the request "
            f"({failure.error_code or failure.status_code}); retry, or check the "
            "datastore's configuration",
            status,
        ) from None
    except AzureError as failure:
        raise BatchAIError("StorageError", f"{where}: {type(failure).__name__}; retry", 503) from None
    except ValueError:  # the SDK refusing the settings; its message is not shown, it may quote a credential
        raise BatchAIError(
            "InvalidDatastore",
            f"{where}: the storage SDK cannot use the datastore's settings; check "
            "that endpoint is a URL (https://<account>.blob.core.windows.net), "
            "and the accountName and the key's format",
        ) from None


class BlobDatastore(
    Datastore,
    Mirrored,
    MountableContainer,
    ChunkedUploads,
    CountsTransfers,
    CreatesContainer,
    Checkable,
    PublicSettings,
    DownloadLinks,
    DeletesFiles,
):
    kind = "blob"

    def __init__(self, settings: BlobSettings, mirror_root: str, counters: TransferCounters):
        self.settings = settings
        self.mirror_root = mirror_root
        self.counters = counters
        self.container = self._container_client()
        self.sync = MirrorSync(mirror_root, self, counters, settings.flush_seconds)

    def close(self) -> None:
        self.container.close()

    def _container_client(self) -> ContainerClient:
        s = self.settings
        options = {
            "retry_policy": ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=s.retries),
            "connection_timeout": 10,
        }
        if s.connection_string:
            return ContainerClient.from_connection_string(s.connection_string, s.container, **options)
        if s.account_key:
            credential = {"account_name": s.account_name, "account_key": s.account_key}
        elif s.sas_token:
            credential = s.sas_token
        else:
            try:
                from azure.identity import DefaultAzureCredential
            except ImportError:
                raise BatchAIError(
                    "DatastoreUnavailable",
                    'credential: "default" needs azure-identity; pip install batchai-jupyter[blob]',
                ) from None
            credential = DefaultAzureCredential()
        return BlobServiceClient(s.endpoint, credential=credential, **options).get_container_client(s.container)

    def public_settings(self) -> dict:
        """The account and endpoint, for views (a connection string's are not otherwise shown)."""
        return {"account_name": self.settings.account_name, "endpoint": self.settings.endpoint}

    def transfers(self) -> dict:
        return self.counters.snapshot()

    # -- names -------------------------------------------------------------------------------

    def _blob_name(self, segment: str) -> str:
        name = clean_relative_path(segment)
        if not name:
            raise BatchAIError("InvalidPath", "path: give a file path inside the datastore, not its root")
        return name

    def _where(self, segment: str) -> str:
        return f"blob datastore container {self.settings.container!r}, path {segment!r}"

    # -- the Datastore protocol --------------------------------------------------------------

    def node_path(self, segment: str) -> str:
        return os.path.join(self.mirror_root, clean_relative_path(segment))

    def exists(self, segment: str) -> bool:
        prefix = clean_relative_path(segment)
        with storage_errors(self._where(segment)):
            if prefix and self.container.get_blob_client(prefix).exists():
                return True
            return any(
                True
                for _ in self.container.list_blobs(
                    name_starts_with=prefix + "/" if prefix else None, results_per_page=1
                )
            )

    def list(self, segment: str) -> list[FileEntry]:
        prefix = clean_relative_path(segment)
        prefix = prefix + "/" if prefix else ""
        entries = []
        with storage_errors(self._where(segment)):
            for item in self.container.walk_blobs(name_starts_with=prefix or None, delimiter="/"):
                name = item.name[len(prefix) :]
                if name.endswith("/"):
                    entries.append(FileEntry(name.rstrip("/"), "directory", None, None))
                else:
                    modified = item.last_modified.timestamp() if item.last_modified else None
                    entries.append(FileEntry(name, "file", item.size, modified))
        return sorted(entries, key=lambda e: e.name)

    def read(self, segment: str, offset: int = 0, length: int | None = None) -> bytes:
        blob = self.container.get_blob_client(self._blob_name(segment))
        offset = max(0, offset)
        with storage_errors(self._where(segment)):
            try:
                return blob.download_blob(offset=offset, length=length).readall()
            except HttpResponseError as failure:
                if failure.status_code == 416:  # a range starting at or past the end
                    return b""
                raise

    # -- whole files -------------------------------------------------------------------------

    def upload_file(
        self, local: str, segment: str, progress: Progress | None = None, concurrency: int = DEFAULT_CONCURRENCY
    ) -> int:
        """Uploads a local file in parallel blocks; the blob appears only once every block is in."""
        size = os.path.getsize(local)
        hook = (lambda done, total: progress(done, size)) if progress else None
        with storage_errors(self._where(segment)), open(local, "rb") as handle:
            self.container.upload_blob(
                self._blob_name(segment),
                handle,
                length=size,
                overwrite=True,
                max_concurrency=concurrency,
                progress_hook=hook,
            )
        self.counters.add(sent=size)
        return size

    def download_file(
        self, segment: str, local: str, progress: Progress | None = None, concurrency: int = DEFAULT_CONCURRENCY
    ) -> int:
        """Downloads a blob in parallel ranges into `local`, which appears only when it is whole."""
        os.makedirs(os.path.dirname(os.path.abspath(local)), exist_ok=True)
        partial = f"{local}.download-{os.getpid()}-{threading.get_ident()}"
        try:
            with storage_errors(self._where(segment)), open(partial, "wb") as handle:
                stream = self.container.get_blob_client(self._blob_name(segment)).download_blob(
                    max_concurrency=concurrency, progress_hook=progress
                )
                size = stream.readinto(handle)
            os.replace(partial, local)
        finally:
            if os.path.exists(partial):
                os.remove(partial)
        self.counters.add(received=size)
        return size

    def put_bytes(self, segment: str, data: bytes) -> None:
        with storage_errors(self._where(segment)):
            self.container.upload_blob(self._blob_name(segment), data, overwrite=True)
        self.counters.add(sent=len(data))

    def delete(self, segment: str) -> int:
        """Deletes a blob, or every blob under a folder; returns how many."""
        prefix = clean_relative_path(segment)
        deleted = 0
        with storage_errors(self._where(segment)):
            names = [b.name for b in self.container.list_blobs(name_starts_with=prefix + "/" if prefix else None)]
            if prefix and self.container.get_blob_client(prefix).exists():
                names.append(prefix)
            for name in names:
                self.container.delete_blob(name)
                deleted += 1
        return deleted

    # -- what MirrorSync needs ---------------------------------------------------------------

    def remote_file(self, segment: str) -> tuple[int, str | None] | None:
        """(size, the SHA-256 an upload recorded, if any) of a blob; None when there is none."""
        with storage_errors(self._where(segment)):
            try:
                properties = self.container.get_blob_client(self._blob_name(segment)).get_blob_properties()
            except ResourceNotFoundError as failure:
                if failure.error_code == "ContainerNotFound":
                    raise
                return None
        return properties.size, (properties.metadata or {}).get("sha256")

    def remote_size(self, segment: str) -> int | None:
        held = self.remote_file(segment)
        return None if held is None else held[0]

    def remote_files(self, segment: str) -> list[tuple[str, int, str]]:
        """(path, size, etag) of every blob under a folder."""
        prefix = clean_relative_path(segment)
        with storage_errors(self._where(segment)):
            return [
                (b.name, b.size, b.etag)
                for b in self.container.list_blobs(name_starts_with=prefix + "/" if prefix else None)
            ]

    def append(self, segment: str, data: bytes, offset: int) -> None:
        """Appends `data` to a log blob that holds `offset` bytes so far (0: create it)."""
        blob = self.container.get_blob_client(self._blob_name(segment))
        with storage_errors(self._where(segment)):
            if offset == 0:
                blob.create_append_blob()
            for start in range(0, len(data), APPEND_BLOCK_BYTES):
                chunk = data[start : start + APPEND_BLOCK_BYTES]
                blob.append_block(chunk, appendpos_condition=offset + start)
        self.counters.add(sent=len(data))

    # -- chunked uploads from clients (core/uploads) -----------------------------------------

    def uploaded_size(self, segment: str) -> int:
        """Bytes received so far of an upload in progress: its staged, uncommitted blocks."""
        blob = self.container.get_blob_client(self._blob_name(segment))
        with storage_errors(self._where(segment)):
            try:
                _committed, uncommitted = blob.get_block_list("uncommitted")
            except ResourceNotFoundError as failure:
                if failure.error_code == "ContainerNotFound":
                    raise
                return 0
        return sum(block.size for block in uncommitted)

    def write_chunk(self, segment: str, data: bytes, offset: int, final: bool, sha256: str | None) -> None:
        """Stages one chunk as a block; the final chunk commits them all, so a half-sent blob never exists."""
        blob = self.container.get_blob_client(self._blob_name(segment))
        with storage_errors(self._where(segment)):
            if data or offset == 0:
                blob.stage_block(_block_id(offset), data, length=len(data), validate_content=True)
            if final:
                _committed, uncommitted = blob.get_block_list("uncommitted")
                metadata = {"sha256": sha256.lower()} if sha256 else None
                blob.commit_block_list(_contiguous_blocks(uncommitted), metadata=metadata)
        self.counters.add(sent=len(data))

    # -- links -------------------------------------------------------------------------------

    def download_url(self, segment: str, expiry_minutes: int | None = None) -> str | None:
        """A read-only SAS URL that works without our server; None without an account key to sign it."""
        if not self.settings.account_key:
            return None
        minutes = expiry_minutes if expiry_minutes is not None else self.settings.link_expiry_minutes
        name = self._blob_name(segment)
        token = generate_blob_sas(
            self.settings.account_name,
            self.settings.container,
            name,
            account_key=self.settings.account_key,
            permission=BlobSasPermissions(read=True),
            expiry=dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=minutes),
        )
        return f"{self.container.get_blob_client(name).url}?{token}"

    def account_key(self) -> str:
        return self.settings.account_key

    def container_url(self, expiry_minutes: int) -> str | None:
        """The container's URL with a read/write/list/delete SAS, for a node that mounts it; None when these
        credentials cannot sign one (a default credential)."""
        s = self.settings
        if s.account_key:
            return container_sas_url(s.account_name, s.account_key, s.endpoint, s.container, expiry_minutes)
        if s.sas_token:
            return f"{s.endpoint}/{s.container}?{s.sas_token}"
        return None

    def check(self) -> None:
        """Fails with a clear error when the container cannot be reached with these credentials."""
        with storage_errors(f"blob datastore container {self.settings.container!r}"):
            next(iter(self.container.list_blobs(results_per_page=1).by_page()), None)

    def create_container(self) -> None:
        with storage_errors(f"blob datastore container {self.settings.container!r}"):
            try:
                self.container.create_container()
            except ResourceExistsError:
                pass


def container_sas_url(account: str, key: str, endpoint: str, container: str, expiry_minutes: int) -> str:
    """`endpoint`/`container` with a SAS, signed by the account key, to read, write, list and delete in it."""
    token = generate_container_sas(
        account,
        container,
        account_key=key,
        permission=ContainerSasPermissions(read=True, add=True, create=True, write=True, delete=True, list=True),
        expiry=dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=expiry_minutes),
    )
    return f"{endpoint.rstrip('/')}/{container}?{token}"


def _block_id(offset: int) -> str:
    return f"{offset:020d}"  # the SDK base64-encodes it; equal lengths, as the service requires


def _contiguous_blocks(staged: list) -> list[BlobBlock]:
    """The staged blocks that follow on from offset 0, in order (leftovers of an abandoned upload drop out)."""
    by_offset = {int(block.id): block for block in staged if str(block.id).isdigit()}
    chosen, offset = [], 0
    while offset in by_offset:
        block = by_offset[offset]
        chosen.append(BlobBlock(block_id=block.id))
        if not block.size:
            break
        offset += block.size
    return chosen


def mirror_root(home: str, settings: BlobSettings) -> str:
    account = re.sub(r"[^A-Za-z0-9._-]", "_", settings.account_name or "account")
    return os.path.join(home, "mirrors", "blob", account, settings.container)


def create(config: dict, context: DatastoreContext) -> BlobDatastore:
    settings = BlobSettings.from_config(config)
    root = mirror_root(context.home, settings)
    os.makedirs(root, exist_ok=True)
    return BlobDatastore(settings, root, TransferCounters(root + ".transfers.json"))
