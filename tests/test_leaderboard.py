"""The leaderboard from records alone: rankings against hand-computed values, the charts, the
examples a record carries, method cards with the paper's numbers, provenance and escaping."""

from __future__ import annotations

import base64
import io
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from benchmark.examples import image_pairs, roc_curve_points
from benchmark.registry import ACCESS_LEVELS
from leaderboard.charts import privacy_utility_chart, roc_chart
from leaderboard.rankings import (
    attack_ranking,
    attack_ranking_groups,
    below_floor,
    defense_ranking,
)
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


def _bounds(matrix: pd.DataFrame, halves: dict[str, list[float]]) -> tuple:
    half = pd.DataFrame(halves, index=matrix.index)
    return matrix - half, matrix + half


def test_entries_whose_95_percent_intervals_overlap_share_a_rank():
    # one column, higher is stronger: a 0.8 +- 0.05 = [0.75, 0.85] and b 0.7 +- 0.1 =
    # [0.6, 0.8] overlap (both 1); d 0.58 (no interval) lies below a's and b's intervals (3);
    # c 0.5 +- 0.05 = [0.45, 0.55] lies below a, b and d (4).
    matrix = pd.DataFrame({"none": [0.8, 0.7, 0.5, 0.58]}, index=["a", "b", "c", "d"])
    bounds = _bounds(matrix, {"none": [0.05, 0.1, 0.05, math.nan]})
    rows = attack_ranking(matrix, True, bounds)
    assert {r["attack"]: r["rank"] for r in rows} == {"a": 1, "b": 1, "c": 4, "d": 3}
    # without intervals the exact values decide
    assert {r["attack"]: r["rank"] for r in attack_ranking(matrix, True)} == {
        "a": 1,
        "b": 2,
        "c": 4,
        "d": 3,
    }
    # lower is stronger (a distance): c [0.45, 0.55] is significantly stronger than the rest,
    # d 0.58 than a and b, which overlap (3, 3)
    assert {r["attack"]: r["rank"] for r in attack_ranking(matrix, False, bounds)} == {
        "c": 1,
        "d": 2,
        "a": 3,
        "b": 3,
    }
    # asymmetric (bootstrap) intervals: b [0.69, 0.95] reaches a's 0.9 (rank 1); c [0.2, 0.75]
    # reaches b's but not a's (rank 2 in the column; overall, sports ranking: 1, 1, 3)
    skewed = pd.DataFrame({"none": [0.9, 0.7, 0.5]}, index=["a", "b", "c"])
    low = pd.DataFrame({"none": [0.9, 0.69, 0.2]}, index=skewed.index)
    high = pd.DataFrame({"none": [0.9, 0.95, 0.75]}, index=skewed.index)
    rows = attack_ranking(skewed, True, (low, high))
    assert {r["attack"]: (r["mean_rank"], r["rank"]) for r in rows} == {
        "a": (1, 1),
        "b": (1, 1),
        "c": (2, 3),
    }
    # defenses: the worst case's interval decides ties the same way
    defended = pd.DataFrame({"x": [0.3], "y": [0.35], "z": [0.6]}, index=["gmi"])
    bounds = _bounds(defended, {"x": [0.04], "y": [0.02], "z": [0.01]})
    rows = defense_ranking(defended, True, {}, bounds)
    assert [(r["defense"], r["rank"], r["low"], r["high"]) for r in rows] == [
        ("x", 1, pytest.approx(0.26), pytest.approx(0.34)),
        ("y", 1, pytest.approx(0.33), pytest.approx(0.37)),
        ("z", 3, pytest.approx(0.59), pytest.approx(0.61)),
    ]


