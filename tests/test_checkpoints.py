"""Published checkpoints load (issue 21, section 2).

Each test writes a file in exactly its published layout: the authors' own module structure
(rebuilt here from their code's names, independently of this project's modules: KEDMI's
``classify.py`` VGG16 / IR152 / FaceNet64 / FaceNet, face.evoLVe's ``Backbone`` with its flat
``body``, GMI's ``Generator`` / ``DGWGAN``, KEDMI's ``MinibatchDiscriminator``), wrapped the way
they saved it (``nn.DataParallel``'s ``module.`` prefix inside ``{'state_dict': ...}``, float32),
randomly initialised. Loading it into this project's model must give the same outputs as the
authors' module on the same input, and a wrong sha256 or layout must say what was expected.
"""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
import torch.nn as nn
import torchvision

from attacks.gan_prior import GANPrior, ReferenceCritic, ReferenceGenerator, train_wgan_gp
from attacks.kedmi import KEDMIPrior, MinibatchDiscriminator, train_kedmi_gan
from attacks.plgmi import PLGMIPrior
from benchmark.checkpoints import CheckpointError, load_checkpoint
from benchmark.cli import main
from benchmark.errors import MissingDataError
from benchmark.runner import attack_settings, suite_method_settings, suite_priors
from tasks.face_models import build_image_model
from tests.conftest import compose, needs_shared_data


# The authors' modules, by their key names ------------------------------------------------------
class Flatten(nn.Module):
    def forward(self, x):
        return x.view(len(x), -1)


class PublishedBottleneckIR(nn.Module):  # face.evoLVe's bottleneck_IR
    def __init__(self, cin, depth, stride):
        super().__init__()
        self.shortcut_layer = (
            nn.MaxPool2d(1, stride)
            if cin == depth
            else nn.Sequential(nn.Conv2d(cin, depth, 1, stride, bias=False), nn.BatchNorm2d(depth))
        )
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.Conv2d(cin, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        )

    def forward(self, x):
        return self.shortcut_layer(x) + self.res_layer(x)


def published_output_layer(side):
    return nn.Sequential(
        nn.BatchNorm2d(512), nn.Dropout(), Flatten(), nn.Linear(512 * side * side, 512),
        nn.BatchNorm1d(512),
    )  # fmt: skip


class PublishedBackbone(nn.Module):  # face.evoLVe's Backbone64 (no output layer) / Backbone112
    UNITS = {50: (3, 4, 14, 3), 152: (3, 8, 36, 3)}

    def __init__(self, depth, with_output_side=None):
        super().__init__()
        self.input_layer = nn.Sequential(
            nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64)
        )
        units, cin = [], 64
        for count, depth_out in zip(self.UNITS[depth], (64, 128, 256, 512)):
            for i in range(count):
                units.append(PublishedBottleneckIR(cin, depth_out, 2 if i == 0 else 1))
                cin = depth_out
        self.body = nn.Sequential(*units)
        if with_output_side:
            self.output_layer = published_output_layer(with_output_side)

    def forward(self, x):
        x = self.body(self.input_layer(x))
        return self.output_layer(x) if hasattr(self, "output_layer") else x


class PublishedVGG16(nn.Module):  # KEDMI/GMI classify.VGG16
    def __init__(self, classes):
        super().__init__()
        self.feature = torchvision.models.vgg16_bn().features
        self.bn = nn.BatchNorm1d(512 * 2 * 2)
        self.fc_layer = nn.Linear(512 * 2 * 2, classes)

    def forward(self, x):
        return self.fc_layer(self.bn(self.feature(x).flatten(1)))


class PublishedIR64(nn.Module):  # KEDMI classify.IR152 (depth 152) and FaceNet64 (depth 50)
    def __init__(self, depth, classes):
        super().__init__()
        self.feature = PublishedBackbone(depth)
        self.output_layer = published_output_layer(4)
        self.fc_layer = nn.Linear(512, classes)

    def forward(self, x):
        return self.fc_layer(self.output_layer(self.feature(x)))


class PublishedFaceNet(nn.Module):  # KEDMI classify.FaceNet, the evaluator (IR-50 at 112x112)
    def __init__(self, classes):
        super().__init__()
        self.feature = PublishedBackbone(50, with_output_side=7)
        self.fc_layer = nn.Linear(512, classes)

    def forward(self, x):
        return self.fc_layer(self.feature(x))


