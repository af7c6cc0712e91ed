"""``invbench new attack NAME`` / ``invbench new defense NAME``: a new method's module and YAML.

The files come from ``benchmark/scaffolds/*.j2`` with the metadata a submission needs (citation,
access level or defense kind, modalities) already in the register decorator, and a marked line
where the method goes. The method is registered as soon as the file exists (``load_all`` imports
every module of the package); ``invbench check`` tells what is still missing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from benchmark.errors import InvbenchError
from benchmark.provenance import PROJECT_ROOT
from benchmark.registry import ACCESS_LEVELS, ATTACKS, DEFENSES, MODALITIES, PROBABILITY_RELEASES

SCAFFOLDS = Path(__file__).resolve().parent / "scaffolds"
NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")

CONTRACTS = {
    "image": "a tensor of shape [len(victims.classes), victims.per_class, *victims.image_shape] "
    "with values in [0, 1]",
    "graph": "an [n, n] tensor or array of edge scores over the n attacked nodes "
    "(victims.nodes), higher meaning more likely an edge",
    "text": "a list of len(victims.observed) strings, one reconstructed prompt per secret",
    "embedding": "a list of len(victims.observed) strings, one reconstructed text per released "
    "embedding",
}
ACCESS_HELP = {
    "whitebox": "access.model is the frozen target and access.probabilities(x) its "
    "differentiable output; forward passes are counted.",
    "scores": "access(queries) returns the released probability vectors, detached; every query "
    "counts toward the suite's budget and access holds no model.",
    "topk": "access(queries) returns only the k largest released probabilities (the rest 0); "
    "queries are counted against the budget.",
    "label": "access(queries) returns only the released argmax as a one-hot vector; queries are "
    "counted against the budget.",
    "none": "a baseline that never queries the model (access raises if it does).",
}
KIND_HELP = {
    "train": "it changes how the target is trained (its weights); white-box attacks see the "
    "result.",
    "output": "it processes what the deployed model releases; white-box cells are n/a.",
}


class ScaffoldError(InvbenchError):
    pass


@dataclass
class Metadata:
    title: str
    authors: str
    venue: str
    year: int
    url: str


def create_method(
    kind: str,
    name: str,
    metadata: Metadata,
    modality: str = "image",
    access: str = "whitebox",
    defense_kind: str = "output",
    root: Path = PROJECT_ROOT,
) -> list[Path]:
    """Write ``<attacks|defenses>/<module>.py`` and ``benchmark/conf/<kind>/<name>.yaml``."""
    if not NAME.match(name):
        raise ScaffoldError(
            f"'{name}' is not a method name: use lower-case letters, digits and "
            f"single hyphens, starting with a letter (e.g. my-attack)"
        )
    registry = ATTACKS if kind == "attack" else DEFENSES
    if name in registry:
        raise ScaffoldError(f"a {kind} named '{name}' is already registered; choose another name")
    if modality not in MODALITIES:
        raise ScaffoldError(f"--modality must be one of {', '.join(MODALITIES)}")
    if kind == "attack" and access not in ACCESS_LEVELS:
        raise ScaffoldError(f"--access must be one of {', '.join(ACCESS_LEVELS)}")
    if kind == "defense" and defense_kind not in KIND_HELP:
        raise ScaffoldError(f"--kind must be one of {', '.join(KIND_HELP)}")
    module = root / f"{kind}s" / f"{name.replace('-', '_')}.py"
    yaml = root / "benchmark" / "conf" / kind / f"{name}.yaml"
    for path in (module, yaml):
        if path.exists():
            raise ScaffoldError(f"{path} exists already; remove it or choose another name")
    environment = Environment(
        loader=FileSystemLoader(SCAFFOLDS), undefined=StrictUndefined, keep_trailing_newline=True
    )
    environment.filters["tojson"] = json.dumps
    # an output defense written for probabilities applies to every modality that releases them
    modalities = (
        PROBABILITY_RELEASES
        if kind == "defense" and defense_kind == "output" and modality in PROBABILITY_RELEASES
        else (modality,)
    )
    values = {
        **metadata.__dict__,
        "name": name,
        "kind": defense_kind,
        "access": access,
        "modality": modality,
        "contract": CONTRACTS[modality],
        "access_help": ACCESS_HELP.get(access, ""),
        "kind_help": KIND_HELP[defense_kind],
        "modalities": "".join(f"{json.dumps(m)}, " for m in modalities).rstrip(" "),
        "class_name": "".join(part.capitalize() for part in name.split("-")),
    }
    module.write_text(environment.get_template(f"{kind}.py.j2").render(values))
    yaml.write_text(environment.get_template(f"{kind}.yaml.j2").render(values))
    return [module, yaml]
