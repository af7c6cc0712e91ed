"""Published checkpoints: a local file, pinned by sha256, loaded in its published layout.

A task, attack or evaluator block may name one instead of training::

    checkpoint:
      layout: kedmi-vgg16                     # one of CHECKPOINT_LAYOUTS (`invbench data checkpoints`)
      path: checkpoints/VGG16_88.26.tar       # absolute, or relative to the data root
      sha256: 9f2c...                         # the file's sha256 (sha256sum prints it)

A layout describes one published file: the nesting around its tensors (KEDMI's and GMI's
``{'state_dict': ...}``), the ``module.`` prefix ``nn.DataParallel`` adds, and how its key names
map onto this project's modules. :func:`load_checkpoint` checks the hash first, then the layout:
every tensor the module expects must be in the file with its shape, and nothing else may be left
over, so a file of another layout fails with the keys it lacks and the layout it should have.
The layouts themselves live with their models (tasks/face_models.py, attacks/gan_prior.py,
attacks/kedmi.py) and register here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmark.downloads import dataset
from benchmark.errors import InvbenchError, MissingDataError


class CheckpointError(InvbenchError):
    """A named checkpoint file is not the one its config pins, or not in its layout."""


@dataclass(frozen=True)
class CheckpointLayout:
    name: str
    description: str  # what the file holds, for `invbench data checkpoints`
    filename: str  # where the published file goes under <data root>/checkpoints/
    source: str  # where it is published
    map_key: Callable[[str], str | None]  # published key (prefix stripped) -> ours; None: drop
    nesting: tuple[str, ...] = ("state_dict",)  # dict keys around the tensors
    prefix: str = "module."  # nn.DataParallel's prefix, stripped where present
    partial: bool = False  # a pretrained backbone: tensors whose shape differs stay initialised
    example_key: str = ""  # one published key, for error messages


CHECKPOINT_LAYOUTS: dict[str, CheckpointLayout] = {}


def register_layout(layout: CheckpointLayout) -> CheckpointLayout:
    CHECKPOINT_LAYOUTS[layout.name] = layout
    return layout


def layout_of(spec: Mapping) -> CheckpointLayout:
    name = spec.get("layout")
    if name not in CHECKPOINT_LAYOUTS:
        raise CheckpointError(
            f"unknown checkpoint layout {name!r}; the layouts are {sorted(CHECKPOINT_LAYOUTS)} "
            f"(`invbench data checkpoints` lists what each one is)"
        )
    return CHECKPOINT_LAYOUTS[name]


def resolve_checkpoint_path(spec: Mapping, data_root: Path | str) -> Path:
    path = Path(str(spec.get("path") or "")).expanduser()
    return path if path.is_absolute() else Path(data_root) / path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verified_file(spec: Mapping, data_root: Path | str) -> tuple[Path, CheckpointLayout, str]:
    """The checkpoint's path, layout and hash, after checking the file is the pinned one."""
    layout = layout_of(spec)
    path = resolve_checkpoint_path(spec, data_root)
    if not spec.get("path") or not path.is_file():
        raise MissingDataError(
            f"checkpoint {layout.name}: no file at {path}. Download {Path(layout.filename).name} from "
            f"{layout.source} and put it there (or set the checkpoint's path), or set the "
            f"checkpoint to null to train instead"
        )
    actual = sha256_of(path)
    expected = str(spec.get("sha256") or "").lower()
    if not expected:
        raise CheckpointError(
            f"checkpoint {layout.name} at {path} has no sha256 pinned: add sha256: {actual} "
            f"to its block once you trust the file"
        )
    if actual != expected:
        raise CheckpointError(
            f"checkpoint {layout.name} at {path} has sha256 {actual}, but its config pins "
            f"{expected}: it is not the file the config names. Download {Path(layout.filename).name} again "
            f"from {layout.source}, or fix the sha256"
        )
    return path, layout, actual


