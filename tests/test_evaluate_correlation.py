"""Twin-vs-live figures against hand-computed cases (SIMPLER's MMRV, ties included), and the comparison of
an evaluation folder run in parts."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from policies.evaluation.comparison import combine, comparison_table, live_record
from policies.evaluation.correlation import best_ranked_first, mmrv, pearson_r, spearman_rho
from policies.evaluation.report import eval_info, write_json


def test_orders_that_agree_have_no_rank_violation() -> None:
    twin, live = [0.1, 0.5, 0.9], [0.2, 0.4, 0.8]
    assert mmrv(twin, live) == 0.0 and spearman_rho(twin, live) == pytest.approx(1.0)
    assert pearson_r(twin, live) == pytest.approx(0.98198, abs=1e-4)  # 0.24 / sqrt(0.32 * 0.1867)
    assert best_ranked_first(twin, live)


def test_one_swapped_pair() -> None:
    """Policies 1 and 2 swap: each of them has a violation of |0.4 - 0.7| = 0.3, policy 0 none."""
    twin, live = [0.2, 0.6, 0.5], [0.1, 0.4, 0.7]
    assert mmrv(twin, live) == pytest.approx((0.0 + 0.3 + 0.3) / 3)
    assert spearman_rho(twin, live) == pytest.approx(0.5)  # ranks [1, 3, 2] vs [1, 2, 3]
    assert pearson_r(twin, live) == pytest.approx(0.09 / math.sqrt(0.086667 * 0.18), abs=1e-4)
    assert not best_ranked_first(twin, live)


def test_ties_follow_simplers_strict_comparison() -> None:
    """Twin ties 0 and 1, live puts 1 ahead: row 1 counts it (1 > 0 live, not in the twin), row 0 does not."""
    twin, live = [0.5, 0.5, 0.9], [0.3, 0.6, 0.9]
    assert mmrv(twin, live) == pytest.approx(0.3 / 3)
    assert spearman_rho(twin, live) == pytest.approx(1.5 / math.sqrt(1.5 * 2.0))  # average ranks [1.5, 1.5, 3]
    assert best_ranked_first(twin, live)
    assert best_ranked_first([0.9, 0.9, 0.1], [0.5, 0.8, 0.1])  # the best live one shares the twin's first place
    assert math.isnan(pearson_r([0.5, 0.5], [0.1, 0.9]))  # a constant side has no correlation
    with pytest.raises(ValueError):
        mmrv([0.1], [0.2])


def _results(seeds, successes):
    return [{"seed": s, "success": ok, "max_reward": 1.0 if ok else 0.5, "sum_reward": 3.0, "max_coverage": 0.9,
             "steps": 10} for s, ok in zip(seeds, successes)]


def test_a_folder_compared_in_parts(tmp_path) -> None:
    seeds = list(range(1000, 1008))
    twin_rates = {"a": [True] * 6 + [False] * 2, "b": [True] * 2 + [False] * 6, "c": [True] * 4 + [False] * 4}
    live_rates = {"a": [True, True, True, False], "b": [False, False, False, True], "c": [True, True, False, False]}
    for name in ("a", "b"):  # the first part
        write_json(tmp_path / name / "eval_info.json", eval_info(_results(seeds, twin_rates[name]), 1.0))
        eps = [{"seed": s, "success": ok, "truth_success": ok, "truth_coverage": 0.9} for s, ok in zip(seeds, live_rates[name])]
        write_json(tmp_path / "live" / f"{name}.json", live_record(name, eps))
    first = combine(tmp_path)
    assert first["policies"] == 2 and first["mmrv"] == 0.0
    write_json(tmp_path / "c" / "eval_info.json", eval_info(_results(seeds, twin_rates["c"]), 1.0))
    assert combine(tmp_path)["policies"] == 2  # c has no live part yet
    eps = [{"seed": s, "success": True, "truth_success": ok} for s, ok in zip(seeds, live_rates["c"])]
    write_json(tmp_path / "live" / "c.json", live_record("c", eps))
    report = combine(tmp_path)
    assert report["policies"] == 3 and report["twin_episodes"] == 24 and report["live_episodes"] == 12
    rates = {p["policy"]: (p["twin"], p["live"]) for p in report["per_policy"]}
    assert rates == {"a": (0.75, 0.75), "b": (0.25, 0.25), "c": (0.5, 0.5)}  # the live rate is the truth's
    assert report["pearson_r"] == pytest.approx(1.0) and report["best_ranked_first"]
    # seed by seed: the twin's outcomes on the four live seeds, and how many of them the live episodes repeat
    paired = {p["policy"]: (p["twin_on_live_seeds"], p["episode_agreement"]) for p in report["per_policy"]}
    assert paired == {"a": (1.0, 0.75), "b": (0.5, 0.25), "c": (1.0, 0.5)}
    assert report["episode_agreement"] == pytest.approx(6 / 12)
    assert report["pearson_r_live_seeds"] == pytest.approx(np.sqrt(3) / 2)  # (1, .5, 1) against (.75, .25, .5)
    table = comparison_table(report)
    assert "same outcome" in table and "in 50 % of live episodes" in table
    assert json.loads((tmp_path / "comparison.json").read_text())["policies"] == 3
    assert (tmp_path / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    write_json(tmp_path / "live" / "c.json", live_record("c", [{"seed": 5, "success": True}]))
    with pytest.raises(ValueError, match="not evaluated in the twin"):
        combine(tmp_path)
