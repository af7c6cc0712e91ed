"""The GPU path, checked on a machine without one.

- Which device a worker and a cell get (``benchmark/devices.py``, ``runner.cell_device``).
- Placement: the GPU-ready code runs with every module and input on PyTorch's ``meta`` device.
  A meta tensor meets a CPU tensor only with an error ("Tensor on device cpu is not on the
  expected device meta"), so a tensor created without the device, or data left on the host,
  fails here as it would on a GPU. Meta tensors hold no values, so the same run also proves the
  latent searches never read a value back to the host (``item``, ``bool``, ``tolist`` raise).
- Mixed precision: bfloat16 autocast leaves GMI's attack success within tolerance.
"""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import pytest
import torch
from filelock import FileLock, Timeout
from torch.overrides import TorchFunctionMode

from benchmark.access import WhiteBoxAccess
from benchmark.context import RunContext
from benchmark.devices import exclusive_gpu, resolve_amp, resolve_device
from benchmark.errors import InvbenchError
from benchmark.registry import ATTACKS, DEFENSES, TASKS, load_all
from benchmark.runner import build_task, cell_device, run_cell
from tasks.training import fit_classifier
from tests.conftest import SMOKE, compose

META = torch.device("meta")


def test_each_worker_of_a_sweep_gets_its_own_gpu():
    assert [resolve_device("auto", job, gpus=4) for job in range(6)] == [
        torch.device("cuda", i) for i in (0, 1, 2, 3, 0, 1)
    ]
    assert resolve_device("cuda", 5, gpus=1) == torch.device("cuda", 0)  # a SLURM job's GPU
    assert resolve_device("cuda:1", 0, gpus=2) == torch.device("cuda", 1)
    assert resolve_device("auto", 3, gpus=0) == torch.device("cpu")
    assert resolve_device("cpu", 3, gpus=8) == torch.device("cpu")


@pytest.mark.parametrize(
    "spec, gpus, fix",
    [
        ("cuda", 0, "device=cpu"),
        ("cuda:2", 2, "index below 2"),
        ("cuda:x", 2, "cuda:0"),
        ("tpu", 0, "auto, cpu, cuda or cuda:N"),
    ],
)
def test_an_impossible_device_names_the_fix(spec, gpus, fix):
    with pytest.raises(InvbenchError, match=fix):
        resolve_device(spec, 0, gpus=gpus)


class OtherCell:
    """Another cell holding a GPU's lock, from its own thread (as another worker would)."""

    def __init__(self, path):
        self.holding, self.done = threading.Event(), threading.Event()
        threading.Thread(target=self._hold, args=(str(path),), daemon=True).start()
        assert self.holding.wait(5)

    def _hold(self, path: str) -> None:
        with FileLock(path):
            self.holding.set()
            self.done.wait()

    def finish(self, after: float = 0.0) -> None:
        threading.Timer(after, self.done.set).start()


def test_a_cell_holds_its_gpu_and_a_busy_one_sends_the_next_cell_elsewhere(tmp_path):
    """Three GPUs, some held by other cells: job 1 prefers cuda:1."""

    def lease(index: int, explicit: bool = False):
        return exclusive_gpu(
            torch.device("cuda", index),
            explicit=explicit,
            gpus=3,
            identify=lambda i: f"gpu{i}",
            lock_dir=tmp_path,
            poll_seconds=0.05,
        )

    def busy(index: int) -> OtherCell:
        return OtherCell(tmp_path / f"gpu{index}.lock")

    with lease(1) as device:
        assert device == torch.device("cuda", 1)
        with pytest.raises(Timeout):  # held for the whole cell
            FileLock(str(tmp_path / "gpu1.lock")).acquire(timeout=0)
    others = {1: busy(1)}
    with lease(1) as device:
        assert device == torch.device("cuda", 2)  # the next free one
    others[2] = busy(2)
    with lease(1) as device:
        assert device == torch.device("cuda", 0)
    others[0] = busy(0)
    # all busy: the job waits, and takes the first one freed
    others[0].finish(after=0.3)
    with lease(1) as device:
        assert device == torch.device("cuda", 0)
    # a GPU named by index is waited for even while another is free
    others[2].finish(after=0.3)
    with lease(2, explicit=True) as device:
        assert device == torch.device("cuda", 2)
    others[1].finish()
    with exclusive_gpu(torch.device("cpu"), explicit=False) as device:
        assert device == torch.device("cpu")


