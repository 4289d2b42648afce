"""`batchai datastore ...` and `batchai file-server ...`: registering storage and moving files.

Keys may come from the environment instead of the command line (which lands in shell history):
AZURE_BATCHAI_STORAGE_ACCOUNT / AZURE_BATCHAI_STORAGE_KEY as the az CLI read them, and
AZURE_STORAGE_CONNECTION_STRING. The service never shows them back.
"""
from __future__ import annotations

import hashlib
import os
import sys
from urllib.parse import quote

from .errors import BatchAIError

CHUNK_BYTES = 16 * 1024 * 1024  # under the service's request body limit


def _base(args) -> str:
    return f"workspaces/{quote(args.workspace, safe='')}/datastores/{quote(args.name, safe='')}"


def _create_document(args) -> dict:
    if args.kind == "local":
        if not args.path:
            raise BatchAIError("InvalidArgument", "--path: give the absolute directory a local datastore is")
        return {"kind": "local", "path": os.path.abspath(args.path)}
    if not args.container:
        raise BatchAIError("InvalidArgument", "--container: give the Blob container the datastore is on")
    document = {"kind": "blob", "containerName": args.container}
    connection = args.connection_string or (None if args.account_name or args.sas_token or args.default_credential
                                            else os.environ.get("AZURE_STORAGE_CONNECTION_STRING"))
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
            raise BatchAIError("InvalidArgument", "give --connection-string, --account-name with --account-key "
                                                  "(or AZURE_BATCHAI_STORAGE_ACCOUNT/_KEY), --sas-token, or "
                                                  "--default-credential")
        document.update(accountName=account, accountKey=key)
    for field, value in (("endpoint", args.endpoint), ("linkExpiryInMinutes", args.link_expiry),
                         ("flushSeconds", args.flush_seconds), ("createContainer", args.create_container or None)):
        if value is not None:
            document[field] = value
    return document


def datastore_command(args) -> object:
    from .cli import _client, _confirm

    client = _client()
    if args.verb == "list":
        return client.list(f"workspaces/{quote(args.workspace, safe='')}/datastores")
    if args.verb == "create":
        return client.request("PUT", _base(args), json_body=_create_document(args))
    if args.verb == "show":
        return client.get(_base(args))
    if args.verb == "delete":
        _confirm(args, f"Forget datastore '{args.name}' (its files stay where they are)")
        return client.request("DELETE", _base(args))
    if args.verb == "ls":
        return client.list(f"{_base(args)}/files", path=args.path)
    if args.verb == "upload":
        return upload(client, _base(args), args.source, args.path)
    return download(client, _base(args), args.path, args.destination)


def file_server_command(args) -> object:
    """A file server is a shared path every node sees (NFS, ...): a local datastore that mounts name."""
    from .cli import _client, _confirm

    client = _client()
    if args.verb == "list":
        return [d for d in client.list(f"workspaces/{quote(args.workspace, safe='')}/datastores")
                if d["kind"] == "local" and d["name"] != "default"]
    if args.verb == "create":
        return client.request("PUT", _base(args), json_body={"kind": "local", "path": os.path.abspath(args.path)})
    if args.verb == "show":
        return client.get(_base(args))
    _confirm(args, f"Forget file server '{args.name}' (its files stay where they are)")
    return client.request("DELETE", _base(args))


def _put_chunk(client, base: str, params: dict, data: bytes) -> dict:
    from .client import API, _error_from

    response = client.session.put(f"{client.url}{API}/{base}/files/content", params=params, data=data,
                                  timeout=client.timeout)
    if response.status_code >= 400:
        raise _error_from(response)
    return response.json()


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def upload(client, base: str, source: str, destination: str) -> dict:
    """Uploads a file or a folder (recursively) in chunks; a file appears only once it is whole, and a
    file the datastore already holds with the same SHA-256 is not sent again."""
    source = os.path.abspath(os.path.expanduser(source))
    if os.path.isdir(source):
        pairs = [(os.path.join(root, name), os.path.relpath(os.path.join(root, name), source).replace(os.sep, "/"))
                 for root, _dirs, names in os.walk(source) for name in sorted(names)]
    elif os.path.isfile(source):
        pairs = [(source, os.path.basename(source))]
    else:
        raise BatchAIError("FileNotFound", f"--source: {source!r} is not a file or folder")
    files = [{"local": local, "path": f"{destination.strip('/')}/{relative}" if destination not in ("", ".")
              else relative, "size": os.path.getsize(local), "sha256": _sha256(local)} for local, relative in pairs]
    wanted = [{k: f[k] for k in ("path", "size", "sha256")} for f in files]
    absent = set(client.request("POST", f"{base}/missing", json_body={"files": wanted})["missing"])
    total = sum(f["size"] for f in files if f["path"] in absent)
    sent = 0
    for item in (f for f in files if f["path"] in absent):
        offset = 0
        with open(item["local"], "rb") as handle:
            while True:
                chunk = handle.read(CHUNK_BYTES)
                final = offset + len(chunk) >= item["size"]
                _put_chunk(client, base, {"path": item["path"], "offset": offset, "final": str(final).lower(),
                                          "sha256": item["sha256"]}, chunk)
                offset += len(chunk)
                sent += len(chunk)
                print(f"\rupload: {sent}/{total} bytes", end="", file=sys.stderr)
                if final:
                    break
    if total:
        print(file=sys.stderr)
    everything = sum(f["size"] for f in files)
    return {"files": len(files), "filesSent": len(absent), "bytesSent": sent, "bytesSkipped": everything - sent}


def download(client, base: str, path: str, destination: str | None) -> dict:
    """Downloads one file by ranged reads into `destination`, which appears only when it is whole."""
    target = os.path.abspath(destination or os.path.basename(path.rstrip("/")))
    if os.path.isdir(target):
        target = os.path.join(target, os.path.basename(path.rstrip("/")))
    partial = target + ".part"
    offset = 0
    with open(partial, "wb") as handle:
        while True:
            data = client.request("GET", f"{base}/files/content", params={
                "path": path, "offset": offset, "length": CHUNK_BYTES}, raw=True).content
            if not data:
                break
            handle.write(data)
            offset += len(data)
            print(f"\rdownload: {offset} bytes", end="", file=sys.stderr)
    print(file=sys.stderr)
    os.replace(partial, target)
    return {"path": target, "bytes": offset}


def add_storage_parsers(sub, scope, yes) -> None:
    """The datastore and file-server verbs; `scope` and `yes` are cli.py's -w and -y adders."""
    datastore = sub.add_parser("datastore", help="datastores: Blob containers, local and shared directories"
                               ).add_subparsers(dest="verb", required=True)
    listing = datastore.add_parser("list", help="list datastores")
    scope(listing)
    create = datastore.add_parser("create", help="register a datastore")
    for verb, helptext in (("show", "show a datastore and its transfer counters"),
                           ("delete", "forget a datastore"), ("ls", "list files"),
                           ("upload", "upload a file or folder"), ("download", "download a file")):
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
    server = sub.add_parser("file-server", help="shared paths (NFS, ...) that mountVolumes.fileServers name"
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
