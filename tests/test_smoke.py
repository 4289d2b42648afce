from helpers.api import make_cluster, read_log, submit, wait_job


def test_custom_job_runs_and_logs(client, unique):
    cluster = unique("c")
    make_cluster(client, cluster, nodes=1)
    submit(client, "hello", cluster, {"customToolkitSettings": {"commandLine": "echo hello $AZ_BATCHAI_JOB_NAME"}})
    job = wait_job(client, "hello")
    assert job["executionState"] == "succeeded", job
    assert read_log(client, "hello", "stdout.txt") == "hello hello\n"
