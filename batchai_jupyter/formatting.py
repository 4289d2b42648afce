"""Table and JSON output for the CLI, with the columns `az batchai` printed."""

from __future__ import annotations

import json
import sys
from typing import Any

from .client.node_load import cpu_text, gpu_text, memory_text

Column = tuple[str, callable]

COLUMNS: dict[str, list[Column]] = {
    "workspace": [("Name", lambda r: r["name"]), ("Created", lambda r: r["creationTime"])],
    "list-usages": [
        ("Name", lambda r: r["name"]),
        ("CurrentValue", lambda r: r["currentValue"]),
        ("Limit", lambda r: r["limit"]),
    ],
    "experiment": [
        ("Name", lambda r: r["name"]),
        ("Workspace", lambda r: r["workspace"]),
        ("Jobs", lambda r: r["jobCount"]),
    ],
    "cluster": [
        ("Name", lambda r: r["name"]),
        ("Workspace", lambda r: r["workspace"]),
        ("Backend", lambda r: r["backend"]),
        ("VM Size", lambda r: r["properties"].get("vmSize")),
        ("State", lambda r: "deleting" if r["provisioningState"] == "deleting" else r["allocationState"]),
        ("Idle", lambda r: r["nodeStateCounts"]["idleNodeCount"]),
        ("Running", lambda r: r["nodeStateCounts"]["runningNodeCount"]),
        ("Preparing", lambda r: r["nodeStateCounts"]["preparingNodeCount"]),
        ("Leaving", lambda r: r["nodeStateCounts"]["leavingNodeCount"]),
        ("Unusable", lambda r: r["nodeStateCounts"]["unusableNodeCount"]),
    ],
    "job": [
        ("Name", lambda r: r["name"]),
        ("Experiment", lambda r: r["experiment"]),
        ("Cluster", lambda r: r["cluster"]),
        ("Tool", lambda r: r["toolType"]),
        ("Nodes", lambda r: r["nodeCount"]),
        ("State", lambda r: r["executionState"]),
        ("Exit code", lambda r: r["executionInfo"]["exitCode"]),
    ],
    "file": [
        ("Name", lambda r: r["name"]),
        ("Type", lambda r: r["fileType"]),
        ("Size", lambda r: r["contentLength"]),
        ("Modified", lambda r: r["lastModified"]),
    ],
    "datastore": [
        ("Name", lambda r: r["name"]),
        ("Kind", lambda r: r["kind"]),
        ("Container", lambda r: r.get("containerName")),
        ("Account", lambda r: r.get("accountName")),
        ("Location", lambda r: r.get("location")),
    ],
    "file-server": [("Name", lambda r: r["name"]), ("Location", lambda r: r.get("location"))],
    "sweep": [
        ("Name", lambda r: r["name"]),
        ("Experiment", lambda r: r["experiment"]),
        ("State", lambda r: r["state"]),
        ("Sampler", lambda r: r["sampler"]),
        ("Trials", lambda r: f"{r['trialsStarted']}/{r['maxTrials']}"),
        ("Pruned", lambda r: r["trialCounts"]["pruned"]),
        (
            "Best",
            lambda r: None if r["bestTrial"] is None else f"{r['bestTrial']['job']} {r['bestTrial']['value']:.4g}",
        ),
    ],
    "node": [
        ("ID", lambda r: r["nodeId"]),
        ("IP", lambda r: r["ipAddress"]),
        ("SSH Port", lambda r: r["port"]),
        ("State", lambda r: r["state"]),
        ("CPU", cpu_text),
        ("Memory", memory_text),
        ("GPU", gpu_text),
    ],
}


# Lists read best as tables; a single resource shows all its fields as JSON unless -o table.
TABLE_VERBS = ("list", "node", "file", "ls")


def _kind(args) -> str | None:
    verb = getattr(args, "verb", "")
    if verb in ("node", "file"):
        return verb
    if verb == "ls":
        return "file"
    return args.group if args.group in COLUMNS else None


def table(rows: list[Any], columns: list[Column]) -> str:
    cells = [[("" if getter(row) is None else str(getter(row))) for _, getter in columns] for row in rows]
    widths = [max([len(title)] + [len(line[i]) for line in cells]) for i, (title, _) in enumerate(columns)]
    lines = [
        "  ".join(title.ljust(width) for (title, _), width in zip(columns, widths, strict=True)).rstrip(),
        "  ".join("-" * width for width in widths),
    ]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in cells]
    return "\n".join(lines)


def print_result(args, result, out=None) -> None:
    out = out or sys.stdout
    kind = _kind(args)
    listing = getattr(args, "verb", "") in TABLE_VERBS or args.group == "list-usages"
    output = args.output or ("table" if listing else "json")
    if output == "json" or kind is None or not isinstance(result, (list, dict)):
        print(json.dumps(result, indent=2), file=out)
        return
    rows = result if isinstance(result, list) else [result]
    print(table(rows, COLUMNS[kind]), file=out)
