#!/usr/bin/env python3
"""Writes analyzer/tests/fixtures/stats.json: reference outputs of SciPy, scikit-posthocs and NumPy
for fixed inputs, which analyzer/tests/stats_reference.rs compares the Rust statistics against.

    pip install scipy scikit-posthocs
    python3 scripts/stats_fixtures.py

The inputs are generated from fixed seeds and rounded, so the file is the same on every run with the
same library versions (recorded in the file). CI reads only the committed JSON; rerun this script
when a case is added.
"""

import itertools
import json
import pathlib

import numpy as np
import scikit_posthocs
import scipy
from scipy import stats

OUT = pathlib.Path(__file__).resolve().parent.parent / "analyzer" / "tests" / "fixtures" / "stats.json"
rng = np.random.default_rng(20240607)


def durations(n, median, spread=0.12, decimals=4):
    """Right-skewed durations in s/MiB, like the paper's per-batch upload and download times."""
    return [round(float(v), decimals) for v in median * rng.lognormal(0.0, spread, n)]


def integers(n, low, high):
    """Integer-valued data: heavy ties."""
    return [float(v) for v in rng.integers(low, high + 1, n)]


CASES = {
    "two_platforms_116_batches": [durations(116, 1.05), durations(116, 1.12, 0.15)],
    "two_groups_singleton": [[1.31], durations(6, 0.95)],
    "two_groups_integer_ties": [integers(14, 1, 4), integers(11, 2, 5)],
    "three_groups_unequal_sizes": [durations(10, 0.9), durations(25, 1.0), durations(7, 1.3)],
    "three_groups_separated": [durations(150, 0.8, 0.02), durations(150, 1.0, 0.02), durations(150, 1.3, 0.02)],
    "three_groups_two_decimals": [durations(30, 1.0, 0.1, 2), durations(30, 1.02, 0.1, 2), durations(30, 1.05, 0.1, 2)],
    "four_groups_integer_ties": [integers(12, 1, 5), integers(15, 1, 5), integers(9, 2, 5), integers(20, 1, 3)],
    "four_groups_with_negatives": [
        [round(float(v), 3) for v in rng.normal(0.0, 0.2, 18)],
        [round(float(v), 3) for v in rng.normal(0.1, 0.2, 13)],
        [round(float(v), 3) for v in rng.normal(-0.1, 0.2, 16)],
        [0.0, 0.0, -0.0, 0.05, -0.05],
    ],
    "five_groups_with_singleton": [durations(8, 0.85), [1.5], durations(12, 1.1), durations(6, 1.4), durations(10, 1.0)],
    "five_groups_same_distribution": [durations(20, 1.0) for _ in range(5)],
    # p near 1e-224, deep in the tails of the chi-squared and normal distributions.
    "two_groups_deep_tail": [integers(800, 0, 8000), integers(800, 6000, 14000)],
    # p below the smallest double: SciPy gives 0, which the Rust test meets with an absolute floor.
    "two_groups_beyond_double": [integers(1000, 0, 8000), integers(1000, 7000, 15000)],
}


def descriptives(values):
    v = np.asarray(values)
    p5, q1, median, q3, p95 = np.percentile(v, [5, 25, 50, 75, 95])
    return {
        "n": len(v),
        "mean": float(np.mean(v)),
        # NumPy's ddof=1 std of one value is NaN; the Rust library defines it as 0.
        "sd": float(np.std(v, ddof=1)) if len(v) > 1 else None,
        "median": float(median),
        "q1": float(q1),
        "q3": float(q3),
        "min": float(np.min(v)),
        "max": float(np.max(v)),
        "p5": float(p5),
        "p95": float(p95),
    }


def dunn(groups):
    """Dunn's pairs from scikit-posthocs, with the signed z computed here from SciPy's ranks."""
    raw = scikit_posthocs.posthoc_dunn(groups).to_numpy()
    holm = scikit_posthocs.posthoc_dunn(groups, p_adjust="holm").to_numpy()
    pooled = np.concatenate(groups)
    ranks = stats.rankdata(pooled)
    n = len(pooled)
    _, counts = np.unique(pooled, return_counts=True)
    variance = n * (n + 1) / 12 - np.sum(counts**3 - counts) / (12 * (n - 1))
    bounds = np.cumsum([0] + [len(g) for g in groups])
    mean_ranks = [ranks[bounds[i] : bounds[i + 1]].mean() for i in range(len(groups))]
    pairs = []
    for a, b in itertools.combinations(range(len(groups)), 2):
        z = (mean_ranks[a] - mean_ranks[b]) / np.sqrt(variance * (1 / len(groups[a]) + 1 / len(groups[b])))
        # The z computed here must give scikit-posthocs' unadjusted p.
        assert np.isclose(2 * stats.norm.sf(abs(z)), raw[a, b], rtol=1e-12, atol=0), (a, b)
        pairs.append({"a": a, "b": b, "z": float(z), "p": float(raw[a, b]), "p_holm": float(holm[a, b])})
    return pairs


def case(name, groups):
    h, p = stats.kruskal(*groups)
    pairs = list(itertools.combinations(range(len(groups)), 2))
    mwu = []
    for a, b in pairs:
        r = stats.mannwhitneyu(groups[a], groups[b], alternative="two-sided", method="asymptotic")
        mwu.append({"a": a, "b": b, "u": float(r.statistic), "p": float(r.pvalue)})
    cliffs = []
    for a, b in pairs:
        # The definition over all pairs, independent of the Rust sort-and-search.
        sign = np.sign(np.subtract.outer(np.asarray(groups[a]), np.asarray(groups[b])))
        cliffs.append({"a": a, "b": b, "delta": float(sign.mean())})
    return {
        "name": name,
        "groups": groups,
        "kruskal": {"h": float(h), "df": len(groups) - 1, "p": float(p)},
        "dunn": dunn(groups),
        "mann_whitney": mwu,
        "cliffs_delta": cliffs,
        "descriptives": [descriptives(g) for g in groups],
    }


def main():
    cases = [case(name, groups) for name, groups in CASES.items()]
    # All values equal: SciPy's kruskal returns NaN (H is 0/0); the Rust library returns an error.
    all_equal = [[2.0, 2.0], [2.0, 2.0, 2.0]]
    assert np.isnan(stats.kruskal(*all_equal).statistic)
    cases.append({"name": "all_equal", "groups": all_equal, "kruskal": None})
    document = {
        "generator": "scripts/stats_fixtures.py",
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__, "scikit_posthocs": scikit_posthocs.__version__},
        "cases": cases,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    # One line per case keeps the file short and its diffs per case.
    lines = [json.dumps(c) for c in document.pop("cases")]
    head = json.dumps(document)[:-1]
    OUT.write_text(head + ', "cases": [\n' + ",\n".join(lines) + "\n]}\n")
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