def test_attacks_are_ranked_only_on_the_defenses_all_of_their_group_ran_against():
    # records (text): the white-box relaxed-invert ran against "none" only (output defenses do
    # not apply to it); the black-box attacks against all three. Mixed in one ranking,
    # relaxed-invert's single rank 1 would put it above attacks ranked over three defenses.
    matrix = pd.DataFrame(
        {
            "none": [0.9, 0.5, 0.4, 0.1],
            "noise": [math.nan, 0.3, 0.35, 0.1],
            "rounding": [math.nan, 0.45, 0.2, 0.1],
        },
        index=["relaxed", "search", "logit", "public"],
    )
    access = {"relaxed": "whitebox", "search": "scores", "logit": "scores", "public": "none"}
    groups = attack_ranking_groups(matrix, True, access, ACCESS_LEVELS)
    assert [(g["access"], g["defenses"]) for g in groups] == [
        (["scores", "none"], ["none", "noise", "rounding"]),
        (["whitebox"], ["none"]),
    ]
    # search: ranks 1, 2, 1 -> 1.33; logit 2, 1, 2 -> 1.67; public 3, 3, 3
    assert [(r["attack"], r["rank"], round(r["mean_rank"], 2)) for r in groups[0]["rows"]] == [
        ("search", 1, 1.33),
        ("logit", 2, 1.67),
        ("public", 3, 3.0),
    ]
    assert [(r["attack"], r["rank"]) for r in groups[1]["rows"]] == [("relaxed", 1)]
    # a level whose attacks share no defense: each of its attacks is ranked on its own
    odd = pd.DataFrame({"x": [0.5, math.nan], "y": [math.nan, 0.4]}, index=["p", "q"])
    groups = attack_ranking_groups(odd, True, {"p": "label", "q": "label"}, ACCESS_LEVELS)
    assert sorted((g["attacks"][0], g["defenses"]) for g in groups) == [("p", ["x"]), ("q", ["y"])]


def test_an_attack_whose_interval_does_not_clear_the_floor_is_flagged():
    # digits: gan-random (no queries) 0.333 under none; kedmi 0.267 lies under it, gmi's
    # interval [0.3, 0.9] reaches below it (not above the floor either), plgmi's [0.4, 0.8]
    # clears it. Under tl the floor is 0.2 and every interval clears it.
    matrix = pd.DataFrame(
        {"none": [0.333, 0.267, 0.6, 0.6], "tl": [0.2, 0.5, 0.6, 0.7]},
        index=["gan-random", "kedmi", "gmi", "plgmi"],
    )
    low = pd.DataFrame({"none": [0.2, 0.1, 0.3, 0.4], "tl": [0.1, 0.3, 0.4, 0.5]}, matrix.index)
    high = pd.DataFrame({"none": [0.5, 0.4, 0.9, 0.8], "tl": [0.3, 0.7, 0.8, 0.9]}, matrix.index)
    flags = below_floor(matrix, True, ["gan-random"], (low, high))
    assert flags["none"].to_dict() == {
        "gan-random": False,
        "kedmi": True,
        "gmi": True,
        "plgmi": False,
    }
    assert not flags["tl"].any()
    # lower is stronger (a distance): the interval's upper end must lie under the floor
    flags = below_floor(1 - matrix, False, ["gan-random"], (1 - high, 1 - low))
    assert flags["none"].to_dict() == {
        "gan-random": False,
        "kedmi": True,
        "gmi": True,
        "plgmi": False,
    }
    # no floor in the task: nothing is flagged
    assert not below_floor(matrix, True, []).any().any()


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


def _x_of(svg: str, gid: str) -> list[float]:
    group = svg[svg.index(f'id="{gid}"') :]
    group = group[: group.index("</g>")]
    return [
        float(part.split('"')[0])
        for part in group.split("<use ")[1:]
        for part in [part.split(' x="')[1]]
    ]


