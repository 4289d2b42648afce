"""`batchai`: the verbs of `az batchai`, against the batchai service, plus `serve` and `demo`."""

from __future__ import annotations

import argparse
import os
import posixpath
import sys

import requests

from .cli_args import parse_args
from .cli_common import confirm as _confirm
from .cli_common import service_client as _client
from .cli_nodes import add_exec_arguments, cluster_node_exec, job_node_exec
from .cli_storage import add_storage_parsers, datastore_command, file_server_command
from .cli_sweeps import RUN_VERB, add_runs_parser, add_sweep_parsers, runs_command, sweep_command
from .client.follow import follow_job
from .client.specs import (
    AUTO_STORAGE_CONTAINER,
    AUTO_STORAGE_SHARE,
    az_mount_volumes,
    cluster_document,
    with_image,
    with_mount_volumes,
)
from .client.suggest import missing_name, with_closest
from .errors import BatchAIError
from .formatting import print_result
from .jsonfile import fill_placeholders, read_json_object
from .serve_token import OPT_OUT_FLAG, serve_auth_arguments


def _load_json_file(path: str) -> dict:
    # Batch AI recipes carry <AZURE_BATCHAI_STORAGE_ACCOUNT> / <AZURE_BATCHAI_STORAGE_KEY>; az filled them in.
    return fill_placeholders(read_json_object(path), os.environ)


# -- workspace / experiment -------------------------------------------------------------------


def workspace_command(args) -> object:
    client = _client()
    if args.verb == "create":
        return client.create_workspace(args.name, args.resource_group, args.location)
    if args.verb == "list":
        found = client.workspaces()
        group = (args.resource_group or "").lower()
        return [w for w in found if w.get("resourceGroup", "").lower() == group] if group else found
    if args.verb == "show":
        return client.workspace(args.name)
    _confirm(args, f"Delete workspace '{args.name}' with all its clusters and jobs")
    return client.delete_workspace(args.name)


def experiment_command(args) -> object:
    client = _client()
    if args.verb == "create":
        return client.create_experiment(args.workspace, args.name, args.mlflow_tracking_uri)
    if args.verb == "list":
        return client.experiments(args.workspace)
    if args.verb == "show":
        return client.experiment(args.workspace, args.name)
    if args.verb == RUN_VERB:
        return runs_command(client, args)
    _confirm(args, f"Delete experiment '{args.name}' and its jobs")
    return client.delete_experiment(args.workspace, args.name)


# -- cluster --------------------------------------------------------------------------------------


def _cluster_document(args) -> dict:
    for note in _not_used_here(args):
        print(f"note: {note}", file=sys.stderr)
    if args.setup_task_output and not args.setup_task:
        raise BatchAIError("MissingArgument", "--setup-task-output: give the setup task too (--setup-task CMD)")
    setup = args.setup_task or None
    if setup and args.setup_task_output:
        setup = {"commandLine": setup, "stdOutErrPathPrefix": args.setup_task_output}
    document = cluster_document(
        _load_json_file(args.config_file) if args.config_file else None,
        nodes=args.target,
        backend=args.backend or None,
        min_nodes=args.min,
        max_nodes=args.max,
        idle_seconds=args.idle,
        setup=setup,
        priority=args.vm_priority or None,
        vm_size=args.vm_size or None,
        cpus=args.cpus or None,
        backend_options=_backend_options(args),
        native_mounts=args.native_mounts or None,
        node_per_host=True,
    )
    return with_mount_volumes(document, _az_volumes(args), cluster=True)


def _az_volumes(args) -> dict:
    """mountVolumes of az's storage shortcuts (--afs-name, --bfs-name, --nfs, --use-auto-storage)."""
    if args.storage_account_key:
        raise BatchAIError(
            "KeyInArgv",
            "--storage-account-key is not accepted: every local user can read a process's arguments (ps); "
            "put the key in AZURE_BATCHAI_STORAGE_KEY",
        )
    shares = [(args.afs_name, args.afs_mount_path)] if args.afs_name else []
    containers = [(args.bfs_name, args.bfs_mount_path)] if args.bfs_name else []
    if getattr(args, "use_auto_storage", False):
        shares.append(AUTO_STORAGE_SHARE)
        containers.append(AUTO_STORAGE_CONTAINER)
    return az_mount_volumes(
        shares=shares,
        containers=containers,
        file_servers=[(args.nfs, args.nfs_mount_path)] if args.nfs else [],
        account=args.storage_account_name or os.environ.get("AZURE_BATCHAI_STORAGE_ACCOUNT", ""),
        key=os.environ.get("AZURE_BATCHAI_STORAGE_KEY", ""),
    )


