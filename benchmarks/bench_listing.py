"""Listing jobs: a page of 100 from 10,000 jobs against a page of 100 from 100 jobs, side by side.

Two homes are filled the same way, one with 100 jobs and one with --jobs (10,000): the jobs are
made by Service.create_job (one per experiment, on a cluster that never gets nodes) and copied
row by row through the Store, with varied priorities; one in four is failed (terminated while
queued), one in five is in experiment `e2`, the rest are queued. Then, in-process through
Service.list_jobs (what the REST handler calls), each of these is timed --repeats times:

  page 1, no filter            page 1 of state=queued     page 1 of experiment e2
  page 1 of state=failed       the last page (skip = jobs - 100)

and the large store's median is divided by the small store's "page 1, no filter" (a page of 100
of 100 jobs). Over HTTP (unless --no-http), a real `batchai serve` on each home answers the same
first page, timed from the client.

    python benchmarks/bench_listing.py [--jobs 10000] [--repeats 30] [--no-http]

The in-process side runs against whatever batchai_jupyter is imported first, so the same script
measures an older release too (PYTHONPATH=<its checkout>); a release whose list_jobs returns the
whole list is paged here as its handler did.
"""

from __future__ import annotations

import argparse
import inspect
import os
import shutil
import tempfile
import time
import uuid

from _common import Service as ServeProcess
from _common import ms, print_rows, summary, write_result
from batchai_jupyter.core.service import Service, Settings

try:  # a release with a composition root builds its Service there
    from batchai_jupyter.assembly import build_service
except ImportError:  # an older release's Service loads its backends itself
    build_service = Service

PAGE = 100
TARGET_MEDIAN_S = 0.050
TARGET_RATIO = 1.5
PRIORITIES = (0, 100, -100, 0, 7)


def fill(home: str, jobs: int) -> None:
    """`jobs` jobs in `home`, as the module's docstring says."""
    service = build_service(Settings(home=home))
    service.create_experiment("default", "e2")
    service.create_cluster("default", {"backend": "local", "nodeCount": 0}, "never")
    command = {"cluster": "never", "customToolkitSettings": {"commandLine": "true"}}
    templates = {
        experiment: service.store.query_one(  # the stored row, to copy as it is
            "SELECT * FROM jobs WHERE workspace = 'default' AND experiment = ? AND name = ?",
            experiment,
            service.create_job("default", experiment, command, "template")["name"],
        )
        for experiment in ("default", "e2")
    }
    now = time.time()
    with service.store.transaction():
        for experiment in templates:
            service.store.delete("jobs", workspace="default", experiment=experiment, name="template")
        for index in range(jobs):
            template = templates["e2" if index % 5 == 0 else "default"]
            row = {key: value for key, value in template.items() if key != "id"}
            failed = index % 4 == 0
            row.update(
                name=f"job-{index:05d}",
                uuid=uuid.uuid4().hex,
                priority=PRIORITIES[index % len(PRIORITIES)],
                state="failed" if failed else "queued",
                created=now + index * 1e-3,
                state_since=now + index * 1e-3,
                ended=now if failed else None,
            )
            service.store.insert("jobs", **row)
    service.stop()


def list_page(service: Service, experiment: str | None, state: str | None, skip: int) -> list:
    if "limit" in inspect.signature(service.list_jobs).parameters:
        return service.list_jobs("default", experiment, state, skip, PAGE).items
    return service.list_jobs("default", experiment, state)[skip : skip + PAGE]  # a release that listed all


CASES = {  # name: (experiment, state, skip as a function of the number of jobs)
    "page 1, no filter": (None, None, lambda n: 0),
    "page 1, state=queued": (None, "queued", lambda n: 0),
    "page 1, experiment e2": ("e2", None, lambda n: 0),
    "page 1, state=failed": (None, "failed", lambda n: 0),
    "last page (skip = jobs - 100)": (None, None, lambda n: max(n - PAGE, 0)),
}


