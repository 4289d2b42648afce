"""Whatever a sweep document holds, parsing it gives a SweepSpec or a BatchAIError naming what is wrong (the
API's 4xx), never another exception (a 500)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from batchai_jupyter.core.sweep_spec import parse_sweep_spec
from batchai_jupyter.errors import BatchAIError

scalars = st.none() | st.booleans() | st.integers(-5, 2**40) | st.floats() | st.text(max_size=8)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
parameter = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["choice", "grid", "uniform", "loguniform", "quniform", "x"]) | values,
        "values": st.lists(scalars, max_size=4) | values,
        "min": scalars,
        "max": scalars,
        "q": scalars,
    },
)
documents = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["s", "x" * 70, ""]) | values,
        "trial": st.just({"cluster": "c", "customToolkitSettings": {"commandLine": "true"}}) | values,
        "parameters": st.dictionaries(st.sampled_from(["x", "lr", "1a", ""]), parameter | values, max_size=3) | values,
        "sampler": st.sampled_from(["random", "grid", "tpe", "bayesian", "no"])
        | st.fixed_dictionaries({"type": values, "seed": values})
        | values,
        "primaryMetric": st.sampled_from(["loss", ""])
        | st.fixed_dictionaries({"name": values, "goal": values})
        | values,
        "goal": st.sampled_from(["minimize", "maximize"]) | values,
        "maxTrials": st.integers(-1, 2000) | values,
        "maxConcurrentTrials": st.integers(-1, 20) | values,
        "earlyTermination": st.fixed_dictionaries(
            {},
            optional={
                "policy": st.sampled_from(["median", "bandit", "asha", "truncation", "none"]) | values,
                "slackFactor": scalars,
                "slackAmount": scalars,
                "truncationPercentage": scalars,
                "evaluationInterval": scalars,
                "delayEvaluation": scalars,
            },
        )
        | values,
    },
)


@settings(max_examples=80, deadline=None, database=None)
@given(document=documents | values)
def test_any_sweep_document_is_parsed_or_refused_with_a_message(document):
    try:
        parse_sweep_spec(document)
    except BatchAIError as refused:
        assert refused.status < 500 and refused.message