def published_tensors(raw: Any, layout: CheckpointLayout, path: Path) -> dict[str, torch.Tensor]:
    """The file's tensors under this project's key names."""
    state = raw
    for key in layout.nesting:
        if not isinstance(state, Mapping) or key not in state:
            found = sorted(state)[:5] if isinstance(state, Mapping) else type(state).__name__
            raise CheckpointError(
                f"{path} is not in the {layout.name} layout: expected a dict holding its tensors "
                f"under {'/'.join(layout.nesting)!r} (e.g. {layout.example_key!r}), found "
                f"{found}"
            )
        state = state[key]
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: expected a dict of tensors, found {type(state).__name__}")
    mapped = {}
    for key, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            continue
        bare = key[len(layout.prefix) :] if layout.prefix and key.startswith(layout.prefix) else key
        ours = layout.map_key(bare)
        if ours is not None:
            mapped[ours] = tensor
    return mapped


def load_checkpoint(module: torch.nn.Module, spec: Mapping, data_root: Path | str) -> dict:
    """Load the pinned checkpoint into ``module``; the provenance to record. A complete layout
    must match the module exactly; a partial one (a pretrained backbone) must cover every
    tensor it has a counterpart for, and reports those left at their initialisation."""
    path, layout, digest = verified_file(spec, data_root)
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"{path} does not load as a torch checkpoint: {error}") from error
    tensors = published_tensors(raw, layout, path)
    own = module.state_dict()
    missing = [k for k in own if k not in tensors and not k.endswith("num_batches_tracked")]
    unexpected = sorted(set(tensors) - set(own))
    mismatched = [
        f"{k}: file {tuple(tensors[k].shape)}, model {tuple(own[k].shape)}"
        for k in own
        if k in tensors and tensors[k].shape != own[k].shape
    ]
    skipped: list[str] = []
    if layout.partial:
        skipped = [k for k in own if k in tensors and tensors[k].shape != own[k].shape]
        missing = [k for k in missing if not _is_head(k)]
        mismatched = []
    if missing or unexpected or mismatched:
        details = "; ".join(
            f"{label} {items[:4]}{' ...' if len(items) > 4 else ''}"
            for label, items in (
                ("missing", missing),
                ("not in the model", unexpected),
                ("wrong shape", mismatched),
            )
            if items
        )
        raise CheckpointError(
            f"{path} does not fit the {layout.name} layout ({layout.description}; keys such as "
            f"{layout.example_key!r}): {details}. Check the layout named in the config and the "
            f"model's architecture and class count"
        )
    state = {k: v.to(own[k].dtype) for k, v in tensors.items() if k not in skipped}
    module.load_state_dict(state, strict=not layout.partial)
    return {
        "checkpoint": str(path),
        "checkpoint_sha256": digest,
        "checkpoint_layout": layout.name,
        **({"checkpoint_left_initialised": skipped} if skipped else {}),
    }


def _is_head(key: str) -> bool:
    return key.startswith("head.")


@dataset("checkpoints")
def list_checkpoints(data_root: Path, offline: bool) -> str:
    """`invbench data checkpoints`: every published checkpoint layout, where its file is
    published, where to put it, and which config block names it. Nothing is downloaded: the
    files are on their authors' drives, behind a browser."""
    folder = Path(data_root) / "checkpoints"
    lines = [
        f"Published checkpoints: download each file from its source into {folder}/, then name "
        f"it in the block shown with its sha256 (sha256sum prints it), e.g.",
        "  task.target.checkpoint={layout: kedmi-vgg16, path: checkpoints/kedmi/VGG16_88.26.tar, "
        "sha256: <hex>}",
        "",
    ]
    for layout in sorted(CHECKPOINT_LAYOUTS.values(), key=lambda item: item.name):
        present = (folder / layout.filename).is_file()
        lines += [
            f"{layout.name}: {layout.description}",
            f"    file   {folder / layout.filename}{'  (present)' if present else ''}",
            f"    from   {layout.source}",
            f"    block  {USED_IN.get(layout.name, 'task.target.checkpoint')}",
        ]
    return "\n".join(lines)


# the config block that names each layout (for the listing)
USED_IN = {
    "kedmi-evaluator": "task.evaluator.checkpoint",
    "gmi-generator": "attack.prior.checkpoint.generator (every attack on the shared GAN prior)",
    "gmi-discriminator": "attack.prior.checkpoint.discriminator",
    "kedmi-generator": "attack.target_prior.checkpoint.generator (kedmi, lomma-kedmi)",
    "kedmi-discriminator": "attack.target_prior.checkpoint.discriminator",
    "evolve-ir50": "task.evaluator.checkpoint or task.target.checkpoint (model ir50)",
    "evolve-ir152": "task.target.checkpoint (model ir152)",
}
