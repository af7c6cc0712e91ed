"""The leaderboard from records alone: rankings against hand-computed values, the charts, the
examples a record carries, method cards with the paper's numbers, provenance and escaping."""

from __future__ import annotations

import base64
import io
import json
import math

import numpy as np
import pandas as pd
import torch
from PIL import Image

from benchmark.examples import image_pairs, roc_curve_points
from leaderboard.charts import privacy_utility_chart, roc_chart
from leaderboard.rankings import attack_ranking, defense_ranking
from leaderboard.report import build_report
from metrics.edge_ranking import edge_auc

EVIL = "<script>alert(1)</script>"


def test_attack_ranks_are_means_of_per_defense_ranks_with_ties_sharing():
    # attack_acc@1, higher is stronger. Column none: a 0.9, b 0.9 (tie: both 1), c 0.1 (3).
    # Column tl: a 0.5 (2), b 0.6 (1), c n/a. Means: a 1.5, b 1.0, c 3.0.
    matrix = pd.DataFrame(
        {"none": [0.9, 0.9, 0.1], "tl": [0.5, 0.6, math.nan]}, index=["a", "b", "c"]
    )
    rows = attack_ranking(matrix, higher_is_stronger=True)
    assert [(r["attack"], r["rank"], r["mean_rank"], r["defenses"]) for r in rows] == [
        ("b", 1, 1.0, 2),
        ("a", 2, 1.5, 2),
        ("c", 3, 3.0, 1),
    ]
    # lower is stronger (e.g. a distance). none: c 1, a and b tie at 2; tl: a 1, b 2.
    rows = attack_ranking(matrix, higher_is_stronger=False)
    assert [(r["attack"], r["rank"], r["mean_rank"]) for r in rows] == [
        ("c", 1, 1.0),
        ("a", 2, 1.5),
        ("b", 3, 2.0),
    ]
    # equal mean ranks share the rank
    even = pd.DataFrame({"none": [0.9, 0.5], "tl": [0.5, 0.9]}, index=["a", "b"])
    assert [r["rank"] for r in attack_ranking(even, True)] == [1, 1]


def test_defenses_rank_on_the_attacks_common_to_all_and_show_their_worst_case():
    # gmi is white-box: n/a against the output defense "noise". Ranked on gmi, "none" (0.9)
    # would lose to "noise", judged only by the weaker "base" (0.3). On the common attack
    # (base): mid 0.1, none 0.2, noise 0.3, tl 0.5; the worst case over each defense's own
    # attacks is shown beside it.
    matrix = pd.DataFrame(
        {"none": [0.9, 0.2], "tl": [0.4, 0.5], "mid": [0.5, 0.1], "noise": [math.nan, 0.3]},
        index=["gmi", "base"],
    )
    rows = defense_ranking(matrix, True, {"none": 0.99, "tl": 0.95, "mid": 0.9, "noise": 0.99})
    assert [
        (r["defense"], r["rank"], r["worst_case"], r["strongest_attack"], r["common"]) for r in rows
    ] == [
        ("mid", 1, 0.1, "base", 1),
        ("none", 2, 0.2, "base", 1),
        ("noise", 3, 0.3, "base", 1),
        ("tl", 4, 0.5, "base", 1),
    ]
    assert [(r["worst_case_any"], r["strongest_attack_any"], r["attacks"]) for r in rows] == [
        (0.5, "gmi", 2),
        (0.9, "gmi", 2),
        (0.3, "base", 1),
        (0.5, "base", 2),
    ]
    assert rows[0]["utility"] == 0.9
    # with every attack common, exact ties share a rank (sports ranking)
    full = matrix.drop(columns="noise")
    assert [(r["defense"], r["rank"]) for r in defense_ranking(full, True, {})] == [
        ("mid", 1),
        ("tl", 1),
        ("none", 3),
    ]


