"""The remainder planner against the cases it shares with the TypeScript planner (test/vectors/remainder.json).

Each case gives the rows of every member, the batch size and the policy; the expected ``steps`` and
``rowsSeen`` are ``planSteps`` in src/protocol/remainder.ts (the feed sender announces ``steps`` in
end-of-data), ``batchSizes`` the real rows of each batch every member's dataset yields here, and
``"error": "RemainderError"`` a plan both sides refuse.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from serverless_tf.input.remainder import RemainderError, batch_sizes, plan_steps, spool_dataset
from serverless_tf.protocol.example import encode_example
from serverless_tf.protocol.schema import MASK, columns_from_json
from serverless_tf.protocol.tfrecord import frame_records

ROOT = Path(__file__).resolve().parents[2]
CASES: list[dict[str, Any]] = json.loads((ROOT / "test/vectors/remainder.json").read_text())
PLANNED = [c for c in CASES if "error" not in c]
COLUMNS = columns_from_json([{"name": "i", "dtype": "INT64", "shape": "scalar"}])


def test_the_shared_cases_cover_every_policy_and_a_refusal():
    assert len(CASES) >= 12
    assert {c["remainder"]["policy"] for c in PLANNED} == {"drop", "pad", "flush"}
    assert all(c["error"] == "RemainderError" for c in CASES if "error" in c) and len(PLANNED) < len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_the_plan_matches_the_shared_case(case):
    policy = case["remainder"]["policy"]
    if "error" in case:
        with pytest.raises(RemainderError):
            plan_steps(case["rowsPerMember"], case["batchSize"], policy)
        return

    plan = plan_steps(case["rowsPerMember"], case["batchSize"], policy)

    assert (plan.steps, plan.rows_seen) == (case["steps"], case["rowsSeen"])
    assert [list(s) for s in plan.batch_sizes] == case["batchSizes"]
    assert [batch_sizes(policy, n, case["batchSize"], plan.steps) for n in case["rowsPerMember"]] == case["batchSizes"]


@pytest.mark.parametrize("case", PLANNED, ids=[c["name"] for c in PLANNED])
def test_each_members_spooled_dataset_yields_the_cases_batch_sizes(case, tmp_path):
    policy, batch = case["remainder"]["policy"], case["batchSize"]
    for member, (rows, expected) in enumerate(zip(case["rowsPerMember"], case["batchSizes"])):
        spool = tmp_path / f"worker-{member}.tfrecord"
        spool.write_bytes(frame_records([encode_example({"i": i}, COLUMNS) for i in range(rows)]))

        batches = list(spool_dataset(spool, COLUMNS, policy, rows, batch, case["steps"]))

        real = [int(b[MASK].numpy().sum()) if policy == "pad" else int(b["i"].shape[0]) for b in batches]
        assert real == expected, f"worker-{member}"
        seen = [v for b in batches for v in b["i"].numpy().tolist()]
        assert seen[: sum(expected)] == list(range(sum(expected))), "real rows come in spool order"
