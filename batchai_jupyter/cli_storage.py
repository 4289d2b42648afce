"""`batchai datastore ...` and `batchai file-server ...`: registering storage and moving files.

Keys may come from the environment instead of the command line (which lands in shell history):
AZURE_BATCHAI_STORAGE_ACCOUNT / AZURE_BATCHAI_STORAGE_KEY as the az CLI read them, and
AZURE_STORAGE_CONNECTION_STRING. The service never shows them back.
"""

from __future__ import annotations

import os
import sys

from .cli_common import confirm, service_client
from .client.uploads import download_file, files_of, upload_files
from .errors import BatchAIError


def _create_document(args) -> dict:
    if args.kind == "local":
        if not args.path:
            raise BatchAIError("InvalidArgument", "--path: give the absolute directory a local datastore is")
        return {"kind": "local", "path": os.path.abspath(args.path)}
    if not args.container:
        raise BatchAIError("InvalidArgument", "--container: give the Blob container the datastore is on")
    document = {"kind": "blob", "containerName": args.container}
    connection = args.connection_string or (
        None
        if args.account_name or args.sas_token or args.default_credential
        else os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    )
    account = args.account_name or os.environ.get("AZURE_BATCHAI_STORAGE_ACCOUNT")
    if connection:
        document["connectionString"] = connection
    elif args.sas_token:
        document.update(accountName=account, sasToken=args.sas_token)
    elif args.default_credential:
        document.update(accountName=account, credential="default")
    else:
        key = args.account_key or os.environ.get("AZURE_BATCHAI_STORAGE_KEY")
        if not (account and key):
            raise BatchAIError(
                "InvalidArgument",
                "give --connection-string, --account-name with --account-key "
                "(or AZURE_BATCHAI_STORAGE_ACCOUNT/_KEY), --sas-token, or "
                "--default-credential",
            )
        document.update(accountName=account, accountKey=key)
    for field, value in (
        ("endpoint", args.endpoint),
        ("linkExpiryInMinutes", args.link_expiry),
        ("flushSeconds", args.flush_seconds),
        ("createContainer", args.create_container or None),
    ):
        if value is not None:
            document[field] = value
    return document


def datastore_command(args) -> object:
    client = service_client()
    if args.verb == "list":
        return client.datastores(args.workspace)
    if args.verb == "create":
        return client.create_datastore(args.workspace, args.name, _create_document(args))
    if args.verb == "show":
        return client.datastore(args.workspace, args.name)
    if args.verb == "delete":
        confirm(args, f"Forget datastore '{args.name}' (its files stay where they are)")
        return client.delete_datastore(args.workspace, args.name)
    if args.verb == "ls":
        return client.datastore_files(args.workspace, args.name, args.path)
    if args.verb == "upload":
        return upload(client, args.workspace, args.name, args.source, args.path)
    return download(client, args.workspace, args.name, args.path, args.destination)


def file_server_command(args) -> object:
    """A file server is a shared path every node sees (NFS, ...): a local datastore that mounts name."""
    client = service_client()
    if args.verb == "list":
        return [d for d in client.datastores(args.workspace) if d["kind"] == "local" and d["name"] != "default"]
    if args.verb == "create":
        return client.create_datastore(args.workspace, args.name, {"kind": "local", "path": os.path.abspath(args.path)})
    if args.verb == "show":
        return client.datastore(args.workspace, args.name)
    confirm(args, f"Forget file server '{args.name}' (its files stay where they are)")
    return client.delete_datastore(args.workspace, args.name)


def upload(client, workspace: str, datastore: str, source: str, destination: str) -> dict:
    """Uploads a file or a folder (recursively) in chunks; a file appears only once it is whole, and a
    file the datastore already holds with the same SHA-256 is not sent again."""
    files = files_of(source, "--source")
    shown = {"total": 0}

    def progress(sent: int, total: int) -> None:
        shown["total"] = total
        if total:
            print(f"\rupload: {sent}/{total} bytes", end="", file=sys.stderr)

    result = upload_files(client, workspace, datastore, files, destination, compare_hashes=True, progress=progress)
    if shown["total"]:
        print(file=sys.stderr)
    return {
        "files": result.files,
        "filesSent": len(result.files_sent),
        "bytesSent": result.bytes_sent,
        "bytesSkipped": result.total_bytes - result.bytes_sent,
    }


