"""Registry: duplicate names, unknown names with the closest match, compatibility."""

import pytest

from benchmark.methods import Attack, Defense, Task
from benchmark.registry import (
    ATTACKS,
    DEFENSES,
    METRICS,
    TASKS,
    Registry,
    UnknownNameError,
    incompatibility,
    load_all,
)

load_all()


class _Runs(Attack):
    def run(self, access, victims, prior, budget, generator):
        return None


def test_duplicate_name_is_an_error():
    registry = Registry("attack", base=Attack)
    registry.register("x")(_Runs)
    with pytest.raises(ValueError, match="duplicate attack name 'x'"):
        registry.register("x")(type("B", (_Runs,), {}))


def test_a_registered_method_derives_from_its_base_and_implements_it():
    with pytest.raises(TypeError, match="must be a class deriving from benchmark.methods.Attack"):
        ATTACKS.register("test-plain")(type("Plain", (), {"run": lambda self: None}))
    with pytest.raises(TypeError, match=r"'test-runless' \(Runless\) must implement run"):
        ATTACKS.register("test-runless")(type("Runless", (Attack,), {}))
    with pytest.raises(TypeError, match="must implement .*victims, check_reconstruction"):
        TASKS.register("test-half")(type("Half", (Task,), {"build_target": lambda self: None}))
    with pytest.raises(TypeError, match="metric 'test-number' must be callable"):
        METRICS.register("test-number", higher_is_better=True)(0.5)
    assert not {"test-plain", "test-runless"} & set(ATTACKS.names())
    assert "test-half" not in TASKS


def test_unknown_name_lists_known_names_and_closest_match():
    with pytest.raises(UnknownNameError) as error:
        ATTACKS.get("gmj")
    message = str(error.value)
    assert "Did you mean 'gmi'?" in message
    assert "link-steal-0" in message and "prompt-search" in message


def test_every_registered_method_declares_its_contract():
    for entry in ATTACKS.entries():
        assert entry.access in ("whitebox", "scores", "topk", "label", "none")
        assert entry.citation
    for entry in DEFENSES.entries():
        assert entry.defense_kind in ("none", "train", "output")
    for entry in TASKS.entries():
        assert len(entry.modalities) == 1


def test_compatibility_rules():
    digits, records = TASKS.get("digits"), TASKS.get("records")
    gmi, search = ATTACKS.get("gmi"), ATTACKS.get("prompt-search")
    noise, smoothing = DEFENSES.get("output-noise"), DEFENSES.get("label-smoothing")
    assert incompatibility(digits, gmi, DEFENSES.get("none")) is None
    assert "white-box" in incompatibility(digits, gmi, noise)
    assert "does not apply to image" in incompatibility(digits, search, noise)
    assert "label-smoothing" in incompatibility(records, search, smoothing)
    assert incompatibility(records, search, noise) is None


@pytest.mark.parametrize("suite", ["mini", "smoke", "paper"])
def test_every_suite_budgets_each_of_its_tasks_alike_for_every_attack(suite):
    from benchmark.cli import compose_config

    cfg = compose_config([f"suite={suite}"])
    budgets = cfg.suite.budgets
    for task in cfg.suite.tasks:
        TASKS.get(task)  # a registered task
        assert task in budgets, f"suite {suite} has no budget for {task}"
        if "image" in TASKS.get(task).modalities:
            # one budget per task, read by every image attack: no per-attack entry
            assert {"identities", "samples_per_identity", "steps", "prior_steps"} <= set(
                budgets[task]
            ), (suite, task)
            assert not set(budgets[task]) & set(ATTACKS.names())


def test_a_metric_carries_its_direction_and_a_defense_its_kind():
    with pytest.raises(ValueError, match="higher_is_better"):
        Registry("metric").register("m")
    metrics = Registry("metric")
    metrics.register("err", higher_is_better=False)(len)
    assert metrics.get("err").higher_is_better is False
    assert METRICS.get("fid").higher_is_better is False
    assert METRICS.get("attack_acc@1").higher_is_better is True
    for task in TASKS.entries():  # every metric a task scores is registered, with a direction
        for name in task.obj.metrics:
            assert isinstance(METRICS.get(name).higher_is_better, bool)
    defenses = Registry("defense", base=Defense)
    with pytest.raises(ValueError, match="kind must be one of"):
        defenses.register("d")(type("D", (Defense,), {"kind": "sometimes"}))
    defenses.register("t")(type("T", (Defense,), {"kind": "train"}))
    assert defenses.get("t").defense_kind == "train"
    assert DEFENSES.get("negls").defense_kind == "train"  # inherited from label-smoothing


def test_reported_numbers_are_checked_and_kept_for_their_own_task_and_target():
    from omegaconf import OmegaConf

    from benchmark.check import reported_problems
    from benchmark.runner import method_settings, reported_for

    entry = {
        "task": "celeba",
        "target": "vgg16",
        "table": "Table 1",
        "source": "https://arxiv.org/abs/2010.04092",
        "metrics": {"attack_acc@1": 0.5},
    }
    assert reported_problems([entry], "kedmi.yaml") == []
    bad = [{**entry, "source": "a paper"}, {**entry, "metrics": {"attack_acc@1": "high"}}]
    problems = reported_problems(bad, "kedmi.yaml")
    assert len(problems) == 2 and all("needs task, table, source" in p for p in problems)
    assert "must be a list" in reported_problems({"results": {}}, "kedmi.yaml")[0]
    method = OmegaConf.create({"name": "kedmi", "lr": 0.02, "reported": [entry]})
    celeba = OmegaConf.create({"name": "celeba", "target": {"model": "vgg16"}})
    assert reported_for(method, celeba) == [entry]
    ir152 = OmegaConf.create({"name": "celeba", "target": {"model": "ir152"}})
    assert reported_for(method, ir152) == []  # another target: not the paper's protocol
    assert reported_for(method, OmegaConf.create({"name": "digits"})) == []
    assert method_settings(method) == {"name": "kedmi", "lr": 0.02}  # outside the config hash
