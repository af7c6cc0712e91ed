"""KEDMI: knowledge-enriched distributional model inversion (Chen et al., ICCV 2021).

Inversion-specific GAN (Sec. 3.1). The discriminator D has K outputs, one per target class; its
real/fake score is Z(x) = sum_k exp(l_k(x)) (Salimans et al. 2016). It is trained on PUBLIC
images with the target's soft labels p_T(x) as the extra knowledge (Eqs. 1-3):

    L_D = L_sup + L_unsup
    L_sup   = -E_x sum_k p_T(k|x) log softmax(l(x))_k
    L_unsup = -E_x log(Z(x) / (Z(x) + 1)) - E_z log(1 / (Z(G(z)) + 1))

and the generator by feature matching on D's penultimate features f (Eq. 4):
L_G = || E_x f(x) - E_z f(G(z)) ||_1.

Distributional recovery (Sec. 3.2, Eq. 5): per identity a Gaussian N(mu, sigma^2) over latents,
learned by reparameterisation z = mu + exp(log_var / 2) * eps, initialised as the reference
does (mu = 0, log_var = 1):

    min_{mu, sigma}  E_eps [ L_prior(G(z)) + lambda * CE(T(G(z)), y) ],  L_prior = -log D_real

and the reconstructions are samples of the learned distribution. The samples are not clamped:
the reference's ``dist_inversion`` clamps z to [-1, 1] after each step, but the next step draws
a new z from (mu, log_var), so the clamped z only reaches its progress print, never the loss or
the final samples (unlike GMI's ``inversion``, whose clamped z is the next step's iterate).
Adam is invariant to the loss's scale, so the summed per-sample loss of the search
(``search_in_budget``) takes the same steps as the reference's batch mean at its lr 0.02.

Two architectures (the block's ``architecture``, set by the suite's ``priors``): ``small``, the
mini suite's DCGAN body with K logits, and ``reference``, the published one: GMI's generator
(attacks/gan_prior.py) and KEDMI's ``MinibatchDiscriminator`` (four conv / instance-norm blocks,
minibatch discrimination with 64 kernels of 50 dimensions, Salimans et al. 2016, then K logits),
whose key names are the published ``celeba_G.tar`` / ``celeba_D.tar``'s, so those files load
into them (``target_prior.checkpoint``) instead of training.

GAN training follows the reference (``k+1_gan.py``): the unsupervised term is weighted 0.5 and
sees a second unlabelled batch, the generator is updated every ``n_critic`` discriminator steps
and also minimises 1e-4 times the entropy of D's class prediction on its fakes.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from attacks._image_objectives import freeze, search_in_budget
from attacks.gan_prior import (
    Generator,
    ReferenceGenerator,
    TargetGAN,
    downsampling_layers,
    load_gan_checkpoints,
    reference_down,
)
from attacks.gmi import IdentityLoss, OwnTargetGAN
from benchmark.checkpoints import CheckpointLayout, register_layout
from benchmark.devices import module_device, to_device
from benchmark.methods import Attack
from benchmark.progress import progress_bar
from benchmark.registry import Citation, register_attack
from tasks.training import predict_in_batches


class ClassDiscriminator(nn.Module):
    """DCGAN-style convolutional body with K class logits (KEDMI's discriminator)."""

    def __init__(self, channels: int, size: int, width: int, num_classes: int):
        super().__init__()
        layers, features = downsampling_layers(channels, size, width)
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.classify = nn.Linear(features, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images * 2 - 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(images))


class MinibatchDiscrimination(nn.Module):
    """Salimans et al. 2016, Sec. 3.2: M_i = f_i T (B kernels of C dims), c_b(i, j) =
    exp(-||M_i,b - M_j,b||_1), o_b(i) = sum_{j != i} c_b(i, j); [f, o] goes on."""

    def __init__(self, in_features: int, kernels: int = 64, kernel_dims: int = 50):
        super().__init__()
        self.kernels, self.kernel_dims = kernels, kernel_dims
        self.T = nn.Parameter(torch.randn(in_features, kernels, kernel_dims))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        m = (features @ self.T.flatten(1)).view(-1, self.kernels, self.kernel_dims)
        closeness = torch.exp(-(m[None] - m[:, None]).abs().sum(3))  # N x N x B
        return torch.cat([features, closeness.sum(0) - 1], 1)  # minus each sample's own 1


class MinibatchDiscriminator(nn.Module):
    """KEDMI's published discriminator for 64x64 RGB in [0, 1]: ``features`` are the flattened
    conv features (dim * 4 x 4 x 4) the generator's feature matching uses, ``classify`` their
    minibatch-discrimination extension -> K logits."""

    def __init__(self, num_classes: int, dim: int = 64):
        super().__init__()
        self.layer1 = reference_down(3, dim)
        self.layer2 = reference_down(dim, dim * 2)
        self.layer3 = reference_down(dim * 2, dim * 4)
        self.layer4 = reference_down(dim * 4, dim * 4, 3, 2, 1)
        self.mbd1 = MinibatchDiscrimination(dim * 4 * 4 * 4)
        self.fc_layer = nn.Linear(dim * 4 * 4 * 4 + 64, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(images))))
        return x.flatten(1)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc_layer(self.mbd1(features))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(images))