def _not_used_here(args) -> list[str]:
    """What az's Azure-VM flags given to `cluster create` do not do on this cluster's backend."""
    backend = f"the {args.backend or 'local'} backend"
    notes = []
    if args.user_name or args.password or args.ssh_key or args.generate_ssh_keys:
        notes.append(
            f"-u/-p/-k/--generate-ssh-keys make an admin account on Azure VMs; {backend} does not use them "
            "(local nodes need no login; ssh nodes are your machines: --hosts user@host --key FILE)"
        )
    if args.image or args.custom_image:
        notes.append(f"-i/--image and --custom-image choose an Azure VM image; {backend} runs its hosts' own system")
    if args.subnet:
        notes.append(f"--subnet puts Azure VMs in a virtual network; {backend} does not use it")
    return notes


def _cluster_of_node(client, workspace: str, node_id: str) -> str:
    for cluster in client.clusters(workspace):
        if any(n["nodeId"] == node_id for n in client.cluster_nodes(workspace, cluster["name"])):
            return cluster["name"]
    raise BatchAIError(
        "NotFound",
        f"node {node_id!r} is in no cluster of workspace '{workspace}'; list them with "
        "`batchai cluster node list -n CLUSTER`",
    )


def _ssh_hosts(text: str) -> list[str]:
    return [host.strip() for host in text.split(",") if host.strip()]


def _local_path(text: str) -> str:
    """A file named on the command line, absolute (the service may run in another directory)."""
    return os.path.abspath(os.path.expanduser(text))


# `cluster create` options that become backendOptions (see backends/slurm_options.py, ssh_options.py).
BACKEND_OPTION_FLAGS = {
    "partition": "partition",
    "account": "account",
    "qos": "qos",
    "gres": "gres",
    "gpus_per_node": "gpusPerNode",
    "sbatch_option": "sbatchOptions",
    "max_nodes_in_use": "maxNodesInUse",
    "shared_root": "sharedRoot",
    "hosts": "hosts",
    "key": "keyFile",
    "known_hosts": "knownHosts",
    "trust_on_first_use": "trustOnFirstUse",
    "python": "python",
    "node_root": "root",
}


def _backend_options(args) -> dict:
    return {
        key: getattr(args, flag)
        for flag, key in BACKEND_OPTION_FLAGS.items()
        if getattr(args, flag, None) not in (None, [])
    }


def cluster_command(args) -> object:
    client = _client()
    if args.verb == "create" and not args.name:
        args.name = args.cluster_name
    if args.verb == "create":
        return client.create_cluster(args.workspace, _cluster_document(args), args.name)
    if args.verb == "list":
        return client.clusters(args.workspace)
    if args.verb == "show":
        return client.cluster(args.workspace, args.name)
    if args.verb == "resize":
        return client.scale_cluster(
            args.workspace,
            args.name,
            {"manual": {"targetNodeCount": args.target, "nodeDeallocationOption": args.deallocation}},
        )
    if args.verb == "auto-scale":
        auto = {"minimumNodeCount": args.min, "maximumNodeCount": args.max}
        if args.idle is not None:
            auto["idleSecondsBeforeScaledown"] = args.idle
        return client.scale_cluster(args.workspace, args.name, {"autoScale": auto})
    if args.verb == "node" and args.node_verb == "exec":
        return cluster_node_exec(client, args, lambda node: _cluster_of_node(client, args.workspace, node))
    if args.verb == "node":
        return client.cluster_nodes(args.workspace, args.name)
    if args.verb == "file":
        return client.cluster_files(args.workspace, args.name, args.path)
    _confirm(args, f"Delete cluster '{args.name}' (running jobs on it are stopped)")
    return client.delete_cluster(args.workspace, args.name)


# -- job ------------------------------------------------------------------------------------------


