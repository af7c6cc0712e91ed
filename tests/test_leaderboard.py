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


def test_defenses_rank_by_the_strongest_attack_against_them_and_ties_share():
    matrix = pd.DataFrame(
        {"none": [0.9, 0.2], "tl": [0.4, 0.5], "mid": [0.5, 0.1], "noise": [math.nan, 0.3]},
        index=["gmi", "base"],
    )
    rows = defense_ranking(matrix, True, {"none": 0.99, "tl": 0.95, "mid": 0.9, "noise": 0.99})
    assert [
        (r["defense"], r["rank"], r["worst_case"], r["strongest_attack"], r["attacks"])
        for r in rows
    ] == [
        ("noise", 1, 0.3, "base", 1),
        ("mid", 2, 0.5, "gmi", 2),
        ("tl", 2, 0.5, "base", 2),
        ("none", 4, 0.9, "gmi", 2),
    ]
    assert rows[0]["utility"] == 0.99


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
        "paper": {"attack": paper, "defense": None},
        "examples": examples,
    }


def test_report_aggregates_ranks_cards_and_provenance(tmp_path):
    results = tmp_path / "results" / "mini" / "digits"
    results.mkdir(parents=True)
    example = image_pairs(torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4), [0])
    paper = {"setting": "CelebA, VGG16", "results": {"attack_acc@1": 0.28}}
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
    assert "0.7 &plusmn; 0.1" in html  # mean and std of seeds 0.6 and 0.8 (ddof 0)
    assert 'src="data:image/png;base64,' + example["png"] in html
    assert "CelebA, VGG16" in html and "0.28" in html  # the paper's number beside ours
    assert "0123456789 (dirty)" in html and "abcdef123456" in html and "Test CPU" in html
    payload = json.loads((tmp_path / "site" / "leaderboard.json").read_text())
    section = payload["tasks"][0]
    assert [(r["attack"], r["rank"]) for r in section["attack_ranking"]] == [("gmi", 1), (EVIL, 2)]
    assert [(r["defense"], r["worst_case"]) for r in section["defense_ranking"]] == [
        ("tl", 0.3),
        ("none", 0.7),
    ]
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