def test_charts_escape_names_and_place_points_by_value():
    svg = privacy_utility_chart(
        [
            {"defense": EVIL, "kind": "train", "utility_cost": 0.5, "worst_case": 0.2},
            {"defense": "$x$", "kind": "train", "utility_cost": 0.1, "worst_case": 0.21},
            {"defense": "none", "kind": "none", "utility_cost": 0.0, "worst_case": 0.8},
        ],
        "attack_acc@1",
        True,
        floor=0.3,
        salt="t",
    )
    assert EVIL not in svg and "&lt;script&gt;" in svg
    assert "$x$" in svg  # a dollar sign is text, not matplotlib's mathtext
    assert "defense kind: none" in svg and "utility cost: drop of the target" in svg
    assert ">floor<" in svg  # the floor's dashed line is in the legend
    # the larger utility cost lies further right
    assert _x_of(svg, "points-t-none")[0] < min(_x_of(svg, "points-t-train"))
    roc = roc_chart({EVIL: {"fpr": [0, 1], "tpr": [0, 1]}}, "t")
    assert EVIL not in roc and roc.count("<polyline") == 1


def test_chart_labels_of_crowded_points_do_not_overlap():
    # digits: nine defenses at utility cost 0 and nearly the same worst case
    points = [
        {
            "defense": f"defense-{i}",
            "kind": "train",
            "utility_cost": 0.0,
            "worst_case": 0.5 + i / 1000,
        }
        for i in range(9)
    ]
    svg = privacy_utility_chart(points, "attack_acc@1", True, salt="c")
    labels = [
        (float(t.split(' x="')[1].split('"')[0]), float(t.split(' y="')[1].split('"')[0]))
        for t in svg.split("<text ")[1:]
        if ">defense-" in t
    ]
    assert len(labels) == 9
    # label boxes are 8 px high: no two labels on one side share a line
    for i, (x1, y1) in enumerate(labels):
        for x2, y2 in labels[i + 1 :]:
            assert abs(y1 - y2) >= 8 or abs(x1 - x2) > 40


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
    # seeds 0.6 and 0.8 without per-unit scores: mean 0.7, s = 0.1414 (ddof 1), 95%
    # t-interval half-width t_{0.975, 1} * s / sqrt(2) = 12.706 * 0.1 = 1.27
    assert '0.7 <span class="ci">[-0.571, 1.97]</span>' in html
    assert "t-interval over 2 seeds" in html
    assert 'src="data:image/png;base64,' + example["png"] in html
    assert "Table 9 (digits)" in html and "0.28" in html  # the paper's number beside ours
    assert "0123456789 (dirty)" in html and "abcdef123456" in html and "Test CPU" in html
    payload = json.loads((tmp_path / "site" / "leaderboard.json").read_text())
    section = payload["tasks"][0]
    # gmi's [−0.57, 1.97] overlaps EVIL's 0.1 (one seed): they share rank 1 under "none"
    ranking = section["attack_rankings"][0]["rows"]
    assert [(r["attack"], r["rank"]) for r in ranking] == [(EVIL, 1), ("gmi", 1)]
    # the rankings' paper column: gmi's reported number on this task, none for EVIL
    assert [r["reported"] and r["reported"]["value"] for r in ranking] == [
        None,
        0.28,
    ]
    # EVIL failed under tl, so gmi is the only common attack; 0.3 lies inside none's interval
    assert [
        (r["defense"], r["rank"], r["worst_case"], r["common"]) for r in section["defense_ranking"]
    ] == [("none", 1, 0.7, 1), ("tl", 1, 0.3, 1)]
    assert abs(section["defense_ranking"][0]["high"] - 0.7 - 12.7062 * 0.1) < 1e-3
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


def _unit_record(
    attack, defense, seed, per_identity, *, access="scores", kind="train", utility=1.0
):
    record = _record(attack, defense, seed, None, access=access, kind=kind, utility=utility)
    record["metrics"] = {
        "attack_acc@1": {
            "value": float(np.mean(per_identity)),
            "higher_is_better": True,
            "units": {"statistic": "mean", "unit": "identities", "values": per_identity},
        },
        "fid": {
            "value": None,
            "higher_is_better": False,
            "unavailable": "FID Inception weights are not in /hub (offline)",
        },
    }
    return record