def job_command(args) -> object:
    client = _client()
    job = (args.workspace, args.experiment, getattr(args, "name", None))
    if args.verb == "create":
        volumes = _az_volumes(args)  # a key on the command line is refused before anything is read
        document = with_mount_volumes(_load_json_file(args.config_file), volumes, cluster=False)
        if args.image:
            document = with_image(document, args.image)
        return client.create_job(args.workspace, args.experiment, document, args.name, args.cluster)
    if args.verb == "list":
        return client.jobs(args.workspace, args.experiment, args.state)
    if args.verb == "show":
        return client.job(*job)
    if args.verb == "wait":
        return wait_command(client, args)
    if args.verb == "terminate":
        _confirm(args, f"Terminate job '{args.name}'")
        return client.terminate_job(*job)
    if args.verb == "node" and args.node_verb == "exec":
        return job_node_exec(client, args)
    if args.verb == "node":
        return client.job_nodes(*job)
    if args.verb == "file" and args.file_verb == "list":
        return client.job_files(*job, args.output_directory_id, args.path)
    if args.verb == "file":
        stream_file(client, args.workspace, args.experiment, args.name, args.output_directory_id, args.file_name)
        return None
    _confirm(args, f"Delete job '{args.name}'")
    return client.delete_job(*job, keep_files=args.keep_files)


def wait_command(client, args) -> object:
    def report(job: dict) -> None:
        print(f"Job state: {job['executionState']} ExitCode: {job['executionInfo']['exitCode']}", file=sys.stderr)

    job = client.wait_for_job(args.workspace, args.experiment, args.name, on_change=report)
    for failure in job["executionInfo"]["errors"]:
        print(f"FailureDetails: ErrorCode:{failure['code']} ErrorMessage:{failure['message']}", file=sys.stderr)
    code = job["executionInfo"]["exitCode"]
    raise SystemExit(0 if job["executionState"] == "succeeded" else (code if code else 255))


def stream_file(client, workspace: str, experiment: str, job: str, output_id: str, file_name: str, out=None) -> None:
    """Prints a file as the job writes it, until the job has ended (az batchai job file stream). A file the
    job never wrote is an error naming the files it did write (a multi-task job has no stdout.txt)."""
    out = out or sys.stdout.buffer

    def write(_path: str, chunk: bytes) -> None:
        out.write(chunk)
        out.flush()

    def waiting(_path: str) -> None:
        written = _written_files(client, workspace, experiment, job, output_id)
        also = f" (it has written {', '.join(written)} so far)" if written else ""
        print(f'The file "{file_name}" not found. Waiting for the job to generate it.{also}', file=sys.stderr)

    follow_job(
        client, workspace, experiment, job, [file_name], write, output_id=output_id, on_missing=waiting, poll=0.5
    )
    written = _written_files(client, workspace, experiment, job, output_id, posixpath.dirname(file_name))
    if file_name.strip("/") not in written:
        raise BatchAIError(
            "FileNotFound",
            f"job '{job}' ended without writing {file_name!r} in {output_id}; its files there: "
            f"{', '.join(written) or 'none'} (stream one with -f NAME)",
        )


def _written_files(client, workspace: str, experiment: str, job: str, output_id: str, folder: str = "") -> list[str]:
    try:
        listing = client.job_files(workspace, experiment, job, output_id, folder or ".")
    except BatchAIError:  # the folder is not there (yet)
        return []
    return [entry["path"] for entry in listing if entry["fileType"] == "file"]


# -- serve / demo ---------------------------------------------------------------------------------


def serve_command(args) -> None:
    if args.action:  # status / stop: the services already running
        from .cli_serve import serve_status, serve_stop

        raise SystemExit({"status": serve_status, "stop": serve_stop}[args.action](args))
    if args.home:
        os.environ["BATCHAI_HOME"] = os.path.abspath(args.home)
    from .server.deferred_grammar import defer_iri_grammar

    defer_iri_grammar()  # before jupyter_server is imported: see that module
    from .server.app import HeadlessBatchAIApp

    if args.token is not None:
        raise BatchAIError(
            "TokenInArgv",
            "--token is no longer accepted: every local user can read a process's "
            "arguments (ps); pass the token in BATCHAI_TOKEN or in a file only you "
            "can read (--token-file PATH, mode 600)",
        )
    argv = [
        f"--ServerApp.ip={args.ip}",
        f"--ServerApp.port={args.port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.open_browser=False",
        "--ServerApp.allow_root=True",
        "--BatchAIApp.exit_if_unavailable=True",
        "--BatchAIApp.refuse_without_auth=True",
        "--ServerApp.terminals_enabled=False",
    ]
    argv += serve_auth_arguments(args.token_file, args.no_auth_i_have_my_own_proxy)
    if args.mlflow_tracking_uri:
        argv.append(f"--BatchAIApp.mlflow_tracking_uri={args.mlflow_tracking_uri}")
    HeadlessBatchAIApp.launch_instance(argv=argv)