def test_entries_whose_95_percent_intervals_overlap_share_a_rank():
    # one column, higher is stronger: a 0.8 +- 0.05 = [0.75, 0.85] and b 0.7 +- 0.1 =
    # [0.6, 0.8] overlap (both 1); d 0.58 (one seed, no interval) lies below a's and b's
    # intervals (3); c 0.5 +- 0.05 = [0.45, 0.55] lies below a, b and d (4).
    matrix = pd.DataFrame({"none": [0.8, 0.7, 0.5, 0.58]}, index=["a", "b", "c", "d"])
    halves = pd.DataFrame({"none": [0.05, 0.1, 0.05, math.nan]}, index=matrix.index)
    rows = attack_ranking(matrix, True, halves)
    assert {r["attack"]: r["rank"] for r in rows} == {"a": 1, "b": 1, "c": 4, "d": 3}
    # without intervals (one seed) the exact values decide
    assert {r["attack"]: r["rank"] for r in attack_ranking(matrix, True)} == {
        "a": 1,
        "b": 2,
        "c": 4,
        "d": 3,
    }
    # defenses: the worst case's interval decides ties the same way
    defended = pd.DataFrame({"x": [0.3], "y": [0.35], "z": [0.6]}, index=["gmi"])
    halves = pd.DataFrame({"x": [0.04], "y": [0.02], "z": [0.01]}, index=["gmi"])
    rows = defense_ranking(defended, True, {}, halves)
    assert [(r["defense"], r["rank"], r["interval"]) for r in rows] == [
        ("x", 1, 0.04),
        ("y", 1, 0.02),
        ("z", 3, 0.01),
    ]


def test_roc_points_match_the_auc_and_are_thinned():
    rng = np.random.default_rng(0)
    positive, negative = rng.normal(1, 1, 500), rng.normal(0, 1, 500)
    curve = roc_curve_points(positive, negative)
    assert len(curve["fpr"]) <= 64 and curve["fpr"][0] == 0 and curve["tpr"][-1] == 1
    assert all(np.diff(curve["fpr"]) >= 0) and all(np.diff(curve["tpr"]) >= 0)
    fpr, tpr = np.array(curve["fpr"]), np.array(curve["tpr"])
    area = float(((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2).sum())
    assert abs(area - edge_auc(positive, negative)) < 0.01
    # ties: one point per distinct threshold
    tied = roc_curve_points(np.array([1.0, 1.0]), np.array([1.0, 0.0]))
    assert (tied["fpr"], tied["tpr"]) == ([0.0, 0.5, 1.0], [0.0, 1.0, 1.0])


def test_image_examples_put_each_private_image_above_its_reconstruction():
    private = torch.zeros(3, 1, 8, 8)
    private[1] = 1.0
    reconstructed = torch.full((3, 1, 8, 8), 0.5)
    example = image_pairs(private, reconstructed, [4, 7, 9])
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(example["png"]))))
    scale = image.shape[0] // 16
    assert image.shape == (16 * scale, 24 * scale) and example["identities"] == [4, 7, 9]
    assert image[0, 0] == 0 and image[0, 8 * scale] == 255  # private row
    assert (image[8 * scale :] == 128).all()  # reconstruction row


def test_charts_escape_names_and_place_points_by_value():
    svg = privacy_utility_chart(
        [
            {"defense": EVIL, "kind": "train", "utility": 0.5, "worst_case": 0.2},
            {"defense": "none", "kind": "none", "utility": 1.0, "worst_case": 0.8},
        ],
        "attack_acc@1",
        True,
    )
    assert EVIL not in svg and "&lt;script&gt;" in svg
    assert "defense kind: none" in svg and "utility: the defended target" in svg
    circles = [float(c.split('cx="')[1].split('"')[0]) for c in svg.split("<circle")[1:]]
    assert circles[0] < circles[1]  # the lower utility lies further left
    roc = roc_chart({EVIL: {"fpr": [0, 1], "tpr": [0, 1]}}, "t")
    assert EVIL not in roc and roc.count("<polyline") == 1


def _record(
    attack,
    defense,
    seed,
    value,
    *,
    access="whitebox",
    kind="train",
    utility=0.9,
    paper=None,
    examples=None,
    status="ok",
):
    return {
        "schema_version": 1,
        "suite": "mini",
        "task": "digits",
        "attack": attack,
        "defense": defense,
        "seed": seed,
        "status": status,
        "modality": "image",
        "access": access,
        "defense_kind": kind,
        "primary_metric": "attack_acc@1",
        "error": None if status == "ok" else f"RuntimeError: {EVIL}",
        "metrics": {"attack_acc@1": {"value": value, "higher_is_better": True}}
        if status == "ok"
        else {},
        "utility": {"test_accuracy": {"value": utility, "higher_is_better": True}},
        "cost": {"seconds": 1.5, "peak_rss_mb": 900, "queries": 10},
        "config": {"attack": {"name": attack, "lr": 0.1}, "defense": {"name": defense}},
        "config_hash": "abcdef1234567890",
        "git": {"sha": "0123456789abcdef", "dirty": True},
        "environment": {"device": "cpu", "cpu": "Test CPU"},
        "finished": "2026-11-23T00:00:00",
        "versions": {"attack": "1.0", "defense": "1.0"},
        "citations": {
            "attack": {
                "title": "A paper",
                "authors": "X et al.",
                "venue": "V",
                "year": 2020,
                "url": "https://example.org/a",
            }
        },
        "reported": {"attack": paper or [], "defense": []},
        "examples": examples,
    }