class KEDMIPrior(TargetGAN):
    version = "3"  # 2: soft labels from the target in eval mode; 3: the reference's training

    def build(self, architecture, image_shape, num_classes, z_dim, width):
        if architecture == "reference":
            return ReferenceGenerator(z_dim, width), MinibatchDiscriminator(num_classes, width)
        channels, size, _ = image_shape
        return (
            Generator(z_dim, channels, size, width),
            ClassDiscriminator(channels, size, width, num_classes),
        )


def realness(logits: torch.Tensor) -> torch.Tensor:
    """log Z(x) = logsumexp of the class logits; D_real(x) = sigmoid(log Z(x))."""
    return torch.logsumexp(logits, dim=1)


def class_entropy(logits: torch.Tensor) -> torch.Tensor:
    """H = -sum_i sum_k p_k(x_i) log p_k(x_i), summed over the batch (the reference's HLoss)."""
    return -(F.softmax(logits, dim=1) * F.log_softmax(logits, dim=1)).sum()


def discriminator_loss(
    discriminator: ClassDiscriminator,
    labelled: torch.Tensor,
    soft_labels: torch.Tensor,
    unlabelled: torch.Tensor,
    fake: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eqs. 1-3 as the reference trains them: L_sup on a labelled batch (the target's soft
    labels), L_unsup on a second, unlabelled public batch and the fakes, weighted 0.5.
    Returns (L_sup, L_unsup)."""
    supervised = -(soft_labels * F.log_softmax(discriminator(labelled), dim=1)).sum(1).mean()
    unsupervised = 0.5 * (
        F.softplus(-realness(discriminator(unlabelled))).mean()
        + F.softplus(realness(discriminator(fake))).mean()
    )
    return supervised, unsupervised


def train_kedmi_gan(
    prior: KEDMIPrior,
    images: torch.Tensor,
    soft_labels: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    n_critic: int,
    entropy_weight: float,
    progress: bool,
) -> dict:
    """``steps`` generator updates, each after ``n_critic`` discriminator updates (the
    reference's ``step % n_critic == 0``). The generator's loss is Eq. 4's feature matching
    against a fresh unlabelled batch plus ``entropy_weight`` times the class entropy of D on
    the fakes (the reference's 1e-4 * HLoss): fakes that D assigns to one identity."""
    device = module_device(prior)
    images, soft_labels = to_device(images, device), to_device(soft_labels, device)
    generator, discriminator = prior.generator, prior.discriminator
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    generator.train()
    discriminator.train()

    def batch() -> torch.Tensor:
        return torch.randint(len(images), (batch_size,), device=device)

    with progress_bar(steps, "KEDMI GAN (public data, target soft labels)", progress) as bar:
        for _ in range(steps):
            for _ in range(n_critic):
                labelled = batch()
                with torch.no_grad():
                    fake = generator(torch.randn(batch_size, prior.z_dim, device=device))
                supervised, unsupervised = discriminator_loss(
                    discriminator, images[labelled], soft_labels[labelled], images[batch()], fake
                )
                opt_d.zero_grad(set_to_none=True)
                (supervised + unsupervised).backward()
                opt_d.step()
            fake = generator(torch.randn(batch_size, prior.z_dim, device=device))
            fake_features = discriminator.features(fake)
            with torch.no_grad():  # the real side of Eq. 4 is a constant for the generator
                real_features = discriminator.features(images[batch()]).mean(0)
            matching = (real_features - fake_features.mean(0)).abs().mean()
            entropy = class_entropy(discriminator.classify(fake_features))
            opt_g.zero_grad(set_to_none=True)
            (matching + entropy_weight * entropy).backward()
            opt_g.step()
            bar.update()
    prior.eval()
    return {
        "supervised_loss": supervised.item(),
        "unsupervised_loss": unsupervised.item(),
        "feature_matching_loss": matching.item(),
        "fake_class_entropy": entropy.item(),
        "public_images": len(images),
    }


@register_attack(
    "kedmi",
    modalities=("image",),
    access="whitebox",
    version="1.2",
    citation=Citation(
        "Knowledge-Enriched Distributional Model Inversion Attacks",
        "Chen et al.",
        "ICCV",
        2021,
        "https://arxiv.org/abs/2010.04092",
    ),
)
class KEDMI(OwnTargetGAN, IdentityLoss, Attack):
    runs_on_gpu = True
    target_prior_class = KEDMIPrior

    def train_target_prior(
        self, model: KEDMIPrior, public, target, teacher, progress: bool
    ) -> dict:
        settings = self.cfg["target_prior"]
        if settings.get("checkpoint"):  # a published KEDMI GAN (trained with its own target)
            return load_gan_checkpoints(model, settings["checkpoint"])
        soft = predict_in_batches(teacher, public.images, device=module_device(model))
        return train_kedmi_gan(
            model,
            public.images,
            soft,
            steps=int(settings["steps"]),
            batch_size=int(settings["batch_size"]),
            lr=float(settings["lr"]),
            n_critic=int(settings["n_critic"]),
            entropy_weight=float(settings["entropy_weight"]),
            progress=progress,
        )

    def run(
        self, access, victims, prior, budget: dict, generator: torch.Generator, target_prior=None
    ):
        gan = self.own_prior(target_prior)
        generator_net, discriminator = freeze(gan.generator), freeze(gan.discriminator)
        identities, per = len(victims.classes), victims.per_class
        device = self.device
        # the reference's initialisation: mu = 0, log-variance = 1 (sigma = e^0.5)
        mu = torch.zeros(identities, 1, gan.z_dim, device=device).requires_grad_(True)
        log_var = torch.ones(identities, 1, gan.z_dim, device=device).requires_grad_(True)
        labels = victims.classes.to(device).repeat_interleave(per)
        optimizer = torch.optim.Adam([mu, log_var], lr=float(self.cfg["lr"]))
        lam = float(self.cfg["lambda_id"])

        def draw() -> torch.Tensor:
            eps = torch.randn(identities, per, gan.z_dim, generator=generator, device=device)
            z = mu + (0.5 * log_var).exp() * eps
            return generator_net(z.flatten(0, 1))

        def loss() -> torch.Tensor:
            images = draw()
            prior_loss = F.softplus(-realness(discriminator(images)))
            return prior_loss + lam * self.identity_loss(access, images, labels, target_prior)

        search_in_budget(self, [mu, log_var], loss, optimizer, budget)
        with torch.no_grad():
            images = draw()
        return images.view(identities, per, *victims.image_shape)


KEDMI_GAN_SOURCE = (
    "https://github.com/SCccc21/Knowledge-Enriched-DMI (README: the GANs' Google Drive folder "
    "1L3frX-CE4j36pe5vVWuy3SgKGS9kkA70)"
)
register_layout(
    CheckpointLayout(
        "kedmi-generator",
        "KEDMI's CelebA generator (GMI's architecture, z 100, 64x64 RGB; trained with its VGG16 target)",
        "kedmi/celeba_G.tar",
        KEDMI_GAN_SOURCE,
        lambda key: key,
        example_key="module.l1.0.weight",
    )
)
register_layout(
    CheckpointLayout(
        "kedmi-discriminator",
        "KEDMI's CelebA MinibatchDiscriminator (1000 identity logits)",
        "kedmi/celeba_D.tar",
        KEDMI_GAN_SOURCE,
        lambda key: key,
        example_key="module.mbd1.T",
    )
)