def test_amp_is_on_by_default_on_a_gpu_with_bfloat16_only(monkeypatch):
    capability = {"value": (9, 0)}  # an H100
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device: capability["value"])
    gpu = torch.device("cuda", 0)
    assert resolve_amp("auto", gpu) is True
    assert resolve_amp("auto", torch.device("cpu")) is False
    assert resolve_amp("true", torch.device("cpu")) is True
    capability["value"] = (7, 0)  # a V100: no bfloat16
    assert resolve_amp("auto", gpu) is False
    with pytest.raises(InvbenchError, match="use amp=false"):
        resolve_amp("true", gpu)
    with pytest.raises(InvbenchError, match="auto, true or false"):
        resolve_amp("maybe", torch.device("cpu"))


def test_a_cell_runs_on_the_gpu_only_when_all_its_methods_can():
    load_all()
    gpu = torch.device("cuda", 1)
    digits, none = TASKS.get("digits"), DEFENSES.get("none")
    assert cell_device(gpu, digits, ATTACKS.get("gmi"), none) == (gpu, None)
    device, why = cell_device(gpu, digits, ATTACKS.get("brepmi"), DEFENSES.get("mid"))
    assert device == torch.device("cpu") and why == "brepmi, mid run(s) on the CPU only"
    assert cell_device(torch.device("cpu"), TASKS.get("cora"), ATTACKS.get("gmi"), none) == (
        torch.device("cpu"),
        None,
    )


def test_the_record_says_where_the_cell_ran(workdir):
    record = run_cell(compose(*SMOKE, "task=digits", "attack=gmi", "defense=none", "device=cpu"))
    assert record["status"] == "ok", record["error"]
    assert record["compute"] == {
        "device": "cpu",
        "amp": False,
        "requested": "cpu",
        "cpu_because": None,
    }
    with pytest.raises(InvbenchError, match="device=cpu"):
        run_cell(compose(*SMOKE, "task=digits", "attack=gmi", "defense=none", "device=cuda"))


class ReadsCounted(TorchFunctionMode):
    """Counts ``Tensor.item`` calls on the device (a host-device synchronisation on a GPU; the
    optimizers' step counters live on the host), answering NaN: a meta tensor holds no value."""

    def __init__(self):
        super().__init__()
        self.reads = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.Tensor.item and args[0].device == META:
            self.reads += 1
            return float("nan")
        return func(*args, **(kwargs or {}))


def gpu_ready(registry) -> list[str]:
    load_all()
    return [name for name in registry.names() if registry.get(name).obj.runs_on_gpu]


@pytest.fixture(scope="module")
def digits_task(tmp_path_factory):
    cfg = compose(*SMOKE, "task=digits", "attack=gmi")
    cfg.paths.cache = str(tmp_path_factory.mktemp("cache"))
    return build_task(cfg)


def test_the_gpu_ready_methods_are_the_image_family():
    assert gpu_ready(ATTACKS) == [
        "deepinversion",
        "gan-random",
        "gmi",
        "kedmi",
        "lomma-gmi",
        "lomma-kedmi",
        "lomma-plgmi",
        "miface",
        "plgmi",
        "ppa",
    ]
    assert gpu_ready(DEFENSES) == ["label-smoothing", "negls", "none"]
    assert {"digits", "olivetti", "celeba"} <= set(gpu_ready(TASKS))


@pytest.mark.parametrize("defense_name", gpu_ready(DEFENSES))
def test_target_training_keeps_everything_on_the_models_device(digits_task, defense_name):
    defense = DEFENSES.get(defense_name).obj(compose(f"defense={defense_name}").defense)
    split = digits_task._splits()
    model = defense.adapt_target(digits_task.build_target()).to(META)
    fit_classifier(
        model,
        split["train_x"][:64],
        split["train_y"][:64],
        epochs=2,
        lr=1e-3,
        batch_size=16,
        flip=True,
        step_loss=defense.training_step,
        epoch_start=getattr(defense, "start_epoch", None),
        progress=False,
    )
    assert all(p.device == META for p in model.parameters())


