"""Job specs with many environment variables: how parsing scales, and what a flood of them does to
other requests. Side by side in one run:

  in-process  parse_job_spec with N and 4N variables (the spec limits lifted for the measurement):
              linear parsing takes ~4x as long for 4x the variables, quadratic ~16x
  over HTTP   a GET /version alone, and the same GET while --flood clients each submit 100,000
              variables (refused with a 400 by the limits), with the time each flood request took

    python benchmarks/bench_spec_parsing.py [--variables 8000] [--repeats 5] [--flood 6] [--no-http]

The in-process side runs against whatever batchai_jupyter is imported first (PYTHONPATH=<an older
checkout> measures that release; there, keep --variables small: 32,000 took minutes).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import requests

from _common import Service, ms, print_rows, write_result
from batchai_jupyter.core import spec

try:
    from batchai_jupyter.core import limits
except ImportError:  # a release before the limits
    limits = None


def job(variables: int) -> dict:
    return {
        "name": "flood",
        "cluster": "none",
        "toolkit": "custom",
        "commandLine": "true",
        "environmentVariables": [{"name": f"V{i}", "value": "x"} for i in range(variables)],
    }


def parse_seconds(variables: int, repeats: int) -> float:
    document = job(variables)
    if limits is not None:
        limits.MAX_ITEMS_BY_KEY["environmentVariables"] = 10**9
        limits.MAX_VARIABLE_CHARS = 10**12
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        spec.parse_job_spec(document)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def version_seconds(service: Service, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        service.client.version()
        times.append(time.perf_counter() - started)
    return times


def flood(service: Service, clients: int, repeats: int) -> tuple[list[float], list[float], list[int]]:
    body = job(100_000)
    flood_times: list[float] = []
    statuses: list[int] = []

    def submit() -> None:
        started = time.perf_counter()
        response = requests.put(
            f"{service.url}batchai/api/v1/workspaces/default/experiments/default/jobs/flood",
            json=body,
            headers={"Authorization": f"token {service.token}"},
            timeout=600,
        )
        flood_times.append(time.perf_counter() - started)
        statuses.append(response.status_code)

    threads = [threading.Thread(target=submit) for _ in range(clients)]
    for thread in threads:
        thread.start()
    during = version_seconds(service, repeats)
    for thread in threads:
        thread.join()
    return during, flood_times, statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variables", type=int, default=8000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--flood", type=int, default=6)
    parser.add_argument("--no-http", action="store_true", help="the in-process side only (for older releases)")
    args = parser.parse_args()
    small, large = parse_seconds(args.variables, args.repeats), parse_seconds(4 * args.variables, args.repeats)
    rows = [
        (
            f"parse {args.variables} / {4 * args.variables} variables",
            ms(large),
            ms(small),
            f"{large / small:.1f}x (linear ~4, quadratic ~16)",
        )
    ]
    alone, during, flood_times, statuses = 0.0, [], [], []
    if not args.no_http:
        with Service() as service:
            alone = statistics.median(version_seconds(service, 20))
            during, flood_times, statuses = flood(service, args.flood, 20)
        rows += [
            (
                f"GET version during {args.flood} x 100,000-variable submits / alone",
                ms(statistics.median(during)),
                ms(alone),
                f"{statistics.median(during) / alone:.1f}x",
            ),
            (
                "100,000-variable submit, slowest of the flood",
                ms(max(flood_times)),
                "",
                f"statuses {sorted(set(statuses))}",
            ),
        ]
    print_rows("job specs with many environment variables", rows, ("measure", "value", "baseline", "ratio"))
    write_result(
        "bench_spec_parsing",
        {
            "parse_small_s": small,
            "parse_large_s": large,
            "variables": args.variables,
            "version_alone_s": alone,
            "version_during_flood_s": during,
            "flood_s": flood_times,
            "flood_statuses": statuses,
        },
    )


if __name__ == "__main__":
    main()
