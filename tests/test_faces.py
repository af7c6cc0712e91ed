"""Faces: the real face tasks and loaders, the model zoo, the image metrics and defenses."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attacks._image_objectives import max_margin_loss, poincare_loss
from benchmark.cli import main
from benchmark.errors import MissingDataError
from benchmark.methods import Unavailable
from benchmark.runner import build_task
from defenses.bido import gaussian_kernel, normalised_hsic
from defenses.dp_sgd import DPSGD
from defenses.mid import MID
from metrics.fid import fid, frechet_distance
from tasks.face_models import build_image_model, load_pretrained
from tests.conftest import SHARED_DATA, compose, needs_shared_data

CELEBA_SUBSET = SHARED_DATA / "faces" / "celeba_subset"


def _task(*overrides):
    return build_task(compose(*overrides))


# Metrics and losses against hand-computed values ----------------------------------------------
def test_frechet_distance_matches_the_closed_form():
    # N([0,0], I) vs N([1,2], 4I): ||d||^2 = 5, tr = 2 + 8 - 2 tr(sqrt(4I)) = 2  ->  7
    assert frechet_distance(
        np.zeros(2), np.eye(2), np.array([1.0, 2.0]), 4 * np.eye(2)
    ) == pytest.approx(7.0)
    sigma = np.array([[2.0, 0.5], [0.5, 1.0]])
    assert frechet_distance(np.ones(2), sigma, np.ones(2), sigma) == pytest.approx(0, abs=1e-6)


def test_fid_without_weights_offline_is_unavailable_never_a_number(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    value = fid(torch.rand(4, 1, 32, 32), torch.rand(4, 1, 32, 32), offline=True)
    assert isinstance(value, Unavailable)
    assert "pt_inception-2015-12-05-6726825d.pth" in value.reason and str(tmp_path) in value.reason


def test_identity_losses_by_hand():
    logits = torch.tensor([[3.0, 1.0, 2.0]])
    label = torch.tensor([0])
    assert max_margin_loss(logits, label).item() == pytest.approx(-1.0)  # -3 + max(1, 2)
    # u = [0.5, 1/6, 1/3], v = [1 - 1e-4, 0, 0]
    u = np.array([0.5, 1 / 6, 1 / 3])
    v = np.array([1 - 1e-4, 0, 0])
    expected = np.arccosh(1 + 2 * ((u - v) ** 2).sum() / ((1 - (u**2).sum()) * (1 - (v**2).sum())))
    assert poincare_loss(logits, label).item() == pytest.approx(expected, rel=1e-4)  # float32


def test_hsic_of_a_kernel_with_itself_is_one_and_independent_noise_is_near_zero():
    torch.manual_seed(0)
    x = torch.randn(64, 5)
    k = gaussian_kernel(x, 1.0)
    assert normalised_hsic(k, k).item() == pytest.approx(1.0, abs=1e-5)
    assert normalised_hsic(k, gaussian_kernel(torch.randn(64, 5), 1.0)).item() < 0.2


# Defenses ------------------------------------------------------------------------------------
def test_mid_is_a_bottleneck_in_training_and_deterministic_at_inference():
    model = MID({"beta": 0.01, "bottleneck": 8}).adapt_target(
        build_image_model("small-cnn", 5, (1, 32, 32), {"width": 8})
    )
    x, y = torch.rand(6, 1, 32, 32), torch.arange(6) % 5
    model.train()
    loss = MID({"beta": 0.01, "bottleneck": 8}).training_step(model, x, y)
    assert model.head.kl.item() > 0 and loss.item() > F.cross_entropy(model(x), y).item() - 10
    model.eval()
    assert torch.equal(model(x), model(x))


def test_dp_sgd_batched_gradient_equals_the_per_example_loop():
    cfg = {"sample_rate": 0.5, "max_grad_norm": 1.0, "noise_multiplier": 0.0, "delta": 1e-5}
    grads = [
        (torch.tensor([3.0, 4.0]), torch.tensor([[0.0]])),  # norm 5 -> scaled by 1/5
        (torch.tensor([0.3, 0.4]), torch.tensor([[0.0]])),
    ]  # norm 0.5 -> unchanged
    params = [torch.zeros(2), torch.zeros(1, 1)]
    looped = DPSGD(cfg).private_gradient(grads, params, num_examples=4)
    # (0.6 + 0.3, 0.8 + 0.4) / (q n = 2)
    assert torch.allclose(looped[0], torch.tensor([0.45, 0.6]))
    batched = DPSGD(cfg).private_gradient_batched(
        [torch.stack([g[0] for g in grads]), torch.stack([g[1] for g in grads])], 4
    )
    assert torch.allclose(batched[0], looped[0])


def test_dp_sgd_replaces_batch_norm_and_reports_epsilon(workdir):
    task = _task("task=digits", "++task.target.epochs=1")
    defense = DPSGD(
        {"sample_rate": 0.25, "max_grad_norm": 1.0, "noise_multiplier": 1.0, "delta": 1e-5}
    )
    model = defense.adapt_target(task.build_target())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    task.use_defense(defense)
    meta = task.train_target(model, progress=False)
    assert meta["privacy"]["steps"] == 4 and 0 < meta["privacy"]["epsilon"] < 10


# Models ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["vgg16", "ir152", "facenet64", "inception-resnet-v1", "ir50", "test_resnet"]
)
def test_face_models_take_64x64_faces(name):
    model = build_image_model(name, 7, (3, 64, 64), {}).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 64))
        features = model.features(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 7) and features.shape == (2, model.feature_dim)


def test_pretrained_weights_load_from_a_local_file_and_offline_trains_from_scratch(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    model = build_image_model("vgg16", 3, (3, 64, 64), {})
    meta = load_pretrained(model, {}, offline=True)
    assert meta["pretrained"] is False and "vgg16_bn-6c64b313.pth" in meta["pretrained_reason"]
    import torchvision

    torch.manual_seed(1)
    reference = torchvision.models.vgg16_bn()
    torch.save(reference.state_dict(), tmp_path / "vgg.pth")
    meta = load_pretrained(model, {"weights": str(tmp_path / "vgg.pth")}, offline=True)
    assert meta["pretrained"] is True
    assert torch.equal(model.backbone.features[0].weight, reference.features[0].weight)


# Real face data ------------------------------------------------------------------------------
@needs_shared_data
def test_olivetti_has_20_private_identities_8_train_2_test_and_200_public_images(monkeypatch):
    monkeypatch.setenv("INVBENCH_DATA", str(SHARED_DATA))
    task = _task("task=olivetti", "task.image_size=64")  # native; mini runs it at 32x32
    split = task._splits()
    assert task.num_classes == 20 and split["train_x"].shape == (160, 1, 64, 64)
    assert np.bincount(split["train_y"].numpy()).tolist() == [8] * 20
    assert np.bincount(split["test_y"].numpy()).tolist() == [2] * 20
    assert split["public_x"].shape == (200, 1, 64, 64)
    assert not any(torch.equal(split["public_x"][0], x) for x in split["train_x"])


def test_olivetti_missing_offline_names_the_file(workdir):
    with pytest.raises(MissingDataError, match="olivetti_py3.pkz"):
        _task("task=olivetti")


def _celeba_copy(tmp_path, identities: int, aligned: bool):
    """A CelebA folder with the real identity files and the subset's images of a few
    identities; ``aligned`` re-saves them at the aligned 178x218 size (the crop path)."""
    from PIL import Image

    root = tmp_path / "celeba"
    folder = root / ("img_align_celeba" if aligned else "img_celeba")
    folder.mkdir(parents=True)
    for name in ("identity_CelebA.txt", "list_eval_partition.txt"):
        shutil.copy(CELEBA_SUBSET / name, root / name)
    lines = dict(
        line.split()
        for line in (root / "identity_CelebA.txt").read_text().splitlines()
        if len(line.split()) == 2
    )
    present = sorted(p.name for p in (CELEBA_SUBSET / "img_celeba").iterdir())
    chosen = sorted({lines[name] for name in present})[:identities]
    for name in present:
        if lines[name] in chosen:
            source = CELEBA_SUBSET / "img_celeba" / name
            if aligned:
                Image.open(source).convert("RGB").resize((178, 218)).save(folder / name)
            else:
                (folder / name).symlink_to(source)
    return root


@needs_shared_data
def test_celeba_unaligned_photos_are_detected_cropped_and_cached(workdir, tmp_path):
    root = _celeba_copy(tmp_path, identities=3, aligned=False)
    task = _task("task=celeba", f"task.root={root}", "task.private_identities=2")
    split = task._splits()
    detected = len(split["train_x"]) + len(split["test_x"]) + len(split["public_x"])
    assert detected >= 85  # 3 identities x 30 photos; MTCNN finds a face in (nearly) all
    assert split["train_x"].shape[1:] == (3, 64, 64) and task.num_classes == 2
    assert set(split["train_y"].tolist()) == {0, 1}
    cached = list((workdir / "cache" / "faces").glob("celeba-mtcnn-*.pt"))
    assert len(cached) == 1
    again = _task("task=celeba", f"task.root={root}", "task.private_identities=2")._splits()
    assert torch.equal(again["train_x"], split["train_x"])


@needs_shared_data
def test_celeba_aligned_images_are_centre_cropped_and_ffhq_replaces_the_public_set(
    workdir, tmp_path
):
    from PIL import Image

    root = _celeba_copy(tmp_path, identities=3, aligned=True)
    ffhq = tmp_path / "ffhq" / "00000"
    ffhq.mkdir(parents=True)
    for i in range(5):
        Image.fromarray(np.full((128, 128, 3), 40 * i, dtype=np.uint8)).save(ffhq / f"{i}.png")
    task = _task("task=celeba", f"task.root={root}", "task.private_identities=2")
    split = task._splits()
    assert split["train_x"].shape[1:] == (3, 64, 64) and len(split["public_x"]) == 30
    crossed = _task(
        "task=celeba",
        f"task.root={root}",
        "task.private_identities=2",
        "task.public=ffhq",
        f"task.public_root={tmp_path / 'ffhq'}",
    )._splits()
    assert crossed["public_x"].shape == (5, 3, 64, 64)
    assert torch.allclose(crossed["public_x"][1], torch.full((3, 64, 64), 40 / 255), atol=1e-3)


@needs_shared_data
def test_celeba_follows_kedmi_split_files_when_present(workdir, tmp_path):
    root = _celeba_copy(tmp_path, identities=3, aligned=True)
    names = sorted(p.name for p in (root / "img_align_celeba").iterdir())
    meta = root / "meta"
    meta.mkdir()
    # KEDMI's layout: "<file> <label>" for the private sets, one file per line for the GAN's
    (meta / "trainset.txt").write_text("".join(f"{n} {i % 2}\n" for i, n in enumerate(names[:8])))
    (meta / "testset.txt").write_text(f"{names[8]} 1\n{names[9]} 0\n")
    (meta / "ganset.txt").write_text("".join(f"{n}\n" for n in names[10:15]))
    task = _task("task=celeba", f"task.root={root}")
    split = task._splits()
    assert task.num_classes == 2  # from the files, not task.private_identities
    assert split["train_y"].tolist() == [i % 2 for i in range(8)]
    assert split["test_y"].tolist() == [1, 0] and len(split["public_x"]) == 5
    seeded = _task("task=celeba", f"task.root={root}", "task.split_folder=null")
    assert seeded.num_classes == 1000 and len(seeded.cfg["private_classes"]) == 0  # not loaded
    (meta / "ganset.txt").write_text("999999.jpg\n")
    with pytest.raises(MissingDataError, match="names 1 images not in .*999999.jpg"):
        _task("task=celeba", f"task.root={root}")._splits()


@needs_shared_data
def test_celeba_checks_md5_and_names_what_is_missing(workdir, tmp_path):
    root = _celeba_copy(tmp_path, identities=1, aligned=False)
    with open(root / "identity_CelebA.txt", "a") as handle:
        handle.write("999999.jpg 1\n")
    with pytest.raises(MissingDataError, match="md5 mismatch.*32bd1bd63d3c78cd57e08160ec5ed1e2"):
        _task("task=celeba", f"task.root={root}")
    with pytest.raises(
        MissingDataError, match="img_align_celeba.*00d2c5bc6d35e252742224ab0c1e8fcb"
    ):
        _task("task=celeba", f"task.root={tmp_path / 'nothing'}")
    with pytest.raises(MissingDataError, match="FFHQ"):
        _task(
            "task=celeba",
            f"task.root={CELEBA_SUBSET}",
            "task.public=ffhq",
            f"task.public_root={tmp_path / 'no-ffhq'}",
        )


def test_invbench_data_offline_prints_what_to_fetch_and_where(workdir, capsys):
    assert main(["data", "celeba", "--root", str(workdir / "data")]) == 2
    err = capsys.readouterr().err
    assert "00d2c5bc6d35e252742224ab0c1e8fcb" in err and str(workdir / "data" / "celeba") in err
    assert main(["data", "ffhq", "--root", str(workdir / "data")]) == 2
    assert "ffhq-dataset" in capsys.readouterr().err
    assert main(["data", "celebA"]) == 2
    assert "Did you mean 'celeba'" in capsys.readouterr().err


@needs_shared_data
def test_invbench_data_finds_present_files(capsys):
    assert main(["data", "olivetti", "--root", str(SHARED_DATA)]) == 0
    assert "present" in capsys.readouterr().out


@pytest.mark.slow
def test_every_image_attack_against_every_image_defense_runs(workdir, capsys):
    """Smoke budgets on digits: every registered image method produces a valid record, the
    target-derived artifacts are trained once per target and shared by the attacks that use
    them, and a white-box attack's queries are its own forward passes."""
    from benchmark.cache import ArtifactCache
    from tests.conftest import SMOKE

    assert (
        main(
            [
                "bench",
                *SMOKE,
                "task=digits",
                "++attack.lomma.student_epochs=1",
                "++defense.pretrain_epochs=1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "[failed]" not in out, out
    records = {
        (r["attack"], r["defense"]): r
        for r in (json.loads(p.read_text()) for p in (workdir / "results").rglob("*.json"))
    }
    attacks = {
        "miface",
        "deepinversion",
        "gmi",
        "kedmi",
        "plgmi",
        "lomma-gmi",
        "lomma-kedmi",
        "lomma-plgmi",
        "ppa",
        "gan-random",
    }
    defenses = {"none", "label-smoothing", "negls", "mid", "bido", "tl", "dp-sgd"}
    assert {(a, d) for a in attacks for d in defenses} <= set(records)
    assert ("gmi", "rounding") not in records  # white-box x output defense: n/a, not launched
    assert records[("ppa", "none")]["cost"]["queries"] == 3 * 3 * 2 * 4 + 10 * 3 * 2 * 4
    # every target forward is counted, those made while the attack's own GANs and students
    # trained included: KEDMI's GAN labels each public image once (its soft labels), LOMMA's
    # students add theirs, GMI's public prior never sees the target
    for (attack, defense), record in records.items():
        cost = record["cost"]
        assert cost["forwards"] == cost["queries"] + cost["training_forwards"], (attack, defense)
    kedmi = records[("kedmi", "none")]
    public = kedmi["provenance"]["target_prior.target_prior"]["public_images"]
    assert kedmi["cost"]["training_forwards"] == public > 0
    assert records[("lomma-kedmi", "none")]["cost"]["training_forwards"] > public
    assert records[("gmi", "none")]["cost"]["training_forwards"] == 0
    trainings = [t["kind"] for t in ArtifactCache(workdir / "cache").trainings()]
    # per target (7 training-time defenses): KEDMI's GAN, PLG-MI's cGAN, LOMMA's students
    assert trainings.count("target") == 7 and trainings.count("target_prior") == 21
    assert trainings.count("prior") == 1  # the public GMI prior, shared by gmi, ppa, lomma-gmi


def test_lomma_reads_the_targets_features_only_through_counted_forwards():
    """LOMMA's p_reg (the mean of the target's features on the public images, Eq. 7) comes from
    the counted forwards that give its students' soft labels: one per public image, and no
    call of the target's ``features`` outside a counted forward (it once ran the target over the
    public set uncounted)."""
    from types import SimpleNamespace

    from benchmark.access import ForwardCounter, PartialForwards
    from benchmark.context import RunContext
    from benchmark.methods import TaskView
    from benchmark.registry import ATTACKS, load_all
    from benchmark.runner import attack_settings

    load_all()
    cfg = compose("attack=lomma-gmi", "task=digits", "++attack.lomma.student_epochs=1")
    attack = ATTACKS.get("lomma-gmi").obj(
        attack_settings(cfg.attack, dict(cfg.suite.budgets.digits)), RunContext(progress=False)
    )
    shape, classes = (1, 16, 16), 5
    torch.manual_seed(0)
    target = build_image_model("test_resnet", classes, shape, {}).eval()
    features, uncounted = target.features, []  # rows of features() run outside a forward
    watch = PartialForwards(target, uncounted.append)
    public = SimpleNamespace(images=torch.rand(40, *shape))
    students = attack.build_target_prior(TaskView("image", shape, classes), target)["lomma"]
    counter = ForwardCounter(target)
    attack.train_target_prior(
        students, public, target, lambda x: torch.softmax(target(x), -1), progress=False
    )
    counter.close()
    watch.close()
    assert uncounted == [] and counter.rows == len(public.images)
    with torch.no_grad():
        expected = features(public.images).mean(dim=0)
    torch.testing.assert_close(students.p_reg, expected)


BLACK_BOX = ["mirror-b", "rlbmi", "c2fmi", "brepmi", "lokt"]


@needs_shared_data
@pytest.mark.slow
def test_bench_reads_celeba_from_task_root_and_the_black_box_attacks_run_on_it(
    workdir, tmp_path, capsys
):
    """`invbench bench task=celeba task.root=DIR` checks DIR for the data (it once checked the
    default <data root>/celeba and exited 2), and the five score and label attacks run on faces
    detected in the subset's unaligned photos (small models at 32x32: the data path is what
    is tested)."""
    from tests.conftest import SMOKE

    root = _celeba_copy(tmp_path, identities=3, aligned=False)
    assert (
        main(
            [
                "bench",
                *SMOKE,
                "task=celeba",
                f"task.root={root}",
                "task.private_identities=2",
                "task.image_size=32",
                "task.target.model=test_resnet",
                "task.evaluator.model=eval-cnn",
                "++task.evaluator.width=8",
                f"attack=[{','.join(BLACK_BOX)}]",
                "defense=none",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "[failed]" not in out and out.count("[ok] smoke/celeba") == len(BLACK_BOX), out
    for name in BLACK_BOX:
        record = json.loads(
            (workdir / "results/smoke/celeba" / f"{name}__none__s0.json").read_text()
        )
        assert 0 < record["cost"]["queries"] <= record["budget"]["queries"]
