"""The README's tables (benchmark/doc_tables.py): current with the registry and the YAMLs, changed
by a newly registered method, and refused by --check when stale. The real README is only read."""

from __future__ import annotations

import shutil

from benchmark import doc_tables
from benchmark.methods import Attack
from benchmark.registry import Citation, load_all
from tests.conftest import PROJECT, registered_image_attacks

README = PROJECT / "README.md"
CITATION = Citation("A listed attack", "Tester et al.", "Tests", 2026, "https://example.org/listed")
LISTED_ROW = "| `test-listed` | label | image | CPU | [Tester et al., Tests 2026](https://example.org/listed) |"


class _Listed(Attack):
    def run(self, oracle, victims, prior, budget, generator):
        raise NotImplementedError("only listed, never run")


def test_readme_tables_are_current():
    text = README.read_text()
    assert doc_tables.render(text) == text, (
        f"README.md's tables are stale: run {doc_tables.REGENERATE}"
    )


def test_a_registered_attack_gets_its_row_and_loses_it_when_removed():
    load_all()
    before = doc_tables.attacks_table()
    assert "test-listed" not in before
    with registered_image_attacks({"test-listed": (_Listed, "label", CITATION)}):
        during = doc_tables.attacks_table()
    assert LISTED_ROW in during.splitlines()
    # label attacks of images sit after the scores ones and before the floor
    rows = [row.split(" | ")[0].strip("| `") for row in during.splitlines()[2:]]
    assert rows.index("lokt") < rows.index("test-listed") < rows.index("gan-random")
    assert doc_tables.attacks_table() == before


def test_check_fails_on_a_stale_readme_and_passes_once_rewritten(tmp_path, capsys):
    original = README.read_bytes()
    copy = tmp_path / "README.md"
    shutil.copy(README, copy)
    with registered_image_attacks({"test-listed": (_Listed, "label", CITATION)}):
        assert doc_tables.main(["--check", "--readme", str(copy)]) == 1
        assert "make docs" in capsys.readouterr().err
        assert copy.read_bytes() == original  # --check writes nothing

        assert doc_tables.main(["--readme", str(copy)]) == 0
        assert LISTED_ROW in copy.read_text().splitlines()
        assert doc_tables.main(["--check", "--readme", str(copy)]) == 0
    # the copy now lists an attack that is gone: stale again
    assert doc_tables.main(["--check", "--readme", str(copy)]) == 1
    assert README.read_bytes() == original


def test_check_names_missing_markers(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# no tables here\n")
    assert doc_tables.main(["--check", "--readme", str(readme)]) == 1
    assert "<!-- tables:tasks:start -->" in capsys.readouterr().err


def test_defense_settings_are_the_yamls_own_scalars(tmp_path, monkeypatch):
    (tmp_path / "defense").mkdir()
    (tmp_path / "defense" / "toy.yaml").write_text(
        "defaults: [_base]\nname: toy\nscale: 0.05\nschedule: [0.5, 0.75]\n"
        "nested: {a: 1}\nreported: []\n"
    )
    monkeypatch.setattr(doc_tables, "CONF", tmp_path)
    assert doc_tables.yaml_settings("defense", "toy") == "`scale=0.05`, `schedule=[0.5, 0.75]`"
    assert doc_tables.yaml_settings("defense", "absent") == ""