def demo_command(args) -> None:
    from .demo import run_demo

    raise SystemExit(run_demo(_client(), nodes=args.nodes))


# -- parser ---------------------------------------------------------------------------------------


def _scope(parser, experiment: bool = False) -> None:
    parser.add_argument("-w", "--workspace", default="default", help="workspace (default: default)")
    parser.add_argument(
        "-g", "--resource-group", help="accepted for az command lines and not used: workspaces (-w) group things here"
    )
    if experiment:
        parser.add_argument("-e", "--experiment", default="default", help="experiment (default: default)")


def _yes(parser) -> None:
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")


def _add_az_storage_flags(parser, cluster: bool) -> None:
    """az batchai's storage shortcuts, mounted for the cluster's nodes or the job as its mountVolumes would be.
    A share or container with a registered datastore is that datastore, else a local directory stands in."""
    root = "$AZ_BATCHAI_MOUNT_ROOT" if cluster else "$AZ_BATCHAI_JOB_MOUNT_ROOT"
    group = parser.add_argument_group(f"storage of az batchai (mounted under {root})")
    group.add_argument("--afs-name", help="Azure File share to mount")
    group.add_argument("--afs-mount-path", default="afs", help="where, under the mount root (default afs)")
    group.add_argument("--bfs-name", help="Blob container to mount")
    group.add_argument("--bfs-mount-path", default="bfs", help="where, under the mount root (default bfs)")
    group.add_argument("--nfs", help="file server (`batchai file-server create`) to mount")
    group.add_argument("--nfs-mount-path", default="nfs", help="where, under the mount root (default nfs)")
    group.add_argument("--storage-account-name", help="their account (default $AZURE_BATCHAI_STORAGE_ACCOUNT)")
    group.add_argument("--storage-account-key", help=argparse.SUPPRESS)  # refused with the reason: argv is public
    if cluster:
        group.add_argument(
            "--use-auto-storage",
            action="store_true",
            help="mount az's auto-storage share batchaishare at autoafs and container batchaicontainer at autobfs",
        )


