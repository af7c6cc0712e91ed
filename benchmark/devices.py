"""Where a cell computes: the worker's device, mixed precision, and host-to-device copies.

``device`` (config key, env ``INVBENCH_DEVICE``):

- ``auto`` (default): a GPU when torch sees one, else the CPU. With several GPUs, job number
  ``n`` of a sweep asks for ``cuda:{n % count}`` and holds it for the whole cell through a
  machine-wide lock (:func:`exclusive_gpu`); when another cell holds that one it takes the next
  free GPU, and when all are busy the first one freed. So ``jobs=4`` on 4 GPUs gives each of
  the 4 running cells a GPU of its own, whatever order joblib hands the cells out in. A SLURM
  job sees only the GPUs it was given (CUDA_VISIBLE_DEVICES) and takes its first.
- ``cpu``; ``cuda`` (as ``auto``, but an error without a GPU); ``cuda:N`` (that GPU, waiting
  while another cell of this machine holds it).

A cell runs on that device only when its task, attack and defense all declare
``runs_on_gpu = True`` (their tensors are created on the device of the modules and data they
work on; ``tests/test_devices.py`` checks it); otherwise it runs on the CPU and its record says
why (``compute``).

``amp`` (config key): ``auto`` (default) runs the latent searches of the GPU attacks under
bfloat16 autocast on a GPU that has bfloat16 (Ampere or later) and in full precision elsewhere;
``true`` / ``false`` force it.
bfloat16 keeps float32's exponent range, so no loss scaling is needed, and the attack success it
gives stays within the tolerance ``tests/test_devices.py`` asserts.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

import torch
from filelock import FileLock, Timeout

from benchmark.errors import InvbenchError

AMP_DTYPE = torch.bfloat16


def cuda_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def names_gpu_index(spec) -> bool:
    """Whether the ``device`` setting names one GPU (``cuda:N``), which a cell then waits for."""
    return str(spec).strip().lower().startswith("cuda:")


def resolve_device(spec, job_num: int = 0, gpus: int | None = None) -> torch.device:
    """The device of worker ``job_num`` for the ``device`` setting ``spec``; ``gpus`` is the
    number of CUDA devices visible (default: what torch sees)."""
    gpus = cuda_count() if gpus is None else gpus
    text = str(spec).strip().lower()
    if text == "cpu":
        return torch.device("cpu")
    if text in ("auto", "cuda", "gpu"):
        if gpus:
            return torch.device("cuda", int(job_num) % gpus)
        if text == "auto":
            return torch.device("cpu")
        why = (
            f"check the GPU and its driver with nvidia-smi (torch {torch.__version__} is "
            f"built for CUDA {torch.version.cuda})"
            if torch.version.cuda
            else f"torch {torch.__version__} is a CPU-only build: install a CUDA one"
        )
        raise InvbenchError(
            f"device={spec} but torch sees no CUDA device; run with device=cpu "
            f"or device=auto, or {why}"
        )
    if names_gpu_index(text):
        index = text.partition(":")[2]
        if not index.isdigit():
            raise InvbenchError(f"device={spec}: the GPU index must be a number, e.g. cuda:0")
        if int(index) >= gpus:
            raise InvbenchError(
                f"device={spec} but torch sees {gpus} CUDA device(s); use an "
                f"index below {gpus}, device=auto, or device=cpu"
            )
        return torch.device("cuda", int(index))
    raise InvbenchError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N")


def gpu_uuid(index: int) -> str:
    """A GPU's identity across processes (CUDA_VISIBLE_DEVICES renumbers GPUs per process)."""
    return str(torch.cuda.get_device_properties(index).uuid)


def gpu_lock_dir() -> Path:
    """Where this machine's GPU locks live: node-local, since each node has its own GPUs."""
    return Path(tempfile.gettempdir()) / "invbench-gpus"


@contextlib.contextmanager
def exclusive_gpu(
    preferred: torch.device,
    *,
    explicit: bool,
    gpus: int | None = None,
    identify: Callable[[int], str] = gpu_uuid,
    lock_dir: Path | None = None,
    poll_seconds: float = 1.0,
) -> Iterator[torch.device]:
    """Hold a GPU for one cell: ``preferred`` when free, else the next free one, else the first
    another cell frees. With ``explicit`` (the user named the index) only ``preferred``. The
    CPU passes through."""
    if preferred.type != "cuda":
        yield preferred
        return
    gpus = cuda_count() if gpus is None else gpus
    order = [preferred.index] if explicit else [(preferred.index + k) % gpus for k in range(gpus)]
    folder = lock_dir or gpu_lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    locks = {index: FileLock(str(folder / f"{identify(index)}.lock")) for index in order}
    chosen = None
    while chosen is None:
        for index in order:
            try:
                locks[index].acquire(timeout=0)
                chosen = index
                break
            except Timeout:
                continue
        else:
            time.sleep(poll_seconds)  # every GPU is busy: look again
    try:
        yield torch.device("cuda", chosen)
    finally:
        locks[chosen].release()


def bfloat16_capable(device: torch.device) -> bool:
    """bfloat16 kernels: every CPU, and GPUs of compute capability 8.0 (Ampere) or later."""
    return device.type != "cuda" or torch.cuda.get_device_capability(device) >= (8, 0)


def resolve_amp(spec, device: torch.device) -> bool:
    """``amp`` from the config: ``auto`` is on for a GPU with bfloat16, off elsewhere."""
    text = str(spec).strip().lower()
    if text == "auto":
        return device.type == "cuda" and bfloat16_capable(device)
    if text in ("true", "1", "yes", "on"):
        if not bfloat16_capable(device):
            raise InvbenchError(
                f"amp=true runs bfloat16, which {device} (compute capability "
                f"{torch.cuda.get_device_capability(device)}) lacks: it needs "
                f"8.0 or later; use amp=false or amp=auto"
            )
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise InvbenchError(f"amp must be auto, true or false, not {spec!r}")


def autocast(device: torch.device, enabled: bool):
    """bfloat16 autocast on ``device`` when enabled, else a no-op context."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AMP_DTYPE)


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (the CPU for a module with none)."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on ``device``: through pinned memory and an asynchronous copy on a GPU
    (the copy overlaps what the GPU is still doing), unchanged on the CPU."""
    if tensor.device == device:
        return tensor
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def device_generator(seed: int, device: torch.device) -> torch.Generator:
    """A seeded random generator on ``device`` (a CUDA kernel cannot draw from a CPU one)."""
    return torch.Generator(device=device).manual_seed(seed)