@pytest.mark.parametrize("name", gpu_ready(ATTACKS))
def test_gpu_attacks_train_and_search_on_the_device_without_host_reads(digits_task, name):
    assert "image" in ATTACKS.get(name).modalities, "only the image tasks have a GPU path"
    attack = ATTACKS.get(name).obj(
        compose(*SMOKE, f"attack={name}").attack, RunContext(device=META, progress=False)
    )
    target = digits_task.build_target().to(META).eval()
    public = SimpleNamespace(images=digits_task.public_data().images)  # stays on the host

    artifacts, summaries = {}, []
    for steps in (2, 3):  # the trainers read values back once, after the loop, whatever steps
        with ReadsCounted() as counted:
            prior = attack.build_prior(digits_task.attacker_view())
            if prior is not None:
                attack.cfg["prior"]["steps"] = steps
                attack.train_prior(prior.to(META), public, progress=False)
            for block, module in attack.build_target_prior(
                digits_task.attacker_view(), target
            ).items():
                attack.cfg[block]["steps"] = steps
                attack.train_target_prior(
                    module.to(META), public, target, digits_task.probs_fn(target), progress=False
                )
                artifacts[block] = module
        summaries.append(counted.reads)
    assert summaries[0] == summaries[1]

    access = WhiteBoxAccess(target, digits_task.probs_fn(target))
    victims = digits_task.victims({"identities": 3, "samples_per_identity": 2}, None)
    recon = attack.run(
        access,
        victims,
        prior,
        {"steps": 3},
        torch.Generator().manual_seed(0),
        **({"target_prior": artifacts} if artifacts else {}),
    )
    assert recon.device == META and tuple(recon.shape) == (3, 2, *digits_task.image_shape)
    if ATTACKS.get(name).access == "whitebox":  # the target ran on the device, per step and image
        assert access.queries >= 3 * 6


@pytest.mark.slow
def test_bfloat16_autocast_keeps_gmi_success_within_tolerance(workdir):
    """The mini digits cell of GMI with and without autocast (bfloat16 on the CPU here, as on
    a GPU): the reconstructions differ, the attack success by at most 0.1."""
    full = run_cell(
        compose("task=digits", "attack=gmi", "defense=none", "progress=false", "amp=false")
    )
    mixed = run_cell(
        compose(
            "task=digits", "attack=gmi", "defense=none", "progress=false", "amp=true", "rerun=true"
        )
    )
    assert mixed["compute"]["amp"] is True and full["compute"]["amp"] is False
    assert mixed["reconstruction_sha256"] != full["reconstruction_sha256"]
    assert set(mixed["metrics"]) == set(full["metrics"])
    success = [r["metrics"]["attack_acc@1"]["value"] for r in (mixed, full)]
    assert abs(success[0] - success[1]) <= 0.1


@pytest.mark.slow
def test_paper_cost_times_the_search_and_the_gan_at_celeba_shapes(tmp_path, capsys):
    from benchmark.paper_cost import main as paper_cost

    assert (
        paper_cost(
            [
                "--attacks",
                "gmi,plgmi",
                "--identities",
                "2",
                "--steps",
                "2",
                "--prior-steps",
                "3",
                "--prior-batch-size",
                "4",  # the mechanics, not the cost: PLG-MI's SNGAN takes 21 s an update at 64
                "--public-images",
                "64",
                "--device",
                "cpu",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    figures = json.loads(next(tmp_path.glob("paper-cost-*.json")).read_text())
    gmi, plgmi = figures["attacks"]
    assert figures["device"] == "cpu" and figures["amp"] is False
    assert gmi["image_shape"] == [3, 64, 64] and gmi["classes"] == 1000
    # one target forward per image and step (PLG-MI: one per augmentation), warm-up excluded
    assert gmi["queries"] == 2 * 5 * 2 and plgmi["queries"] == 2 * 5 * 2 * 2
    for row in figures["attacks"]:
        assert row["projected"] and row["paper_steps"] == 2400
        assert row["seconds_per_identity"] == pytest.approx(row["search_seconds"] / 2, abs=1e-3)
        assert row["seconds_per_identity_at_paper_steps"] == pytest.approx(
            row["seconds_per_identity"] * 1200, rel=1e-2
        )
        assert row["prior_seconds_per_update"] > 0 and row["search_peak_mb"] > 0
        assert (
            set(row["prior_batch_sizes"].values()) == {4} and not row["prior_batch_is_the_papers"]
        )
    printed = capsys.readouterr().out
    assert "projected to the paper's 2400 steps" in printed and "plgmi" in printed
    assert "minibatch [4], not the paper's" in printed


def test_paper_cost_refuses_a_gpu_it_cannot_see(capsys):
    from benchmark.paper_cost import main as paper_cost

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(SystemExit) as stopped:
        paper_cost(["--device", "cuda"])
    assert stopped.value.code == 2
    assert "device=cpu" in capsys.readouterr().err