def randomise(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and batch-norm statistics, so an unloaded tensor would show."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if tensor.is_floating_point():
                values = torch.randn(tensor.shape, generator=generator) * 0.05
                tensor.copy_(values.abs() + 0.5 if name.endswith("running_var") else values)
    return module.eval()


def publish(module: nn.Module, path, *, wrapped: bool = True) -> dict:
    """Save as the authors did: DataParallel's module. prefix in {'state_dict': ...}, or the
    bare state dict (face.evoLVe); the config block that pins it."""
    state = nn.DataParallel(module).state_dict() if wrapped else module.state_dict()
    torch.save({"state_dict": state} if wrapped else state, path)
    return {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


# Target and evaluator loaders --------------------------------------------------------------------
CLASSIFIERS = [
    ("kedmi-vgg16", "vgg16", lambda: PublishedVGG16(5)),
    ("kedmi-ir152", "ir152", lambda: PublishedIR64(152, 5)),
    ("kedmi-facenet64", "facenet64", lambda: PublishedIR64(50, 5)),
    ("kedmi-evaluator", "ir50", lambda: PublishedFaceNet(5)),
]


@pytest.mark.parametrize("layout, architecture, published", CLASSIFIERS)
def test_a_published_classifier_loads_and_computes_what_the_authors_module_computes(
    tmp_path, layout, architecture, published
):
    original = randomise(published())
    spec = {"layout": layout, **publish(original, tmp_path / "model.tar")}
    assert all(k.startswith("module.") for k in torch.load(spec["path"])["state_dict"])
    model = build_image_model(architecture, 5, (3, 64, 64), {"checkpoint": spec}).eval()
    meta = load_checkpoint(model, spec, tmp_path)
    assert meta["checkpoint_sha256"] == spec["sha256"] and meta["checkpoint_layout"] == layout
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        # the published models see [0, 1] images as the authors' loaders gave them; the
        # evaluator upsamples 64 -> 112 as the papers' low2high does, bilinearly
        size = 112 if architecture == "ir50" else 64
        expected = original(nn.functional.interpolate(images, size=size, mode="bilinear"))
        assert torch.allclose(model(images), expected, atol=1e-4)


@pytest.mark.parametrize("depth, architecture", [(50, "ir50"), (152, "ir152")])
def test_a_face_evolve_backbone_initialises_the_ir_body(tmp_path, depth, architecture):
    original = randomise(PublishedBackbone(depth, with_output_side=7), seed=3)
    spec = {
        "layout": f"evolve-{architecture}",
        **publish(original, tmp_path / "b.pth", wrapped=False),
    }
    model = build_image_model(architecture, 4, (3, 64, 64), {"checkpoint": spec}).eval()
    meta = load_checkpoint(model, spec, tmp_path)
    last = sum(PublishedBackbone.UNITS[depth]) - 1
    assert torch.equal(
        model.backbone.stages[3][2].residual[3].weight, original.body[last].res_layer[3].weight
    )
    assert torch.equal(model.backbone.input_layer[0].weight, original.input_layer[0].weight)
    if architecture == "ir50":  # 112x112: the whole backbone, output layer included
        assert "checkpoint_left_initialised" not in meta
        with torch.no_grad():
            x = torch.rand(2, 3, 112, 112)
            assert torch.allclose(model.backbone(x), original(x), atol=1e-4)
    else:  # KEDMI's IR-152 is 64x64: the 7x7 projection's weight does not fit; stays as built
        assert meta["checkpoint_left_initialised"] == ["backbone.output_layer.3.weight"]


def test_a_wrong_sha256_names_both_hashes_and_the_file_to_download(tmp_path):
    spec = {"layout": "kedmi-vgg16", **publish(randomise(PublishedVGG16(5)), tmp_path / "m.tar")}
    model = build_image_model("vgg16", 5, (3, 64, 64), {"checkpoint": spec})
    wrong = {**spec, "sha256": "0" * 64}
    with pytest.raises(CheckpointError, match=f"sha256 {spec['sha256']}.*pins 0{{64}}.*VGG16_88"):
        load_checkpoint(model, wrong, tmp_path)
    with pytest.raises(CheckpointError, match=f"no sha256 pinned: add sha256: {spec['sha256']}"):
        load_checkpoint(model, {**spec, "sha256": None}, tmp_path)
    with pytest.raises(
        MissingDataError, match="Download VGG16_88.26.tar from .*Knowledge-Enriched"
    ):
        load_checkpoint(model, {**spec, "path": str(tmp_path / "absent.tar")}, tmp_path)
    with pytest.raises(CheckpointError, match="unknown checkpoint layout 'kedmi-vgg19'"):
        load_checkpoint(model, {**spec, "layout": "kedmi-vgg19"}, tmp_path)


def test_a_file_of_another_layout_says_which_keys_the_layout_expects(tmp_path):
    model = build_image_model("vgg16", 5, (3, 64, 64), {})
    generator_file = publish(ReferenceGenerator(), tmp_path / "celeba_G.tar")
    with pytest.raises(
        CheckpointError, match="kedmi-vgg16 layout.*module.feature.0.weight.*missing"
    ):
        load_checkpoint(model, {"layout": "kedmi-vgg16", **generator_file}, tmp_path)
    bare = publish(randomise(PublishedVGG16(5)), tmp_path / "bare.pth", wrapped=False)
    with pytest.raises(CheckpointError, match="under 'state_dict'"):
        load_checkpoint(model, {"layout": "kedmi-vgg16", **bare}, tmp_path)
    ten_classes = publish(randomise(PublishedVGG16(10)), tmp_path / "ten.tar")
    with pytest.raises(
        CheckpointError, match=r"wrong shape.*head.weight: file \(10, 2048\), model \(5, 2048\)"
    ):
        load_checkpoint(model, {"layout": "kedmi-vgg16", **ten_classes}, tmp_path)
    with pytest.raises(ValueError, match="holds the vgg16 architecture.*set model: vgg16"):
        build_image_model("ir152", 5, (3, 64, 64), {"checkpoint": {"layout": "kedmi-vgg16"}})


# GAN loaders -------------------------------------------------------------------------------------
class PublishedGMIGenerator(nn.Module):  # GMI/KEDMI generator.Generator(in_dim=100, dim=64)
    def __init__(self):
        super().__init__()

        def up(i, o):
            return nn.Sequential(
                nn.ConvTranspose2d(i, o, 5, 2, padding=2, output_padding=1, bias=False),
                nn.BatchNorm2d(o),
                nn.ReLU(),
            )

        self.l1 = nn.Sequential(nn.Linear(100, 8192, bias=False), nn.BatchNorm1d(8192), nn.ReLU())
        self.l2_5 = nn.Sequential(
            up(512, 256), up(256, 128), up(128, 64),
            nn.ConvTranspose2d(64, 3, 5, 2, padding=2, output_padding=1), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, z):
        return self.l2_5(self.l1(z).view(len(z), -1, 4, 4))


def conv_in_lrelu(i, o, k=5, s=2, p=2):
    return nn.Sequential(
        nn.Conv2d(i, o, k, s, p), nn.InstanceNorm2d(o, affine=True), nn.LeakyReLU(0.2)
    )


class PublishedDGWGAN(nn.Module):  # GMI discri.DGWGAN(in_dim=3, dim=64)
    def __init__(self):
        super().__init__()
        self.ls = nn.Sequential(
            nn.Conv2d(3, 64, 5, 2, 2), nn.LeakyReLU(0.2), conv_in_lrelu(64, 128),
            conv_in_lrelu(128, 256), conv_in_lrelu(256, 512), nn.Conv2d(512, 1, 4),
        )  # fmt: skip

    def forward(self, x):
        return self.ls(x).view(-1)


class PublishedMinibatchDiscriminator(nn.Module):  # KEDMI discri.MinibatchDiscriminator
    def __init__(self, classes):
        super().__init__()
        self.layer1, self.layer2 = conv_in_lrelu(3, 64), conv_in_lrelu(64, 128)
        self.layer3, self.layer4 = conv_in_lrelu(128, 256), conv_in_lrelu(256, 256, 3, 2, 1)
        self.mbd1 = nn.Module()
        self.mbd1.T = nn.Parameter(torch.randn(4096, 64, 50))
        self.fc_layer = nn.Linear(4096 + 64, classes)

    def forward(self, x):
        f = self.layer4(self.layer3(self.layer2(self.layer1(x)))).flatten(1)
        m = f.mm(self.mbd1.T.view(4096, -1)).view(-1, 64, 50)
        distances = (m.unsqueeze(0) - m.unsqueeze(0).permute(1, 0, 2, 3)).abs().sum(3)
        return self.fc_layer(torch.cat([f, torch.exp(-distances).sum(0) - 1], 1))


@pytest.mark.parametrize(
    "layout, ours, published, sample",
    [
        ("gmi-generator", ReferenceGenerator, PublishedGMIGenerator, lambda: torch.randn(3, 100)),
        ("kedmi-generator", ReferenceGenerator, PublishedGMIGenerator, lambda: torch.randn(3, 100)),
        ("gmi-discriminator", ReferenceCritic, PublishedDGWGAN, lambda: torch.rand(3, 3, 64, 64)),
        (
            "kedmi-discriminator",
            lambda: MinibatchDiscriminator(7),
            lambda: PublishedMinibatchDiscriminator(7),
            lambda: torch.rand(3, 3, 64, 64),
        ),
    ],
)
def test_a_published_gan_part_loads_and_computes_what_the_authors_module_computes(
    tmp_path, layout, ours, published, sample
):
    original = randomise(published(), seed=5)
    if layout == "kedmi-discriminator":  # its T is a plain normal, not a small weight
        original.mbd1.T.data.mul_(0.02)
    spec = {"layout": layout, **publish(original, tmp_path / "part.tar")}
    model = ours().eval()
    load_checkpoint(model, spec, tmp_path)
    x = sample()
    with torch.no_grad():
        assert torch.allclose(model(x), original(x), atol=1e-4)


def test_the_paper_suite_writes_the_reference_architecture_into_every_declaring_prior(tmp_path):
    cfg = compose("suite=paper", "task=celeba", "attack=kedmi")
    priors = suite_priors(cfg)
    assert priors == {"architecture": "reference", "z_dim": 100, "width": 64}
    settings = attack_settings(cfg.attack, {"prior_steps": 7}, priors, tmp_path)
    assert settings["target_prior"]["architecture"] == "reference"
    assert settings["target_prior"]["z_dim"] == 100 and settings["target_prior"]["steps"] == 7
    paper = compose("suite=paper", "task=celeba", "attack=lomma-gmi")
    published = attack_settings(
        paper.attack, {}, priors, tmp_path, suite_method_settings(paper, "lomma-gmi")
    )
    assert published["lomma"]["students"] == [
        "efficientnet_b0",
        "efficientnet_b1",
        "efficientnet_b2",
    ]
    assert published["lr"] == pytest.approx(0.02 / 60, rel=1e-3)  # the reference's mean-loss step
    assert published["lomma"]["lambda_reg"] == 1.0  # the rest of the block kept
    rlbmi = compose("suite=paper", "attack=rlbmi")
    assert suite_method_settings(rlbmi, "rlbmi") == {
        "episodes_per_round": 1,
        "updates_per_round": 1,
    }
    assert suite_method_settings(mini := compose("attack=ppa"), "ppa") == {}
    assert mini.attack.selection_views == 10
    paper_plgmi = compose("suite=paper", "attack=plgmi")
    plgmi = attack_settings(
        paper_plgmi.attack, {}, priors, tmp_path, suite_method_settings(paper_plgmi, "plgmi")
    )
    # the suite's priors, then the attack's own entry (PLG-MI's z 128) on top
    assert plgmi["target_prior"]["architecture"] == "reference"
    assert (plgmi["target_prior"]["z_dim"], plgmi["target_prior"]["width"]) == (128, 64)
    mini = compose("task=digits", "attack=gmi")
    assert suite_priors(mini) == {}
    assert attack_settings(mini.attack, {}, {}, tmp_path)["prior"]["architecture"] == "small"


def test_the_reference_gans_train_on_64x64_rgb_and_refuse_other_shapes():
    torch.manual_seed(0)
    public = torch.rand(8, 3, 64, 64)
    gmi = GANPrior((3, 64, 64), 100, 8, "reference")  # dim 8 keeps the test small
    meta = train_wgan_gp(
        gmi, public, steps=2, batch_size=4, n_critic=1, lr=2e-4, gp_weight=10.0, progress=False
    )
    assert torch.isfinite(torch.tensor(meta["critic_loss"]))
    assert gmi.generator(torch.randn(2, 100)).shape == (2, 3, 64, 64)
    kedmi = KEDMIPrior((3, 64, 64), 5, 100, 8, "reference")
    meta = train_kedmi_gan(
        kedmi, public, torch.softmax(torch.randn(8, 5), 1), steps=2, batch_size=4, lr=2e-4,
        n_critic=2, entropy_weight=1e-4, progress=False,
    )  # fmt: skip
    assert torch.isfinite(torch.tensor(meta["feature_matching_loss"]))
    plgmi = PLGMIPrior((3, 64, 64), 5, 128, 4, "reference")  # width 4 keeps the test small
    labels = torch.tensor([0, 3])
    images = plgmi.generator(torch.randn(2, 128), labels)
    assert images.shape == (2, 3, 64, 64) and 0 <= images.min() and images.max() <= 1
    assert plgmi.discriminator(images, labels).shape == (2,)
    # conditional batch norm: the class picks the gain, so two classes give two images
    with torch.no_grad():
        plgmi.generator.blocks[0].b1.gain.weight[3].mul_(3.0)
    plgmi.generator.eval()
    same_z = torch.randn(1, 128).expand(2, -1)
    pair = plgmi.generator(same_z, labels)
    assert not torch.allclose(pair[0], pair[1])
    from types import SimpleNamespace

    from attacks.plgmi import PLGMI
    from benchmark.context import RunContext
    from benchmark.methods import plain

    settings = plain(compose("attack=plgmi").attack)
    settings["target_prior"].update(
        architecture="reference", z_dim=128, width=4, steps=2, batch_size=4
    )
    target = build_image_model("small-cnn", 5, (3, 64, 64), {}).eval()
    trained = PLGMIPrior((3, 64, 64), 5, 128, 4, "reference")
    meta = PLGMI(settings, RunContext(progress=False)).train_target_prior(
        trained,
        SimpleNamespace(images=public),
        target,
        lambda x: torch.softmax(target(x), 1),
        False,
    )
    assert all(torch.isfinite(torch.tensor(v)) for v in meta.values() if isinstance(v, float))
    with pytest.raises(ValueError, match="64x64 RGB.*use architecture small"):
        GANPrior((1, 32, 32), 100, 8, "reference")


# End to end: a cell that loads its target and its GAN, and trains neither -----------------------
@needs_shared_data
@pytest.mark.slow
def test_a_cell_with_published_target_and_gan_trains_neither(workdir, tmp_path, capsys):
    from tests.test_faces import _celeba_copy

    root = _celeba_copy(tmp_path, identities=3, aligned=True)
    folder = workdir / "data" / "checkpoints"
    folder.mkdir(parents=True)
    target = {"layout": "kedmi-vgg16", **publish(randomise(PublishedVGG16(2)), folder / "t.tar")}
    target["path"] = "checkpoints/t.tar"  # relative to the data root
    gen = {
        "layout": "gmi-generator",
        **publish(randomise(PublishedGMIGenerator()), folder / "g.tar"),
    }
    dis = {"layout": "gmi-discriminator", **publish(randomise(PublishedDGWGAN()), folder / "d.tar")}

    def block(spec):
        return "{" + ",".join(f"{k}:{v}" for k, v in spec.items()) + "}"

    overrides = [
        "run", "task=celeba", f"task.root={root}", "task.private_identities=2",
        "task.target.model=vgg16", f"task.target.checkpoint={block(target)}",
        "task.evaluator.model=eval-cnn", "task.evaluator.epochs=1", "attack=gmi",
        f"attack.prior.checkpoint={{generator:{block(gen)},discriminator:{block(dis)}}}",
        "suite=paper", "suite.budgets.celeba.identities=2", "suite.budgets.celeba.steps=2",
        "suite.budgets.celeba.samples_per_identity=2", "progress=false",
    ]  # fmt: skip
    assert main(overrides) == 0, capsys.readouterr().err
    record = json.loads(next((workdir / "results").rglob("*.json")).read_text())
    assert record["status"] == "ok", record.get("error")
    provenance = record["provenance"]
    assert provenance["target"]["trained"] is False
    assert provenance["target"]["checkpoint_sha256"] == target["sha256"]
    assert provenance["prior"]["trained"] is False
    assert provenance["prior"]["generator_checkpoint_layout"] == "gmi-generator"
    assert record["config"]["attack"]["prior"]["checkpoint"]["generator"]["sha256"] == gen["sha256"]


def test_invbench_data_checkpoints_lists_every_layout_with_source_and_place(workdir, capsys):
    assert main(["data", "checkpoints", "--root", str(workdir / "data")]) == 0
    out = capsys.readouterr().out
    for name in ("kedmi-vgg16", "kedmi-ir152", "kedmi-facenet64", "kedmi-evaluator",
                 "gmi-generator", "gmi-discriminator", "kedmi-generator",
                 "kedmi-discriminator", "evolve-ir50", "evolve-ir152"):  # fmt: skip
        assert f"\n{name}: " in out
    assert str(workdir / "data" / "checkpoints" / "kedmi" / "VGG16_88.26.tar") in out
    assert "SCccc21/Knowledge-Enriched-DMI" in out and "ZhaoJ9014/face.evoLVe" in out
