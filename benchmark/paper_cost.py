"""`make paper-cost`: what one cell of the `paper` suite costs for the GPU attacks.

For each of gmi, kedmi and plgmi (``--attacks``) on CelebA-sized synthetic inputs (the celeba
task's image size, class count and target architecture; random images and untrained weights:
the cost of a step does not depend on the values), it times on ``--device`` (default: the GPU
when there is one):

1. the attack's GAN (the public prior of GMI, KEDMI's inversion-specific GAN, PLG-MI's
   conditional GAN) for ``--prior-steps`` generator updates, and projects the paper suite's
   ``prior_steps`` from the time per update (the difference of a 1-update and a
   (1 + N)-update run after a warm-up, so one-off work is not scaled);
2. the latent search over ``--identities`` identities x the suite's samples per identity for
   ``--steps`` iterations (default: the suite's 300 x 5 and 2,400, one batched optimisation),
   under the ``amp`` setting (``--amp auto``: bfloat16 autocast on a GPU), after one untimed
   warm-up step.

It prints seconds per identity and the peak memory of each phase (GPU memory allocated on a
GPU, the process's resident memory on the CPU) and writes them as JSON under
``<results>/perf/``. With fewer ``--steps`` than the suite's, the seconds are also projected to
the suite's steps, and said to be projected. On a CPU, try ``--identities 10 --steps 5``
(and ``--prior-batch-size 8`` for a quick look: the paper's reference GANs at its minibatch of
64 take 6 s (GMI) and 21 s (PLG-MI) per update on 2 CPU cores; figures taken at another
minibatch say so and are not the paper's GAN cost).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from benchmark.access import WhiteBoxAccess
from benchmark.config import compose_config
from benchmark.context import RunContext
from benchmark.cost import PeakMemory
from benchmark.devices import device_generator, resolve_amp, resolve_device
from benchmark.errors import InvbenchError
from benchmark.methods import TaskView
from benchmark.perf import publish
from benchmark.registry import ATTACKS, load_all
from benchmark.runner import attack_settings, suite_method_settings, suite_priors
from tasks.face_models import build_image_model
from tasks.images import ImageVictims

GPU_ATTACKS = ("gmi", "kedmi", "plgmi")


def peak_mb(cost: PeakMemory) -> float:
    """GPU memory allocated on a GPU, the process's resident memory on the CPU."""
    return cost.peak_gpu_mb if cost.peak_gpu_mb is not None else cost.peak_mb