def test_report_gives_each_cell_a_bootstrap_interval_flags_floors_and_names_what_is_missing(
    tmp_path,
):
    results = tmp_path / "results" / "mini" / "digits"
    results.mkdir(parents=True)
    records = [
        # the floor: 2 of 6 identities under no defense, 1 of 6 under tl
        _unit_record("gan-random", "none", 0, [1, 1, 0, 0, 0, 0], access="none", kind="none"),
        _unit_record("gan-random", "tl", 0, [1, 0, 0, 0, 0, 0], access="none"),
        # kedmi: 1 of 6 under none, under the floor (0.333); 4 of 6 under tl
        _unit_record("kedmi", "none", 0, [1, 0, 0, 0, 0, 0], kind="none"),
        _unit_record("kedmi", "tl", 0, [1, 1, 1, 1, 0, 0]),
        # plgmi: every identity under none, so its interval is the point 1.0 and clears the floor
        _unit_record("plgmi", "none", 0, [1, 1, 1, 1, 1, 1], kind="none"),
        _unit_record("plgmi", "tl", 0, [1, 1, 1, 1, 0, 0]),
        # plgmi seed 1 under tl: the cell's interval becomes the two-level bootstrap
        _unit_record("plgmi", "tl", 1, [1, 1, 1, 1, 1, 0]),
    ]
    for i, record in enumerate(records):
        (results / f"r{i}.json").write_text(json.dumps(record))
    html = build_report(tmp_path / "results", tmp_path / "site").read_text()
    payload = json.loads((tmp_path / "site" / "leaderboard.json").read_text())
    section = payload["tasks"][0]
    matrix = {row["attack"]: row["cells"] for row in section["matrix"]}
    # kedmi under none: 1/6 with a bootstrap interval over the 6 identities inside [0, 0.5]
    kedmi = matrix["kedmi"][0]
    assert kedmi["value"] == pytest.approx(1 / 6)
    assert 0 <= kedmi["low"] < 1 / 6 < kedmi["high"] <= 0.5 + 1e-9
    assert kedmi["below_floor"] and not matrix["plgmi"][0]["below_floor"]
    assert matrix["plgmi"][0]["low"] == matrix["plgmi"][0]["high"] == 1.0
    assert "bootstrap over 6 identities" in section["interval_methods"]
    assert any(
        m.startswith("two-level bootstrap over 2 seeds") for m in section["interval_methods"]
    )
    # the rankings say where an attack does not clear the floor
    rows = {r["attack"]: r for r in section["attack_rankings"][0]["rows"]}
    assert rows["kedmi"]["below_floor"] == ["none"] and rows["plgmi"]["below_floor"] == []
    assert "not above the floor" in html
    # the summary: plgmi is strongest without a defense, tl lowers it to (4/6 + 5/6) / 2
    summary = section["summary"]
    assert summary["attack"] == "plgmi" and summary["defense"]["name"] == "tl"
    assert summary["defense"]["value"] == pytest.approx(0.75)
    assert summary["defense"]["utility_cost"] == 0.0
    # digits-like utility (1.0 everywhere): the page says why the chart shows no trade-off
    assert section["chart_note"].startswith("No trade-off to see here")
    # FID could not be computed: n/a with its reason, once, in the table's caption
    assert section["unavailable"] == {"fid": "FID Inception weights are not in /hub (offline)"}
    assert html.count("FID Inception weights are not in /hub (offline)") == 1
    # the CSV keeps the interval ends and drops the columns no cell fills
    table = pd.read_csv(tmp_path / "site" / "leaderboard.csv")
    assert {"attack_acc@1_low", "attack_acc@1_high", "interval"} <= set(table.columns)
    assert "fid" not in table.columns and "fid_low" not in table.columns
    assert table.notna().any().all()
