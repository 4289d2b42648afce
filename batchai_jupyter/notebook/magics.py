"""IPython magics: %batchai_cluster, %%batchai_job, %batchai_jobs, %batchai_logs, %batchai_job_show.

Every magic takes `-h/--help`. Mistakes come back as one UsageError line (what, where, what to do),
never as a traceback of ours.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import sys

from IPython.core.error import StdinNotImplementedError, UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display
from traitlets import Integer, Unicode

from ..client.suggest import missing_name, parse_known, with_closest
from ..errors import BatchAIError
from ..formatting import COLUMNS, table
from .packaging import DEFAULT_LIMIT_BYTES, human_size
from .submit import FRAMEWORKS, PRIORITIES, CellJobOptions, load_config, submit_cell
from .workspace import Workspace

CLUSTER_VERBS = ("create", "list", "show", "resize", "auto-scale", "delete")
# What to do about a missing cluster or job, said in magics (the service says it in CLI commands).
MAGIC_HINTS = {
    "cluster": "create it with `%batchai_cluster create {name} --nodes 1` (see `%batchai_cluster list`)",
    "job": "list the jobs with `%batchai_jobs -e {experiment}`",
}


def _comma_list(values: list[str] | None) -> list[str]:
    return [name.strip() for value in values or [] for name in value.split(",") if name.strip()]


def _backend_options(pairs: list[str]) -> dict:
    """--option KEY=VALUE pairs as backendOptions; a VALUE that parses as JSON is taken as JSON."""
    options = {}
    for pair in pairs:
        key, equals, text = pair.partition("=")
        if not equals or not key.strip():
            raise BatchAIError("InvalidOption", f"--option {pair!r}: write KEY=VALUE, e.g. --option partition=debug")
        try:
            options[key.strip()] = json.loads(text)
        except ValueError:
            options[key.strip()] = text
    return options


def without_comment(line: str) -> str:
    """The line up to a `#` that starts a word outside quotes, as a shell reads it: `--nodes 2  # two`
    -> `--nodes 2`, while `--env COLOR=#fff` and `--setup 'echo #1'` keep theirs."""
    quote = ""
    escaped = False
    word_start = True  # after unquoted, unescaped whitespace
    for position, char in enumerate(line):
        if escaped:
            escaped = word_start = False
            continue
        if char == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and word_start:
            return line[:position]
        word_start = not quote and char.isspace()
    return line


def bodiless_cell_magic(lines: list[str]) -> list[str]:
    """`%%batchai_job --help` alone in a cell runs as the line magic: IPython refuses a cell magic without
    a body before the magic could print its help."""
    if lines and lines[0].startswith("%%batchai_job") and not "".join(lines[1:]).strip():
        return [lines[0][1:]]
    return lines


def user_errors(magic):
    """BatchAIError -> one UsageError line; --help prints the magic's full help."""

    @functools.wraps(magic)
    def run(self, line, cell=None):
        try:
            # shell quoting and comments, as in a terminal: --setup 'echo ready'  # comment
            argv = shlex.split(without_comment(line))
        except ValueError as failure:
            raise UsageError(f"%{magic.__name__} {line}: {failure}; check the quotes") from None
        args = parse_known(run.parser, argv)
        if getattr(args, "help", False):
            print(run.__doc__)
            return None
        try:
            return magic(self, args, cell) if cell is not None else magic(self, args)
        except BatchAIError as failure:
            if missing_name(failure):  # a typo? name the closest cluster or job
                experiment = getattr(args, "experiment", None) or "default"
                failure = with_closest(failure, self.workspace.client, self.workspace.name, experiment, MAGIC_HINTS)
            raise UsageError(failure.message) from None

    return run


def _help(function):
    return argument("-h", "--help", action="store_true", help="show this help")(function)


