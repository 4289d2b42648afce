"""'Did you mean': the closest existing name to a mistyped cluster, job or option (client/suggest.py)."""

from __future__ import annotations

import argparse

from batchai_jupyter.client.suggest import option_hint, retold
from batchai_jupyter.errors import BatchAIError, NotFound


def test_a_missing_cluster_is_retold_with_the_closest_name_and_the_faces_hint():
    missing = NotFound("cluster", "gpux", "create it with `batchai cluster create -w default -n gpux`")
    assert retold(missing, {"gpu": "'gpu'", "cpu-pool": "'cpu-pool'"}).message == (
        "cluster 'gpux' not found (did you mean 'gpu'?); create it with `batchai cluster create -w default -n gpux`"
    )
    told = retold(missing, {"zebra": "'zebra'"}, "create it with `%batchai_cluster create gpux`")
    assert told.message == "cluster 'gpux' not found; create it with `%batchai_cluster create gpux`"
    assert (told.code, told.status) == ("ClusterNotFound", 404)


def test_other_errors_pass_unchanged():
    other = BatchAIError("InvalidSpec", "nodeCount: 0 is not valid")
    assert retold(other, {"gpu": "'gpu'"}, "hint") is other


def test_option_hints_compare_names_without_their_dashes():
    parser = argparse.ArgumentParser()
    for flag in ("--nodes", "--qos", "--wait", "-n"):
        parser.add_argument(flag)
    assert option_hint(parser, "--nodse") == "; did you mean --nodes?"
    assert option_hint(parser, "--wiat=1") == "; did you mean --wait?"
    assert option_hint(parser, "--zzzzzz") == ""
