"""The structural gates of ``make lint`` (tote/lintgate.py) see what they claim to see."""

from __future__ import annotations

from pathlib import Path

from tote import lintgate


def test_cycles_are_found_and_grouped() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert lintgate.cycles(graph) == [("a", "b", "c")]


def test_sql_texts_are_statements_not_words(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        '"""SELECT x FROM docstrings is prose."""\n'
        'A = "SELECT id FROM users"\n'
        'B = f"delete from bets WHERE id = {1}"\n'
        'C = "DELETE"\n'
        'D = "Create a user"\n'
        'E = "INSERT OR IGNORE INTO t VALUES (1)"\n'
    )
    assert lintgate.sql_texts(source) == [2, 3, 6]


def test_the_project_is_within_its_allowances() -> None:
    assert lintgate.main() == 0


def test_an_import_from_a_higher_layer_is_found() -> None:
    graph = {"storage.a": {"actors.b", "domain.c"}, "actors.b": {"storage.a"}, "domain.c": set()}
    assert lintgate.upward_imports(graph) == ["storage.a -> actors.b"]
