"""`batchai experiment runs` (the run history) and `batchai sweep ...` (parameter sweeps)."""

from __future__ import annotations

import json
import sys

from .cli_common import confirm, service_client
from .jsonfile import read_json_object
from .run_tables import print_rows, run_rows, trial_rows

RUN_VERB = "runs"


def runs_command(client, args) -> None:
    runs = client.runs(args.workspace, args.name, args.sort_by, args.descending)
    if getattr(args, "output", None) == "json":
        print(json.dumps(runs, indent=2))
        return
    if not runs:
        print(f"experiment '{args.name}' has no runs")
        return
    print_rows(*run_rows(runs, args.sort_by))


def sweep_command(args) -> object:
    client = service_client()
    scope = (args.workspace, args.experiment)
    if args.verb == "create":
        document = read_json_object(args.config_file)
        if args.max_trials is not None:
            document["maxTrials"] = args.max_trials
        if args.max_concurrent is not None:
            document["maxConcurrentTrials"] = args.max_concurrent
        return client.create_sweep(*scope, document, args.name, args.cluster)
    if args.verb == "list":
        return client.sweeps(*scope)
    if args.verb == "show":
        return client.sweep(*scope, args.name)
    if args.verb == "trials":
        trials = client.sweep_trials(*scope, args.name)
        if getattr(args, "output", None) == "json":
            return trials
        print_rows(*trial_rows(trials))
        return None
    if args.verb == "wait":
        sweep = client.wait_for_sweep(
            *scope,
            args.name,
            on_change=lambda s: print(f"Sweep state: {s['state']} trials: {s['trialCounts']}", file=sys.stderr),
        )
        return sweep
    if args.verb == "cancel":
        confirm(args, f"Cancel sweep '{args.name}' (its running trials are terminated)")
        return client.cancel_sweep(*scope, args.name)
    confirm(args, f"Delete sweep '{args.name}' (its trials' jobs stay in the experiment)")
    return client.delete_sweep(*scope, args.name)


def add_runs_parser(experiment_verbs, scope) -> None:
    runs = experiment_verbs.add_parser(RUN_VERB, help="the experiment's runs: params, metrics, duration, node-hours")
    scope(runs)
    runs.add_argument("-n", "--name", required=True, help="the experiment")
    runs.add_argument(
        "--sort-by",
        help="a metric (by its final value), METRIC.min / METRIC.max, or name, created, duration, nodeHours",
    )
    runs.add_argument("--descending", action="store_true", help="largest first")


def add_sweep_parsers(sub, scope, yes) -> None:
    sweep = sub.add_parser("sweep", help="parameter sweeps").add_subparsers(dest="verb", required=True)
    create = sweep.add_parser("create", help="start a sweep from sweep.json")
    scope(create, experiment=True)
    create.add_argument("-f", "--config-file", required=True, help="the sweep spec (trial, parameters, sampler, ...)")
    create.add_argument("-n", "--name", help="sweep name (or `name` in the file)")
    create.add_argument("-c", "--cluster", help="the cluster trials run on (or `cluster` in the file)")
    create.add_argument("--max-trials", type=int, help="trials in all (maxTrials)")
    create.add_argument("--max-concurrent", type=int, help="trials running at once (maxConcurrentTrials)")
    listing = sweep.add_parser("list", help="list an experiment's sweeps")
    scope(listing, experiment=True)
    for verb in ("show", "trials", "wait", "cancel", "delete"):
        parser = sweep.add_parser(verb, help=f"{verb} a sweep")
        scope(parser, experiment=True)
        parser.add_argument("-n", "--name", required=True)
        if verb in ("cancel", "delete"):
            yes(parser)