def time_in_process(homes: dict[int, str], repeats: int) -> dict[int, dict[str, list[float]]]:
    """{number of jobs: {case: seconds}}, the stores and the cases taking turns so that load on the
    machine falls on all alike."""
    services = {jobs: build_service(Settings(home=home)) for jobs, home in homes.items()}
    for service in services.values():
        service.start()
    try:
        samples: dict[int, dict[str, list[float]]] = {jobs: {case: [] for case in CASES} for jobs in homes}
        for round in range(repeats + 1):  # the first round warms up
            for case, (experiment, state, skip) in CASES.items():
                for jobs, service in services.items():
                    start = time.perf_counter()
                    listed = list_page(service, experiment, state, skip(jobs))
                    if round:
                        samples[jobs][case].append(time.perf_counter() - start)
                    assert experiment or state or len(listed) == min(PAGE, jobs), (case, jobs, len(listed))
        return samples
    finally:
        for service in services.values():
            service.stop()


def time_http(homes: dict[int, str], repeats: int) -> dict[int, list[float]]:
    """{number of jobs: seconds} of GET .../jobs?maxresults=100 from a `batchai serve` on a copy of
    each home, taking turns."""
    with ServeProcess(seed_home=homes[PAGE]) as small, ServeProcess(seed_home=homes[max(homes)]) as large:
        serves = {PAGE: small, max(homes): large}
        samples: dict[int, list[float]] = {jobs: [] for jobs in serves}
        for round in range(repeats + 1):
            for jobs, serve in serves.items():
                start = time.perf_counter()
                serve.client.get("workspaces/default/jobs", maxresults=PAGE)
                if round:
                    samples[jobs].append(time.perf_counter() - start)
        return samples


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--no-http", action="store_true", help="skip the `batchai serve` side")
    parser.add_argument("--json", help="write the result here (default benchmarks/results/listing.json)")
    args = parser.parse_args(argv)

    base = tempfile.mkdtemp(prefix="batchai-bench-listing-")
    try:
        homes = {PAGE: os.path.join(base, "small"), args.jobs: os.path.join(base, "large")}
        for jobs, home in homes.items():
            fill(home, jobs)
        timed = time_in_process(homes, args.repeats)
        small, large = ({case: summary(v) for case, v in timed[jobs].items()} for jobs in (PAGE, args.jobs))
        http = {} if args.no_http else {jobs: summary(v) for jobs, v in time_http(homes, args.repeats).items()}
    finally:
        shutil.rmtree(base, ignore_errors=True)

    header = ("measure", f"of {args.jobs} jobs", f"of {PAGE} jobs", f"ratio to {PAGE} of {PAGE}")
    baseline = small["page 1, no filter"]["median"]
    rows = [
        (case, ms(large[case]["median"]), ms(small[case]["median"]), f"{large[case]['median'] / baseline:6.2f}x")
        for case in CASES
    ]
    ratios = {case: large[case]["median"] / baseline for case in CASES}
    first = large["page 1, no filter"]["median"]
    worst = max(large[case]["median"] for case in CASES)
    met = worst <= TARGET_MEDIAN_S and max(ratios.values()) <= TARGET_RATIO
    result = {
        "jobs": args.jobs,
        "page": PAGE,
        "repeats": args.repeats,
        "small": small,
        "large": large,
        "ratios_to_100_of_100": ratios,
        "http": {str(jobs): value for jobs, value in http.items()},
        "headline": {
            "measure": f"median page of {PAGE} of {args.jobs} jobs, in-process",
            "value_s": first,
            "worst_case_s": worst,
            "target_s": TARGET_MEDIAN_S,
            "target_ratio": TARGET_RATIO,
            "met": met,
        },
    }
    print_rows(
        f"A page of {PAGE} jobs, in-process through Service.list_jobs, median of {args.repeats} "
        f"({args.jobs} jobs vs {PAGE} jobs; ratio: large / a page of {PAGE} of {PAGE}, no filter)",
        rows,
        header,
    )
    if http:
        ratio = http[args.jobs]["median"] / http[PAGE]["median"]
        result["http"]["ratio"] = ratio
        print_rows(
            f"GET .../jobs?maxresults={PAGE} through `batchai serve`, median of {args.repeats}",
            [("page 1, no filter", ms(http[args.jobs]["median"]), ms(http[PAGE]["median"]), f"{ratio:6.2f}x")],
            header,
        )
    print(
        f"  target: every page ≤ {TARGET_MEDIAN_S * 1000:.0f} ms and ≤ {TARGET_RATIO}x of a page of {PAGE} of "
        f"{PAGE}: {'met' if met else 'MISSED'} (worst {worst * 1000:.1f} ms, {max(ratios.values()):.2f}x)"
    )
    print(f"  written to {write_result('listing', result, args.json)}")
    return result


if __name__ == "__main__":
    main()
