"""Makes store-v0.sql and store-v0-listing.json with the release that had no schema version (970ec42):
`PYTHONPATH=<checkout of 970ec42> python tests/data/make_store_v0.py` writes them to the current directory;
then replace the home path in the dump by @BATCHAI_HOME@. Not a test: kept to show how the fixture was made."""
import json
import os
import shutil
import sqlite3
import time

import batchai_jupyter
print("making the fixture with", batchai_jupyter.__file__)
from batchai_jupyter.core.service import Service, Settings

HOME = "/tmp/batchai-store-v0-home"  # replaced by @BATCHAI_HOME@ in the committed dump
shutil.rmtree(HOME, ignore_errors=True)
service = Service(Settings(home=HOME, heartbeat_seconds=0.5))
service.start()

def wait(condition, what, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")

def state(exp, name):
    return service.get_job("default", exp, name)["executionState"]

service.create_experiment("default", "exp")
service.create_cluster("default", {"backend": "local", "nodeCount": 1}, "cpu")
service.create_cluster("default", {"backend": "local", "nodeCount": 0}, "later")
service.create_job("default", "default", {"cluster": "cpu", "customToolkitSettings": {"commandLine": "echo done-output"}}, "done")
wait(lambda: state("default", "done") == "succeeded", "done")
service.create_job("default", "exp", {"cluster": "cpu", "customToolkitSettings": {"commandLine": "echo failing; exit 3"}}, "failed")
wait(lambda: state("exp", "failed") == "failed", "failed")
service.update_scale("default", "cpu", {"manual": {"targetNodeCount": 0}})
wait(lambda: not service.list_nodes("default", "cpu"), "cpu's node to go")
service.create_job("default", "default", {
    "cluster": "later", "environmentVariables": [{"name": "GREETING", "value": "hello"}],
    "secrets": [{"name": "API_KEY", "value": "s3cr3t-v0"}],
    "customToolkitSettings": {"commandLine": 'test "$API_KEY" = s3cr3t-v0 && echo "$GREETING secret-ok"'}}, "waiting-secret")
service.create_job("default", "exp", {"cluster": "later", "customToolkitSettings": {"commandLine": "echo low-output"}}, "waiting-low")
service.create_job("default", "default", {"cluster": "later", "schedulingPriority": "high",
                                          "customToolkitSettings": {"commandLine": "echo high-output"}}, "waiting-high")
time.sleep(2)
listing = {"all": service.list_jobs("default"), "exp": service.list_jobs("default", "exp"),
           "queued": service.list_jobs("default", None, "queued")}
service.stop()
db = os.path.join(HOME, "batchai.db")
print(db, os.path.exists(db))
connection = sqlite3.connect(db)
print("user_version", connection.execute("PRAGMA user_version").fetchone())
dump = "\n".join(connection.iterdump()) + "\n"
connection.close()
open("store-v0.sql", "w").write(dump)
json.dump(listing, open("store-v0-listing.json", "w"), indent=1, sort_keys=True)