def cell_cost(
    name: str,
    device: torch.device,
    amp: bool,
    *,
    identities: int,
    steps: int,
    prior_steps: int,
    public_images: int,
    prior_batch_size: int | None = None,
) -> dict:
    """Time one attack's GAN training and latent search at the paper suite's shapes."""
    cfg = compose_config([f"attack={name}", "task=celeba", "suite=paper", "progress=false"])
    budget = dict(cfg.suite.budgets.celeba)
    size, classes = int(cfg.task.image_size), int(cfg.task.private_identities)
    shape = (3, size, size)
    # the attack as the paper suite builds it: its published GAN architectures (suite priors)
    settings = attack_settings(
        cfg.attack, budget, suite_priors(cfg), None, suite_method_settings(cfg, name)
    )
    attack = ATTACKS.get(name).obj(settings, RunContext(device=device, amp=amp, progress=False))
    torch.manual_seed(0)
    task = TaskView("image", shape, classes)
    target = (
        build_image_model(str(cfg.task.target.model), classes, shape, dict(cfg.task.target))
        .to(device)
        .eval()
    )
    public = SimpleNamespace(images=torch.rand(public_images, *shape))

    def probabilities(images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(target(images), dim=-1)

    batches: dict[str, int] = {}  # each GAN's minibatch, as timed

    def set_updates(block: str, updates: int) -> None:
        attack.cfg[block]["steps"] = updates
        if prior_batch_size is not None:
            attack.cfg[block]["batch_size"] = prior_batch_size
        batches[block] = int(attack.cfg[block]["batch_size"])

    def train_gans(updates: int) -> tuple[PeakMemory, torch.nn.Module | None, dict]:
        prior, gans = attack.build_prior(task), attack.build_target_prior(task, target)
        with PeakMemory(device=device) as cost:
            if prior is not None:
                set_updates("prior", updates)
                prior = prior.to(device)
                attack.train_prior(prior, public, progress=False)
            for block, module in gans.items():
                set_updates(block, updates)
                gans[block] = module.to(device)
                attack.train_target_prior(
                    gans[block], public, target, probabilities, progress=False
                )
        return cost, prior, gans

    # after an untimed warm-up (kernel selection, allocator), once with one update and once with
    # 1 + prior_steps: their difference is the time per update, without the one-off work (the
    # target labelling the public images for KEDMI and PLG-MI)
    train_gans(1)
    once, _, _ = train_gans(1)
    training, prior, gans = train_gans(1 + prior_steps)
    per_update = (training.seconds - once.seconds) / prior_steps
    fixed = max(once.seconds - per_update, 0.0)

    access = WhiteBoxAccess(target, probabilities)
    per = int(budget["samples_per_identity"])
    victims = ImageVictims(torch.arange(identities), per, shape, classes)
    attack.run(
        access, victims, prior, {"steps": 1}, device_generator(0, device), target_prior=gans or None
    )  # warm-up (kernel selection, allocator), not timed
    access.queries = 0
    with PeakMemory(device=device) as search:
        recon = attack.run(
            access,
            victims,
            prior,
            {"steps": steps},
            device_generator(0, device),
            target_prior=gans or None,
        )
        recon = recon.cpu()
    if not torch.isfinite(recon).all():
        raise SystemExit(
            f"paper-cost: {name} produced NaN or inf reconstructions on {device} "
            f"(amp={amp}); rerun with --amp false to see whether autocast is why"
        )

    paper_steps, paper_prior_steps = int(budget["steps"]), int(budget["prior_steps"])
    per_identity = search.seconds / identities
    return {
        "attack": name,
        "image_shape": list(shape),
        "classes": classes,
        "target": str(cfg.task.target.model),
        "samples_per_identity": per,
        "identities": identities,
        "steps": steps,
        "search_seconds": round(search.seconds, 3),
        "seconds_per_identity": round(per_identity, 4),
        "seconds_per_identity_at_paper_steps": round(per_identity * paper_steps / steps, 3),
        "projected": steps != paper_steps,
        "paper_steps": paper_steps,
        "search_peak_mb": peak_mb(search),
        "prior_steps": prior_steps,
        "prior_batch_sizes": batches,
        "prior_batch_is_the_papers": prior_batch_size is None,
        "prior_seconds_per_update": round(per_update, 5),
        "prior_fixed_seconds": round(fixed, 3),
        "prior_seconds_at_paper_steps": round(fixed + per_update * paper_prior_steps, 1),
        "paper_prior_steps": paper_prior_steps,
        "prior_peak_mb": peak_mb(training),
        "queries": access.queries,
    }


def report_lines(figures: dict) -> list[str]:
    memory = "GPU memory allocated" if figures["device"].startswith("cuda") else "peak RSS"
    lines = [
        f"paper-cost on {figures['device']} ({figures['device_name']}), amp "
        f"{'on' if figures['amp'] else 'off'}; peak memory is {memory}"
    ]
    for row in figures["attacks"]:
        projected = (
            f", projected to the paper's {row['paper_steps']} steps: "
            f"{row['seconds_per_identity_at_paper_steps']:.2f} s/identity"
            if row["projected"]
            else ""
        )
        lines.append(
            f"{row['attack']:6s} search {row['identities']} identities x "
            f"{row['samples_per_identity']}, {row['steps']} steps, {row['target']} at "
            f"{'x'.join(map(str, row['image_shape']))}: {row['search_seconds']:.2f} s = "
            f"{row['seconds_per_identity']:.4f} s/identity{projected}; peak "
            f"{row['search_peak_mb']:.0f} MB"
        )
        lines.append(
            f"{'':6s} GAN: {1000 * row['prior_seconds_per_update']:.1f} ms/update over "
            f"{row['prior_steps']} updates + {row['prior_fixed_seconds']:.2f} s once; the "
            f"paper's {row['paper_prior_steps']} updates: {row['prior_seconds_at_paper_steps']:.0f}"
            f" s, projected; peak {row['prior_peak_mb']:.0f} MB"
            + (
                ""
                if row["prior_batch_is_the_papers"]
                else f" (minibatch {sorted(set(row['prior_batch_sizes'].values()))}, not the "
                "paper's: the GAN figures are not its cost)"
            )
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark.paper_cost",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--attacks", default=",".join(GPU_ATTACKS))
    parser.add_argument("--device", default=os.environ.get("INVBENCH_DEVICE", "auto"))
    parser.add_argument("--amp", default="auto")
    parser.add_argument(
        "--identities",
        type=int,
        default=None,
        help="attacked identities (default: the paper suite's 300)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="latent-search iterations (default: the paper suite's 2400)",
    )
    parser.add_argument(
        "--prior-steps",
        type=int,
        default=200,
        help="GAN updates timed; the paper's count is projected from them",
    )
    parser.add_argument("--public-images", type=int, default=4096)
    parser.add_argument(
        "--prior-batch-size",
        type=int,
        default=None,
        help="the GANs' minibatch while timed (default: each attack's own, the paper's 64); "
        "smaller for a quick check on a CPU, where its figures are not the paper's",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where the JSON goes (default: <INVBENCH_RESULTS or results>/perf)",
    )
    args = parser.parse_args(argv)
    load_all()
    unknown = [name for name in args.attacks.split(",") if name not in GPU_ATTACKS]
    if unknown:
        parser.error(f"--attacks takes some of {', '.join(GPU_ATTACKS)}, not {unknown}")
    budget = compose_config(["task=celeba", "suite=paper"]).suite.budgets.celeba
    identities = args.identities or int(budget["identities"])
    steps = args.steps or int(budget["steps"])
    if min(identities, steps, args.prior_steps, args.public_images, args.prior_batch_size or 1) < 1:
        parser.error(
            "--identities, --steps, --prior-steps, --public-images and --prior-batch-size "
            "must be >= 1"
        )
    try:
        device = resolve_device(args.device)
        amp = resolve_amp(args.amp, device)
    except InvbenchError as error:
        parser.exit(2, f"paper-cost: {error}\n")
    figures = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{torch.get_num_threads()} CPU threads",
        "amp": amp,
        "torch": torch.__version__,
        "attacks": [
            cell_cost(
                name,
                device,
                amp,
                identities=identities,
                steps=steps,
                prior_steps=args.prior_steps,
                public_images=args.public_images,
                prior_batch_size=args.prior_batch_size,
            )
            for name in args.attacks.split(",")
        ],
    }
    publish(figures, report_lines(figures), args.out, "paper-cost")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
