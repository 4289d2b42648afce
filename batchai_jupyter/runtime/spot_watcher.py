"""Runs on an Azure Spot VM: watches the instance metadata service's scheduled events and, when this VM
is to be preempted, writes a notice file the service reads with its SSH heartbeat.

Azure announces a Spot eviction (`Preempt`) at least 30 seconds ahead; the instance view only shows it
once the VM is gone. With the notice the service requeues the node's job at once, while the VM still
runs. Standard library only: this file is copied to the VM and run by its Python. One watcher per
notice file (a lock): a second one started for the same node exits at once.

    python3 spot_watcher.py IMDS_URL VM_NAME NOTICE_FILE [SECONDS]
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
import urllib.request

API = "/metadata/scheduledevents?api-version=2020-07-01"


def preempt_event(imds: str, vm_name: str) -> dict | None:
    """This VM's Preempt event, if one is scheduled."""
    request = urllib.request.Request(imds.rstrip("/") + API, headers={"Metadata": "true"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # IMDS is never behind a proxy
    with opener.open(request, timeout=5) as answer:
        document = json.load(answer)
    for event in document.get("Events") or []:
        resources = event.get("Resources") or []
        if event.get("EventType") == "Preempt" and (not resources or vm_name in resources):
            return event
    return None


def watch(imds: str, vm_name: str, notice: str, seconds: float) -> None:
    folder = os.path.dirname(notice)
    while os.path.isdir(folder):  # the node's folders go when the node is released: so does the watcher
        try:
            event = preempt_event(imds, vm_name)
        except (OSError, ValueError):
            event = None  # IMDS not answering says nothing about an eviction
        if event is not None:
            with open(notice + ".tmp", "w") as handle:
                json.dump(event, handle)
            os.replace(notice + ".tmp", notice)
            return
        time.sleep(seconds)


def main(argv: list[str]) -> int:
    imds, vm_name, notice = argv[:3]
    seconds = float(argv[3]) if len(argv) > 3 else 1.0
    lock = open(notice + ".lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # this node's watcher runs already
    watch(imds, vm_name, notice, seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