def _add_cluster_parsers(sub) -> None:
    cluster = sub.add_parser("cluster", help="clusters of nodes").add_subparsers(dest="verb", required=True)
    create = cluster.add_parser("create", help="create a cluster (-f cluster.json and/or options)")
    _scope(create)
    create.add_argument("-n", "--name", help="cluster name (or `name` in the file)")
    create.add_argument("-f", "--config-file", help="Batch AI cluster.json or a native cluster spec")
    create.add_argument("-b", "--backend", help="local (default), ssh, slurm, azure")
    create.add_argument("-s", "--vm-size", help="VM size (sets cpus/gpus per node for known Azure sizes)")
    create.add_argument("--vm-priority", choices=["dedicated", "lowpriority"])
    create.add_argument(
        "--low-priority",
        dest="vm_priority",
        action="store_const",
        const="lowpriority",
        help="Spot VMs (--backend azure): cheaper, evicted when Azure needs them; jobs are requeued",
    )
    create.add_argument("--cpus", type=int, help="CPU slots per node")
    create.add_argument("-t", "--target", type=int, help="number of nodes (manual scale)")
    create.add_argument("--min", type=int, help="auto-scale minimum nodes")
    create.add_argument("--max", type=int, help="auto-scale maximum nodes")
    create.add_argument("--idle", type=float, help="idle seconds before an auto-scaled node is removed")
    create.add_argument("--setup-task", help="command run on every node when it is provisioned")
    create.add_argument("--setup-task-output", help="stdOutErrPathPrefix of the setup task's logs")
    create.add_argument(
        "--native-mounts",
        action="store_true",
        help="nodes that have rclone (FUSE) or a kernel CIFS client mount the mountVolumes' Blob "
        "containers and file shares themselves instead of getting a copy",
    )
    create.add_argument("cluster_name", nargs="?", metavar="NAME", help="cluster name (as -n)")
    _add_az_storage_flags(create, cluster=True)
    azure = create.add_argument_group("Azure VM flags of az batchai (accepted; said when a backend does not use them)")
    azure.add_argument("-u", "--user-name", help="admin user name on Azure VMs")
    azure.add_argument("-p", "--password", help="admin password on Azure VMs (never kept)")
    azure.add_argument("-k", "--ssh-key", help="admin SSH public key on Azure VMs")
    azure.add_argument("--generate-ssh-keys", action="store_true", help="make an SSH key pair for the admin")
    azure.add_argument("-i", "--image", help="VM image alias (UbuntuLTS, UbuntuDSVM)")
    azure.add_argument("--custom-image", help="custom VM image id")
    azure.add_argument("--subnet", help="virtual network subnet id")
    slurm = create.add_argument_group("slurm backend (--backend slurm: the cluster's nodes are Slurm's)")
    slurm.add_argument("--partition", help="Slurm partition for jobs and nodes")
    slurm.add_argument("--account", help="sbatch --account")
    slurm.add_argument("--qos", help="sbatch --qos")
    slurm.add_argument("--gres", help="sbatch --gres for every node, e.g. gpu:a100:4")
    slurm.add_argument("--gpus-per-node", type=int, help="GPUs each job asks per node (--gres=gpu:N)")
    slurm.add_argument("--sbatch-option", action="append", help="an extra sbatch option (repeatable)")
    slurm.add_argument("--max-nodes-in-use", type=int, help="cap on nodes this cluster's jobs hold at once")
    slurm.add_argument("--shared-root", help="directory on the file system shared with the nodes")
    ssh = create.add_argument_group("ssh backend (--backend ssh: the cluster's nodes are your machines)")
    ssh.add_argument("--hosts", type=_ssh_hosts, help="user@host[:port],... (one node per host by default)")
    ssh.add_argument(
        "--key", type=_local_path, help="private key file to log in with (default: the SSH agent, ~/.ssh/id_*)"
    )
    ssh.add_argument(
        "--known-hosts", type=_local_path, help="known_hosts file host keys are checked against (~/.ssh/known_hosts)"
    )
    ssh.add_argument(
        "--trust-on-first-use",
        action="store_const",
        const=True,
        help="record an unknown host key instead of refusing it",
    )
    ssh.add_argument("--python", help="Python on the hosts (default python3)")
    ssh.add_argument("--node-root", help="working directory on each host (default ~/.batchai-node)")
    for verb in ("show", "delete", "resize", "auto-scale"):
        parser = cluster.add_parser(verb, help=f"{verb} a cluster")
        _scope(parser)
        parser.add_argument("-n", "--name", required=True)
        if verb == "delete":
            _yes(parser)
        if verb == "resize":
            parser.add_argument("-t", "--target", type=int, required=True, help="new number of nodes")
            parser.add_argument(
                "--deallocation",
                default="requeue",
                choices=["requeue", "terminate", "waitforjobcompletion"],
                help="what happens to jobs on removed nodes (default requeue)",
            )
        if verb == "auto-scale":
            parser.add_argument("--min", type=int, required=True)
            parser.add_argument("--max", type=int, required=True)
            parser.add_argument("--idle", type=float, help="idle seconds before scale-down")
    _scope(cluster.add_parser("list", help="list clusters"))
    node_verbs = cluster.add_parser(
        "node", help="nodes of a cluster: `cluster node list -n NAME`, `cluster node exec NODE -- CMD`"
    ).add_subparsers(dest="node_verb", required=True)
    node = node_verbs.add_parser("list", help="list a cluster's nodes (with their IP and SSH port)")
    _scope(node)
    node.add_argument("-n", "--name", "-c", "--cluster", dest="name", required=True)
    node = node_verbs.add_parser(
        "exec",
        help="run a command on a node: `cluster node exec NODE -- CMD ARGS` or az's "
        '`cluster node exec -c CLUSTER -n NODE --exec "CMD"`',
    )
    _scope(node)
    node.add_argument("-c", "--cluster", help="the node's cluster (default: the one that has NODE)")
    node.add_argument("-n", "--name", help="ours: the cluster; with -c or --exec (az): the node")
    add_exec_arguments(node, job=False)
    files = cluster.add_parser("file", help="setup-task logs: `cluster file list -n NAME`")
    files.add_argument("file_verb", choices=["list"])
    _scope(files)
    files.add_argument("-n", "--name", "-c", "--cluster", dest="name", required=True)
    files.add_argument("-p", "--path", default=".")