def test_report_aggregates_ranks_cards_and_provenance(tmp_path):
    results = tmp_path / "results" / "mini" / "digits"
    results.mkdir(parents=True)
    example = image_pairs(torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4), [0])
    paper = [
        {
            "task": "digits",
            "table": "Table 9 (digits)",
            "source": "https://example.org/a",
            "metrics": {"attack_acc@1": 0.28},
        }
    ]
    records = [
        _record("gmi", "none", 0, 0.6, kind="none", paper=paper, examples=example),
        _record("gmi", "none", 1, 0.8, kind="none", paper=paper),
        _record("gmi", "tl", 0, 0.3),
        _record(EVIL, "none", 0, 0.1, kind="none"),
        _record(EVIL, "tl", 0, None, status="failed"),
    ]
    for r in records:
        (
            results / f"{r['attack']}__{r['defense']}__s{r['seed']}.json".replace("/", "_")
        ).write_text(json.dumps(r))
    html = build_report(tmp_path / "results", tmp_path / "site").read_text()
    assert EVIL not in html and html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3
    # seeds 0.6 and 0.8: mean 0.7, s = 0.1414 (ddof 1), 95% t-interval half-width
    # t_{0.975, 1} * s / sqrt(2) = 12.706 * 0.1 = 1.27
    assert "0.7 &plusmn; 1.3" in html
    assert 'src="data:image/png;base64,' + example["png"] in html
    assert "Table 9 (digits)" in html and "0.28" in html  # the paper's number beside ours
    assert "0123456789 (dirty)" in html and "abcdef123456" in html and "Test CPU" in html
    payload = json.loads((tmp_path / "site" / "leaderboard.json").read_text())
    section = payload["tasks"][0]
    # gmi's [−0.57, 1.97] overlaps EVIL's 0.1 (one seed): they share rank 1 under "none"
    assert [(r["attack"], r["rank"]) for r in section["attack_ranking"]] == [(EVIL, 1), ("gmi", 1)]
    # the rankings' paper column: gmi's reported number on this task, none for EVIL
    assert [r["reported"] and r["reported"]["value"] for r in section["attack_ranking"]] == [
        None,
        0.28,
    ]
    # EVIL failed under tl, so gmi is the only common attack; 0.3 lies inside none's interval
    assert [
        (r["defense"], r["rank"], r["worst_case"], r["common"]) for r in section["defense_ranking"]
    ] == [("none", 1, 0.7, 1), ("tl", 1, 0.3, 1)]
    assert abs(section["defense_ranking"][0]["interval"] - 12.7062 * 0.1) < 1e-3
    table = pd.read_csv(tmp_path / "site" / "leaderboard.csv")
    assert len(table) == 4 and table["n_failed"].sum() == 1


def test_the_hardware_column_names_where_the_cell_computed():
    from leaderboard.report import hardware

    env = {"cpu": "AMD EPYC 7B13", "device": "NVIDIA H100 80GB HBM3"}  # GPU 0 of the machine
    on_gpu = {
        "environment": env,
        "compute": {"device": "cuda:1", "amp": True, "device_name": "NVIDIA H100 80GB HBM3"},
    }
    assert hardware(on_gpu) == "NVIDIA H100 80GB HBM3, bf16"
    on_cpu = {
        "environment": env,
        "compute": {"device": "cpu", "amp": False, "cpu_because": "brepmi run(s) on the CPU only"},
    }
    assert hardware(on_cpu) == "AMD EPYC 7B13"  # not the machine's idle GPU
    assert hardware({"environment": env}) == "AMD EPYC 7B13"  # records from before `compute`
    assert hardware({}) == "cpu"