def download(client, workspace: str, datastore: str, path: str, destination: str | None) -> dict:
    """Downloads one file by ranged reads into `destination`, which appears only when it is whole."""
    target = os.path.abspath(destination or os.path.basename(path.rstrip("/")))
    if os.path.isdir(target):
        target = os.path.join(target, os.path.basename(path.rstrip("/")))
    size = download_file(
        client,
        workspace,
        datastore,
        path,
        target,
        progress=lambda got: print(f"\rdownload: {got} bytes", end="", file=sys.stderr),
    )
    print(file=sys.stderr)
    return {"path": target, "bytes": size}


def add_storage_parsers(sub, scope, yes) -> None:
    """The datastore and file-server verbs; `scope` and `yes` are cli.py's -w and -y adders."""
    datastore = sub.add_parser(
        "datastore", help="datastores: Blob containers, local and shared directories"
    ).add_subparsers(dest="verb", required=True)
    listing = datastore.add_parser("list", help="list datastores")
    scope(listing)
    create = datastore.add_parser("create", help="register a datastore")
    for verb, helptext in (
        ("show", "show a datastore and its transfer counters"),
        ("delete", "forget a datastore"),
        ("ls", "list files"),
        ("upload", "upload a file or folder"),
        ("download", "download a file"),
    ):
        parser = datastore.add_parser(verb, help=helptext)
        scope(parser)
        parser.add_argument("-n", "--name", required=True)
        if verb == "delete":
            yes(parser)
        if verb == "ls":
            parser.add_argument("-p", "--path", default=".")
        if verb == "upload":
            parser.add_argument("-s", "--source", required=True, help="local file or folder")
            parser.add_argument("-p", "--path", default=".", help="folder inside the datastore")
        if verb == "download":
            parser.add_argument("-p", "--path", required=True, help="file inside the datastore")
            parser.add_argument("-d", "--destination", help="local file or folder (default: here)")
    scope(create)
    create.add_argument("-n", "--name", required=True)
    create.add_argument("--kind", choices=["blob", "local"], default="blob")
    create.add_argument("--container", help="Blob container name")
    create.add_argument("--connection-string", help="(or $AZURE_STORAGE_CONNECTION_STRING)")
    create.add_argument("--account-name", help="(or $AZURE_BATCHAI_STORAGE_ACCOUNT)")
    create.add_argument("--account-key", help="(or $AZURE_BATCHAI_STORAGE_KEY)")
    create.add_argument("--sas-token")
    create.add_argument("--default-credential", action="store_true", help="azure-identity DefaultAzureCredential")
    create.add_argument("--endpoint", help="Blob endpoint (default https://<account>.blob.core.windows.net)")
    create.add_argument("--link-expiry", type=int, help="minutes SAS links in file listings stay valid (60)")
    create.add_argument("--flush-seconds", type=float, help="how often running jobs' logs are copied out (2)")
    create.add_argument("--create-container", action="store_true")
    create.add_argument("--path", help="directory of a local datastore")
    server = sub.add_parser(
        "file-server", help="shared paths (NFS, ...) that mountVolumes.fileServers name"
    ).add_subparsers(dest="verb", required=True)
    for verb in ("create", "show", "delete", "list"):
        parser = server.add_parser(verb, help=f"{verb} file servers")
        scope(parser)
        if verb != "list":
            parser.add_argument("-n", "--name", required=True)
        if verb == "create":
            parser.add_argument("--path", required=True, help="the directory every node sees at this same path")
        if verb == "delete":
            yes(parser)