def _add_job_parsers(sub) -> None:
    job = sub.add_parser("job", help="jobs").add_subparsers(dest="verb", required=True)
    create = job.add_parser("create", help="submit a job from job.json (Batch AI or native spec)")
    _scope(create, experiment=True)
    create.add_argument("-n", "--name", help="job name (or `name` in the file)")
    create.add_argument("-c", "--cluster", "-r", "--cluster-name", dest="cluster", help="cluster name or ARM id")
    create.add_argument("-f", "--config-file", required=True)
    create.add_argument("--image", help="run the job's tasks in this image (its containerSettings image)")
    _add_az_storage_flags(create, cluster=False)
    listing = job.add_parser("list", help="list jobs")
    _scope(listing, experiment=True)
    listing.add_argument("--state", choices=["queued", "running", "terminating", "succeeded", "failed"])
    for verb in ("show", "wait", "terminate", "delete"):
        parser = job.add_parser(verb, help=f"{verb} a job")
        _scope(parser, experiment=True)
        parser.add_argument("-n", "--name", "-j", "--job", dest="name", required=True)
        if verb in ("terminate", "delete"):
            _yes(parser)
        if verb == "delete":
            parser.add_argument(
                "--keep-files", action="store_true", help="keep the job's stdouterr and outputs (deleted by default)"
            )
    node_verbs = job.add_parser(
        "node", help="nodes a job runs on: `job node list -n JOB`, `job node exec -n JOB -- CMD`"
    ).add_subparsers(dest="node_verb", required=True)
    node = node_verbs.add_parser("list", help="the nodes the job runs on")
    _scope(node, experiment=True)
    node.add_argument("-n", "--name", "-j", "--job", dest="name", required=True)
    node = node_verbs.add_parser(
        "exec",
        help="run a command on a node of the job: `job node exec -n JOB -- CMD ARGS` or az's "
        '`job node exec -j JOB -n NODE --exec "CMD"`',
    )
    _scope(node, experiment=True)
    node.add_argument("-j", "--job", help="the job (az's form; -n is then the node)")
    node.add_argument("-n", "--name", help="ours: the job; with -j (az): the node")
    add_exec_arguments(node, job=True)
    files = job.add_parser("file", help="`job file list` / `job file stream`")
    files.add_argument("file_verb", choices=["list", "stream"])
    _scope(files, experiment=True)
    files.add_argument("-n", "--name", "-j", "--job", dest="name", required=True)
    files.add_argument("-d", "--output-directory-id", default="stdouterr")
    files.add_argument("-p", "--path", default=".")
    files.add_argument("-f", "--file-name", default="stdout.txt", help="file to stream (default stdout.txt)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batchai", description="Batch AI for Jupyter: clusters, jobs and storage.")
    parser.add_argument(
        "-o",
        "--output",
        choices=["table", "json"],
        default=None,
        help="output format (default: table for lists, json for one resource)",
    )
    sub = parser.add_subparsers(dest="group", required=True)
    workspace = sub.add_parser("workspace", help="workspaces").add_subparsers(dest="verb", required=True)
    for verb in ("create", "show", "delete", "list"):
        parser_ = workspace.add_parser(verb, help=f"{verb} workspaces")
        parser_.add_argument(
            "-g", "--resource-group", help="the workspace's resource group in its ARM id (list: only those in it)"
        )
        if verb != "list":
            parser_.add_argument("-n", "--name", required=True)
        if verb == "create":
            parser_.add_argument("-l", "--location", help="the workspace's location in ARM (default: the service's)")
        if verb == "delete":
            _yes(parser_)
    experiment = sub.add_parser("experiment", help="experiments").add_subparsers(dest="verb", required=True)
    for verb in ("create", "show", "delete", "list"):
        parser_ = experiment.add_parser(verb, help=f"{verb} experiments")
        _scope(parser_)
        if verb != "list":
            parser_.add_argument("-n", "--name", required=True)
        if verb == "delete":
            _yes(parser_)
        if verb == "create":
            parser_.add_argument(
                "--mlflow-tracking-uri",
                help="record this experiment's jobs as MLflow runs there (default: the service's)",
            )
    add_runs_parser(experiment, _scope)
    _add_cluster_parsers(sub)
    _add_job_parsers(sub)
    add_storage_parsers(sub, _scope, _yes)
    add_sweep_parsers(sub, _scope, _yes)
    serve = sub.add_parser(
        "serve",
        help="run the service headless (no notebook UI); `serve status` shows the "
        "services running here, `serve stop` stops the one of this home",
    )
    serve.add_argument(
        "action",
        nargs="?",
        choices=("status", "stop"),
        help="status: which services run here (URL, pid, version, home); stop: stop the `batchai "
        "serve` of this home (--home, else $BATCHAI_HOME, else the default)",
    )
    serve.add_argument("--ip", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--token", help=argparse.SUPPRESS)  # refused with the reason: argv is public
    serve.add_argument(
        "--token-file",
        help="file holding the API token, readable only by you (mode 600); "
        "default: $BATCHAI_TOKEN, else a random one (printed)",
    )
    serve.add_argument(
        OPT_OUT_FLAG,
        action="store_true",
        help="serve WITHOUT authentication, because a proxy in front authenticates every "
        "request (logged at every start)",
    )
    serve.add_argument("--home", help="state directory (default: $BATCHAI_HOME)")
    serve.add_argument(
        "--mlflow-tracking-uri",
        help="record every job as an MLflow run there (default: $MLFLOW_TRACKING_URI); credentials go in "
        "MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN, never in the URI",
    )
    usages = sub.add_parser("list-usages", help="clusters and their nodes' CPUs (az batchai list-usages)")
    usages.add_argument("-l", "--location", help="accepted for az command lines: one service has one location")
    demo = sub.add_parser("demo", help="run a 2-node distributed job on a local cluster and watch it")
    demo.add_argument("--nodes", type=int, default=2)
    _add_output_option(sub)
    return parser


def _add_output_option(subparsers) -> None:
    """`-o json|table` after the verb too (`batchai job list -o json`), as az accepts it anywhere."""
    for name, leaf in subparsers.choices.items():
        nested = [a for a in leaf._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            _add_output_option(nested[0])
        elif name not in ("serve", "demo"):
            leaf.add_argument(
                "-o",
                "--output",
                choices=["table", "json"],
                default=argparse.SUPPRESS,
                help="output format (default: table for lists, json for one resource)",
            )


COMMANDS = {
    "workspace": workspace_command,
    "experiment": experiment_command,
    "cluster": cluster_command,
    "job": job_command,
    "serve": serve_command,
    "demo": demo_command,
    "list-usages": lambda args: _client().usages(),
    "datastore": datastore_command,
    "file-server": file_server_command,
    "sweep": sweep_command,
}


def _with_closest(failure: BatchAIError, args) -> BatchAIError:
    """A missing cluster or job named with the closest one that exists (a typo, most often)."""
    workspace = getattr(args, "workspace", None)
    if not (workspace and missing_name(failure)):
        return failure
    try:
        client = _client()
    except BatchAIError:
        return failure
    return with_closest(failure, client, workspace, getattr(args, "experiment", None))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(build_parser(), argv)
    try:
        result = COMMANDS[args.group](args)
    except BatchAIError as failure:
        print(f"error: {_with_closest(failure, args).message}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except requests.RequestException as failure:  # timeouts, broken connections: one line, no traceback
        print(
            f"error: talking to the batchai service failed ({type(failure).__name__}: {failure}); "
            "check that it is running and retry",
            file=sys.stderr,
        )
        raise SystemExit(1) from None
    if result is not None:
        print_result(args, result)


if __name__ == "__main__":
    main()
