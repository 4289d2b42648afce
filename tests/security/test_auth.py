"""Switching auth off by accident, and reading the token from where every local user can see it."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys

import requests

from batchai_jupyter.client import Client

SECRET = "s3cret-token-for-attack-tests"
OFF_BY_CHOICE = "AUTHENTICATION IS OFF by choice"


def test_an_empty_BATCHAI_TOKEN_refuses_to_start(launch):
    output = launch.refused(launch.serve_argv(), BATCHAI_TOKEN="")
    assert "BATCHAI_TOKEN is set but empty" in output, output[-3000:]
    assert "--no-auth-i-have-my-own-proxy" in output
    assert "Traceback" not in output
    assert not launch.listening()


def test_a_token_in_argv_is_refused_even_an_empty_one(launch):
    for token in ("", SECRET):
        output = launch.refused(launch.serve_argv("--token", token))
        assert "--token is no longer accepted" in output and "BATCHAI_TOKEN" in output, output[-3000:]
        assert "Traceback" not in output
        assert not launch.listening()


def test_a_token_file_others_can_read_or_an_empty_one_is_refused(launch, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(SECRET)
    token_file.chmod(0o644)
    output = launch.refused(launch.serve_argv("--token-file", str(token_file)))
    assert "can be read by other users" in output and f"chmod 600 {token_file}" in output, output[-3000:]
    assert SECRET not in output
    token_file.write_text("\n")
    token_file.chmod(0o600)
    output = launch.refused(launch.serve_argv("--token-file", str(token_file)))
    assert "is empty, which would switch authentication off" in output, output[-3000:]


def test_a_0600_token_file_is_the_token_and_never_in_argv(launch, tmp_path, read_cmdline):
    token_file = tmp_path / "token"
    token_file.write_text(SECRET + "\n")
    token_file.chmod(0o600)
    launch.start(launch.serve_argv("--token-file", str(token_file)), token=SECRET)
    assert launch.get("version").status_code == 403
    assert launch.get("version", "wrong").status_code == 403
    assert not any(SECRET in part for part in read_cmdline(launch.process.pid))


def test_the_opt_out_serves_without_auth_and_says_so_at_every_start(launch):
    for start in (1, 2):
        launch.start(launch.serve_argv("--no-auth-i-have-my-own-proxy"))
        assert launch.get("workspaces").status_code == 200
        assert launch.log().count(OFF_BY_CHOICE) == start, launch.log()[-3000:]
        launch.stop()


def test_jupyter_with_an_empty_token_warns_loudly_about_the_api(launch, tmp_path):
    launch.start(launch.jupyter_argv("--IdentityProvider.token="))
    log = launch.log()
    assert "batchai: WARNING: this Jupyter server checks no token or password" in log, log[-3000:]
    assert "c.BatchAIApp.no_auth_i_have_my_own_proxy = True" in log
    launch.stop()
    # Configured through traitlets, the opt-out replaces the warning with the line every start logs.
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / "jupyter_server_config.json").write_text(
        json.dumps({"BatchAIApp": {"no_auth_i_have_my_own_proxy": True}})
    )
    launch.start(launch.jupyter_argv("--IdentityProvider.token="))
    log = launch.log()
    assert log.count("this Jupyter server checks no token") == 1, log[-3000:]
    assert log.count(OFF_BY_CHOICE) == 1


def test_the_service_the_client_starts_has_no_token_in_argv(launch, read_cmdline):
    listed = subprocess.run(
        [sys.executable, "-m", "batchai_jupyter.cli", "workspace", "list", "-o", "json"],
        env=launch.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert "Started a local batchai service" in listed.stderr
    [runtime_file] = glob.glob(os.path.join(launch.env["JUPYTER_RUNTIME_DIR"], "jpserver-*.json"))
    with open(runtime_file) as handle:
        info = json.load(handle)
    try:
        assert len(info["token"]) >= 32
        argv = read_cmdline(info["pid"])
        assert "serve" in argv
        assert not any(info["token"] in part for part in argv), argv
        assert Client(info["url"], info["token"]).workspaces() is not None
    finally:
        os.kill(info["pid"], signal.SIGTERM)


def test_a_token_in_the_query_string_is_never_echoed(shared_service, shared_client, unique):
    token = shared_service.env()["BATCHAI_TOKEN"]
    for _ in range(3):
        shared_client.create_workspace(unique("ws"))
    response = requests.get(
        f"{shared_service.url}batchai/api/v1/workspaces", params={"token": token, "maxresults": 1}, timeout=30
    )
    assert response.status_code == 200, response.text
    assert "nextLink" in response.json()
    assert token not in response.text
    following = requests.get(
        f"{shared_service.url.rstrip('/')}{response.json()['nextLink']}",
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
    assert following.status_code == 200 and token not in following.text
