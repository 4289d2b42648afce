"""IPython magics of experiments: %batchai_runs (the run history, as a RunCompare widget) and %%batchai_sweep
(the cell is a sweep's trial script; shown as a live SweepMonitor)."""

from __future__ import annotations

import os

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from ..errors import BatchAIError
from ..run_tables import print_rows, run_rows
from .magics import _comma_list, _help, _progress_bar, user_errors
from .submit import FRAMEWORKS, CellJobOptions, load_config, prepare_cell
from .sweep_magic_args import early_termination, parse_parameter
from .workspace import Workspace


@magics_class
class ExperimentMagics(Magics):
    @property
    def workspace(self) -> Workspace:
        magics = self.shell.magics_manager.registry.get("BatchAIMagics") if self.shell else None
        if magics is not None:
            return magics.workspace  # the same workspace (and connection) as %batchai_cluster's
        return Workspace()

    @magic_arguments()
    @argument("experiment", nargs="?", default="default", help="the experiment (default: default)")
    @argument("--sort-by", help="a metric (its final value), METRIC.min / METRIC.max, or name, created, duration")
    @argument("--descending", action="store_true", help="largest first")
    @argument("--no-widget", action="store_true", help="print a table instead of the RunCompare widget")
    @_help
    @line_magic
    @user_errors
    def batchai_runs(self, args):
        """Compare an experiment's runs: parameters, metrics, duration, state, node-hours."""
        if args.no_widget:
            runs = self.workspace.experiments.runs(args.experiment, args.sort_by, args.descending)
            if runs:
                print_rows(*run_rows(runs, args.sort_by))
            else:
                print(f"experiment '{args.experiment}' has no runs")
            return None
        return self.workspace.experiments.compare(args.experiment, sort_by=args.sort_by, descending=args.descending)

    @magic_arguments()
    @argument("--name", "-n", required=True, help="the sweep's name (its trials are jobs NAME-0, NAME-1, ...)")
    @argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=TYPE(VALUES)",
        help="a parameter, repeatable: lr=loguniform(1e-4,1e-1), width=choice(32,64), x=uniform(0,1), "
        "q=quniform(0,10,2), g=grid(1,2,3); the trial sees it as a global (and in batchai_jupyter.runtime.params())",
    )
    @argument("--metric", default="loss", help="the primary metric trials log with log_metric (default loss)")
    @argument("--goal", choices=["minimize", "maximize"], default="minimize")
    @argument("--sampler", choices=["random", "grid", "tpe"], default="random")
    @argument("--seed", type=int, help="the sampler's seed")
    @argument("--max-trials", type=int, help="trials in all (a grid: its size)")
    @argument("--max-concurrent", type=int, default=1, help="trials running at once (default 1)")
    @argument("--policy", choices=["median", "bandit", "truncation", "asha"], help="early termination")
    @argument("--delay", type=int, help="steps before a trial is first evaluated (delayEvaluation)")
    @argument("--interval", type=int, help="steps between evaluations")
    @argument("--slack-factor", type=float, help="bandit: relative slack to the best trial")
    @argument("--slack-amount", type=float, help="bandit: absolute slack to the best trial")
    @argument("--startup-trials", type=int, help="median/truncation: completed trials before pruning starts")
    @argument("--cluster", "-c", help="cluster the trials run on (default: the workspace's only cluster)")
    @argument("--nodes", type=int, help="nodes per trial")
    @argument("--framework", choices=FRAMEWORKS, help="toolkit that launches the cell (default custom)")
    @argument("--files", nargs="+", default=[], metavar="GLOB", help="files shipped with the cell")
    @argument("--push", action="append", metavar="VAR,...", help="notebook variables the trials get as globals")
    @argument("--env", nargs="+", default=[], metavar="K=V", help="environment variables of the trials")
    @argument("--experiment", "-e", default="default", help="experiment (created when missing)")
    @argument("--replace", action="store_true", help="a sweep of that name is deleted first (a notebook run again)")
    @argument("--no-monitor", action="store_true", help="return the sweep's JSON instead of a SweepMonitor")
    @argument("-f", "--file", dest="config_file", help="a sweep spec whose fields the options override")
    @_help
    @cell_magic
    @user_errors
    def batchai_sweep(self, args, cell=None):
        """Sweep the cell's parameters: each trial runs the cell as a job; the value is a live SweepMonitor."""
        if not (cell or "").strip():
            raise BatchAIError(
                "MissingCell", "%%batchai_sweep runs the code below its line: write the trial's code there"
            )
        document = dict(load_config(args.config_file)) if args.config_file else {}
        parameters = dict(document.get("parameters") or {})
        parameters.update(parse_parameter(text) for text in args.param)
        if not parameters:
            raise BatchAIError("InvalidArgument", "give the parameters to sweep with --param NAME=TYPE(VALUES)")
        options = CellJobOptions(
            cluster=args.cluster,
            nodes=args.nodes,
            framework=args.framework,
            files=args.files,
            push=_comma_list(args.push),
            env=args.env,
            experiment=args.experiment,
        )
        prepared = prepare_cell(self.workspace, cell, options, self.shell.user_ns, os.getcwd(), progress=_progress_bar)
        document.update(
            name=args.name,
            trial={**prepared.body, **({"cluster": prepared.cluster} if prepared.cluster else {})},
            parameters=parameters,
            primaryMetric=args.metric,
            goal=args.goal,
            sampler={"type": args.sampler, **({"seed": args.seed} if args.seed is not None else {})},
            maxConcurrentTrials=args.max_concurrent,
        )
        if args.max_trials is not None:
            document["maxTrials"] = args.max_trials
        policy = early_termination(
            args.policy, args.delay, args.interval, args.slack_factor, args.slack_amount, args.startup_trials
        )
        if policy:
            document["earlyTermination"] = policy
        sweeps = self.workspace.sweeps
        sweep = sweeps.create(args.experiment, document, replace=args.replace)
        limits = f"up to {sweep['maxTrials']} trials, {sweep['maxConcurrentTrials']} at once"
        print(f"sweep '{sweep['name']}' started: {limits}")
        if args.no_monitor:
            return sweep
        return sweeps.monitor(args.experiment, sweep["name"])