@magics_class
class BatchAIMagics(Magics):
    workspace_name = Unicode("default", help="The workspace the magics work in").tag(config=True)
    package_limit = Integer(
        DEFAULT_LIMIT_BYTES,
        help="Largest cell package (cell + --files + --push) in bytes; bigger data goes with --data",
    ).tag(config=True)

    def __init__(self, shell=None, **kwargs):
        super().__init__(shell=shell, **kwargs)
        self._workspace: Workspace | None = None
        if shell is not None and bodiless_cell_magic not in shell.input_transformers_cleanup:
            shell.input_transformers_cleanup.append(bodiless_cell_magic)

    @property
    def workspace(self) -> Workspace:
        if self._workspace is None or self._workspace.name != self.workspace_name:
            self._workspace = Workspace(self.workspace_name)
        return self._workspace

    # -- clusters ------------------------------------------------------------------------------

    @magic_arguments()
    @argument("verb", nargs="?", choices=CLUSTER_VERBS, default="list", help="what to do (default list)")
    @argument("name", nargs="?", help="the cluster's name (create takes it from -f when omitted)")
    @argument("--nodes", type=int, help="create/resize: number of nodes (manual scale)")
    @argument("--backend", help="create: where nodes run: local (default), ssh, azure, slurm")
    @argument("--min", type=int, help="create/auto-scale: fewest nodes (auto scale)")
    @argument("--max", type=int, help="create/auto-scale: most nodes (auto scale)")
    @argument("--idle", type=float, help="create/auto-scale: idle seconds before a node is released")
    @argument("--setup", help="create: command run on every node when it is provisioned")
    @argument("--priority", choices=["dedicated", "lowpriority"], help="create: VM priority")
    @argument(
        "--low-priority", dest="priority", action="store_const", const="lowpriority", help="create: Spot VMs (azure)"
    )
    @argument("--vm-size", help="create: VM size (sets CPUs/GPUs for known Azure sizes)")
    @argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="create: a backend option, repeatable; VALUE is JSON when it parses, else text, e.g. "
        '--option partition=debug (slurm), --option \'hosts=["me@a","me@b"]\' (ssh)',
    )
    @argument(
        "--native-mounts",
        action="store_true",
        default=None,
        help="create: nodes that have rclone (FUSE) or a kernel CIFS client mount the mountVolumes' Blob "
        "containers and file shares themselves instead of getting a copy",
    )
    @argument("-f", "--file", dest="config_file", help="create: a Batch AI cluster.json or native spec")
    @argument("-y", "--yes", action="store_true", help="delete: do not ask for confirmation")
    @argument(
        "--exist-ok",
        action="store_true",
        help="create: a cluster of that name that exists already is used as it is (a notebook run again)",
    )
    @argument("--no-monitor", action="store_true", help="create/show/resize: print instead of a ClusterMonitor")
    @_help
    @line_magic
    @user_errors
    def batchai_cluster(self, args):
        """Create, list, show, resize, auto-scale or delete a cluster."""
        clusters = self.workspace.clusters
        if args.verb == "list":
            print(table(clusters.list(), COLUMNS["cluster"]))
            return None
        if not args.name and not (args.verb == "create" and args.config_file):
            raise BatchAIError(
                "MissingName",
                f"%batchai_cluster {args.verb}: give the cluster's name, e.g. `%batchai_cluster {args.verb} gpu`",
            )
        if args.verb == "create":
            parameters = load_config(args.config_file) if args.config_file else None
            cluster = clusters.create(
                args.name,
                parameters,
                nodes=args.nodes,
                backend=args.backend,
                min_nodes=args.min,
                max_nodes=args.max,
                idle_seconds=args.idle,
                setup=args.setup,
                priority=args.priority,
                vm_size=args.vm_size,
                backend_options=_backend_options(args.option),
                native_mounts=args.native_mounts,
                exist_ok=args.exist_ok,
            )
        elif args.verb == "show":
            cluster = clusters.get(args.name)
        elif args.verb == "resize":
            if args.nodes is None:
                raise BatchAIError("MissingOption", "%batchai_cluster resize: give the new size with --nodes N")
            cluster = clusters.resize(args.name, args.nodes)
        elif args.verb == "auto-scale":
            if args.min is None or args.max is None:
                raise BatchAIError("MissingOption", "%batchai_cluster auto-scale: give --min N and --max N")
            cluster = clusters.auto_scale(args.name, args.min, args.max, args.idle)
        else:
            self._confirm(f"Delete cluster '{args.name}' (jobs running on it are stopped)", args.yes)
            clusters.delete(args.name)
            print(f"cluster '{args.name}' is being deleted")
            return None
        if args.no_monitor:
            print(table([cluster], COLUMNS["cluster"]))
            return None
        return clusters.monitor(cluster["name"])

    def _confirm(self, question: str, yes: bool) -> None:
        if yes:
            return
        try:
            answer = input(f"{question}? (y/n) ")
        except (EOFError, OSError, StdinNotImplementedError):
            raise BatchAIError("NotConfirmed", f"{question}: no way to ask here; add -y to confirm") from None
        if answer.strip().lower() not in ("y", "yes"):
            raise BatchAIError("NotConfirmed", "cancelled; nothing was deleted")

    # -- jobs ----------------------------------------------------------------------------------

    @magic_arguments()
    @argument("--cluster", "-c", help="cluster to run on (default: the workspace's only cluster)")
    @argument("--nodes", type=int, help="number of nodes (gang-scheduled; default 1)")
    @argument("--processes", type=int, help="processes in all (ranks / TensorFlow workers; default one per node)")
    @argument("--framework", choices=FRAMEWORKS, help="toolkit that launches the cell (default custom)")
    @argument(
        "--files",
        nargs="+",
        default=[],
        metavar="GLOB",
        help="files shipped with the cell (globs relative to the notebook; .gitignore honoured, .git never)",
    )
    @argument(
        "--data",
        nargs="+",
        default=[],
        metavar="NAME=PATH",
        help="upload a file or folder to the "
        "datastore (content-hashed, only once); the job sees it at $AZ_BATCHAI_INPUT_<NAME>",
    )
    @argument("--push", action="append", metavar="VAR,...", help="notebook variables (pickled) the job gets as globals")
    @argument("--pull", action="append", metavar="VAR,...", help="globals of rank 0 brought back: job.result()")
    @argument("--requirements", metavar="FILE", help="pip requirements installed on each node first")
    @argument("--env", nargs="+", default=[], metavar="K=V", help="environment variables of the job")
    @argument("--image", help="run the cell in this image (it needs python3 >= 3.8 on its PATH)")
    @argument(
        "--registry-credentials",
        metavar="VAR",
        help="a notebook variable holding the image registry's {'username': ..., 'password': ...}",
    )
    @argument("--priority", choices=PRIORITIES, help="scheduling priority (default normal)")
    @argument("--retries", type=int, help="times a failed job is retried")
    @argument("--max-time", metavar="DURATION", help="maximum wall-clock time, e.g. 1:00:00, 2h, P1D")
    @argument("--experiment", "-e", default="default", help="experiment (created when missing)")
    @argument("--name", "-n", help="job name (default cell-<time>-<id>)")
    @argument(
        "--replace",
        action="store_true",
        help="with --name: a job of that name is deleted first "
        "(terminated if it runs), so the notebook can be run again",
    )
    @argument(
        "--wait",
        action="store_true",
        help="block until the job ends, streaming its output; interrupting the kernel terminates the job",
    )
    @argument("--detach-on-interrupt", action="store_true", help="with --wait: an interrupt only stops waiting")
    @argument("-f", "--file", dest="config_file", help="a Batch AI job.json or native spec; the cell is its script")
    @_help
    @line_cell_magic
    @user_errors
    def batchai_job(self, args, cell=None):
        """Run the cell as a job on a cluster. The cell's value is a Job handle (`job = _`)."""
        if not (cell or "").strip():
            raise BatchAIError(
                "MissingCell",
                "%%batchai_job runs the code below its line: write the job's code "
                "under `%%batchai_job ...` in the same cell",
            )
        options = CellJobOptions(
            cluster=args.cluster,
            nodes=args.nodes,
            processes=args.processes,
            framework=args.framework,
            files=args.files,
            data=args.data,
            push=_comma_list(args.push),
            pull=_comma_list(args.pull),
            requirements=args.requirements,
            env=args.env,
            priority=args.priority,
            retries=args.retries,
            max_time=args.max_time,
            experiment=args.experiment,
            name=args.name,
            config_file=args.config_file,
            replace=args.replace,
            image=args.image,
            registry_credentials=args.registry_credentials,
        )
        submission = submit_cell(
            self.workspace, cell, options, self.shell.user_ns, os.getcwd(), self.package_limit, progress=_progress_bar
        )
        job = submission.job
        print(
            f"job '{job.name}' submitted to cluster '{job.info['cluster']}' "
            f"(experiment '{job.experiment}', {job.info['executionState']})"
        )
        if args.wait:
            self._wait(job, args.detach_on_interrupt)
        return job

    def _wait(self, job, detach: bool) -> None:
        try:
            job.wait(stream=True)
        except KeyboardInterrupt:
            if detach:
                print(f"\nstopped waiting; job '{job.name}' goes on ({job.state})")
                return
            job.terminate()
            print(f"\ninterrupted: job '{job.name}' terminated (use --detach-on-interrupt to only stop waiting)")
            return
        info = job.refresh()
        print(f"job '{job.name}' {info['executionState']} (exit code {info['executionInfo']['exitCode']})")

    @magic_arguments()
    @argument("--experiment", "-e", help="only this experiment")
    @argument("--state", choices=["queued", "running", "terminating", "succeeded", "failed"], help="only this state")
    @argument("--cluster", "-c", help="only jobs of this cluster")
    @_help
    @line_magic
    @user_errors
    def batchai_jobs(self, args):
        """List jobs, newest last."""
        jobs = self.workspace.jobs.list(args.experiment, args.state, args.cluster)
        print(table(jobs, COLUMNS["job"]) if jobs else "no jobs")

    @magic_arguments()
    @argument("job", help="the job's name")
    @argument("--task", "-t", help="rank or task name (default rank 0 / master)")
    @argument("--stderr", action="store_true", help="stderr instead of stdout")
    @argument("--follow", action="store_true", help="keep printing until the job ends")
    @argument("--experiment", "-e", default="default", help="the job's experiment")
    @_help
    @line_magic
    @user_errors
    def batchai_logs(self, args):
        """Print a job's output."""
        job = self.workspace.jobs.get(args.experiment, args.job)
        text = job.logs(task=args.task, follow=args.follow, stderr=args.stderr)
        if text is not None:
            sys.stdout.write(text)

    @magic_arguments()
    @argument("job", help="the job's name")
    @argument("--experiment", "-e", default="default", help="the job's experiment")
    @_help
    @line_magic
    @user_errors
    def batchai_job_show(self, args):
        """Show a job: its handle, displayed as a live JobMonitor."""
        return self.workspace.jobs.get(args.experiment, args.job)


def _progress_bar(label: str, total: int):
    """An upload progress bar (ipywidgets), shown once there are bytes to send: data the datastore holds
    already is not sent, and an empty "0 B of 0 B" bar said nothing. None when there is nothing at all."""
    if total <= 0:
        return None
    import ipywidgets

    bar = ipywidgets.IntProgress(min=0, max=total, description=label[:20])
    text = ipywidgets.Label()
    shown = False

    def update(sent: int, to_send: int) -> None:
        nonlocal shown
        if to_send <= 0:
            return
        bar.max = to_send
        bar.value = min(sent, to_send)
        text.value = f"{human_size(sent)} of {human_size(to_send)}"
        if not shown:
            display(ipywidgets.HBox([bar, text]))
            shown = True

    return update
