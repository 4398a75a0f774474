"""Target trees, pool targets and event resolution (decisions §1 Ids, §2 Event resolution)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import DomainError
from domain.game import MAX_GAME_EVENTS, check_event_room
from domain.targets import (
    MAX_GAME_ACTIONS,
    MAX_GAME_TARGETS,
    MAX_POOL_TARGETS,
    MAX_TARGET_NAME,
    TargetTree,
    action_id,
    build_actions,
    level,
    merged_actions,
    parse_list,
    path,
    pool_targets,
    symbol,
    target_id,
    winning_target,
)

GAME = ["Argentina", "Brazil", "Argentina:1", "Argentina:2", "Brazil:7", "Brazil:9"]


@pytest.mark.parametrize(
    ("value", "out"),
    [
        (None, []),
        ("", []),
        ("argentina,brazil", ["argentina", "brazil"]),
        (" Argentina , Brazil:7 ,, ", ["Argentina", "Brazil:7"]),
        (["Goal", " Offside ", ""], ["Goal", "Offside"]),
        (("a",), ["a"]),
        ([], []),
    ],
)
def test_parse_list(value: object, out: list[str]) -> None:
    assert parse_list(value, "targets") == out


@pytest.mark.parametrize("value", [5, {"a": 1}, [1, 2], ["a", None], True])
def test_parse_list_rejects(value: object) -> None:
    with pytest.raises(DomainError) as info:
        parse_list(value, "targets")
    assert info.value.code == "INVALID_PARAMETER"
    assert "targets" in info.value.text


def test_target_id_and_helpers() -> None:
    assert target_id(" Argentina ") == "argentina"
    assert target_id("Argentina : 1") == "argentina:1"
    assert symbol("argentina") == "arg"
    assert symbol("argentina:1") == "1"
    assert symbol("none") == "non"
    assert level("argentina") == 1
    assert level("argentina:1") == 2
    assert path("brazil:9") == ["brazil", "brazil:9"]
    assert path("a:b:c") == ["a", "a:b", "a:b:c"]


@pytest.mark.parametrize("name", ["", "  ", ":", "brazil:", ":9", "a::b"])
def test_target_id_rejects_empty_segments(name: str) -> None:
    with pytest.raises(DomainError) as info:
        target_id(name)
    assert info.value.code == "INVALID_TARGET"


def test_build_adds_parents_and_none() -> None:
    tree = TargetTree.build(["Argentina:1"])
    assert tree.ids() == ["argentina", "argentina:1", "none"]
    assert tree.display_name("argentina") == "Argentina"
    assert tree.display_name("argentina:1") == "1"
    assert tree.display_name("none") == "None"
    assert "argentina" in tree and "brazil" not in tree


def test_explicit_name_beats_implied_parent_spelling() -> None:
    tree = TargetTree.build(["argentina:1", "ARGENTINA", "Argentina"])
    assert tree.display_name("argentina") == "ARGENTINA"


def test_none_cannot_have_children_and_keeps_its_display() -> None:
    assert TargetTree.build(["NONE", "x"]).ids() == ["x", "none"]
    assert TargetTree.build(["NONE"]).display_name("none") == "None"
    with pytest.raises(DomainError):
        TargetTree.build(["none:1"])


def test_leaves() -> None:
    tree = TargetTree.build(GAME)
    assert not tree.is_leaf("argentina")
    assert tree.is_leaf("argentina:1")
    assert tree.is_leaf("none")
    assert not tree.is_leaf("nowhere")
    assert TargetTree.build(["Argentina", "Brazil"]).is_leaf("brazil")


def test_to_wire_matches_seed_shape() -> None:
    tree = TargetTree.build(["Argentina", "Brazil", "Argentina:1", "Argentina:2", "Brazil:7"])
    assert tree.to_wire() == {
        "argentina": {
            "symbol": "arg",
            "display_name": "Argentina",
            "targets": {
                "1": {"symbol": "1", "display_name": "1", "targets": {}},
                "2": {"symbol": "2", "display_name": "2", "targets": {}},
            },
        },
        "brazil": {
            "symbol": "bra",
            "display_name": "Brazil",
            "targets": {"7": {"symbol": "7", "display_name": "7", "targets": {}}},
        },
        "none": {"symbol": "non", "display_name": "None", "targets": {}},
    }


def test_storage_round_trip_and_merge() -> None:
    tree = TargetTree.build(GAME)
    again = TargetTree(json.loads(json.dumps(tree.as_dict())))
    assert again == tree
    assert again.to_wire() == tree.to_wire()
    bigger = tree.merged(["Brazil:10", "argentina", "Chile"])
    assert "brazil:10" in bigger and "chile" in bigger
    assert bigger.display_name("argentina") == "Argentina"  # existing spelling kept
    assert "brazil:10" not in tree  # the original is unchanged
    assert bigger.ids()[-1] == "none"


def test_repairs_stored_mapping_with_child_first() -> None:
    tree = TargetTree({"brazil:7": "7", "brazil": "Brazil"})
    assert tree.ids() == ["brazil", "brazil:7", "none"]
    assert tree.display_name("brazil") == "Brazil"


def test_pool_targets() -> None:
    tree = TargetTree.build(GAME)
    assert pool_targets(tree, ["Argentina", "brazil"]) == ["argentina", "brazil", "none"]
    assert pool_targets(tree, ["brazil:9", "none", "Argentina:1", "BRAZIL:9"]) == [
        "brazil:9",
        "none",
        "argentina:1",
    ]


@pytest.mark.parametrize(
    "names", [[], ["none"], ["chile"], ["argentina", "brazil:9"], ["argentina", "a::b"]]
)
def test_pool_targets_rejects(names: list[str]) -> None:
    with pytest.raises(DomainError) as info:
        pool_targets(TargetTree.build(GAME), names)
    assert info.value.code == "INVALID_TARGET"


def test_winning_target() -> None:
    teams = ["argentina", "brazil", "none"]
    players = ["argentina:1", "brazil:9", "none"]
    assert winning_target(teams, "brazil:9") == "brazil"
    assert winning_target(players, "brazil:9") == "brazil:9"
    assert winning_target(players, "brazil:7") == "none"
    assert winning_target(["chile", "none"], "brazil:9") == "none"
    assert winning_target(teams, "Brazil:9") == "brazil"


def test_actions() -> None:
    assert action_id(" Goal ") == "goal"
    assert build_actions(["Goal", "Offside", "GOAL"]) == {
        "goal": {"name": "Goal"},
        "offside": {"name": "Offside"},
    }
    with pytest.raises(DomainError):
        action_id("  ")


_segment = st.text(alphabet="abcXYZ019 ", min_size=1, max_size=4).filter(lambda s: s.strip())
_names = st.lists(st.lists(_segment, min_size=1, max_size=3).map(":".join), max_size=12).filter(
    lambda names: all(target_id(n).split(":")[0] != "none" for n in names)
)


@settings(max_examples=200)
@given(names=_names)
def test_tree_properties(names: list[str]) -> None:
    tree = TargetTree.build(names)
    ids = tree.ids()
    assert "none" in tree and tree.is_leaf("none")
    for name in names:
        tid = target_id(name)
        assert all(p in tree for p in path(tid))
    seen: set[str] = set()
    for tid in ids:
        parent = path(tid)[-2] if level(tid) > 1 else None
        assert parent is None or parent in seen  # parents listed first
        seen.add(tid)

    # every id appears exactly once in the nested wire shape
    def count(nodes: dict) -> int:
        return sum(1 + count(n["targets"]) for n in nodes.values())

    assert count(tree.to_wire()) == len(ids)
    assert TargetTree(tree.as_dict()) == tree


def test_an_event_resolves_open_parimutuel_pools_of_its_action_opened_before_it() -> None:
    from domain.pool import resolves_by_event

    pool = {"open": True, "pool_type": 1, "action": "goal", "start_at": 100}
    assert resolves_by_event(pool, "goal", 100)
    assert resolves_by_event({**pool, "pool_type": 2}, "goal", 150)
    assert not resolves_by_event({**pool, "pool_type": 3}, "goal", 150)  # binary: by hand
    assert not resolves_by_event({**pool, "open": False}, "goal", 150)
    assert not resolves_by_event(pool, "card", 150)
    assert not resolves_by_event(pool, "goal", 99)  # the goal came before the pool


# -- bounds and cost (decisions §13, issue 18) ---------------------------------------------


class CountedId(str):
    """A target id that counts the equality tests made on it: a scan of a list makes one
    per item kept, a set or dict lookup about one in all."""

    comparisons = 0

    def __eq__(self, other: object) -> bool:
        CountedId.comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_pool_targets_is_linear_in_the_names_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    """15,000 names over the 200 targets a pool may have: a check that scans what it kept
    (the quadratic one) would compare about 1.5 million times."""
    tree = TargetTree.build(f"T{i}" for i in range(MAX_POOL_TARGETS))
    names = [f"T{i % MAX_POOL_TARGETS}" for i in range(15_000)]
    original = target_id
    monkeypatch.setattr("domain.targets.target_id", lambda name: CountedId(original(name)))
    CountedId.comparisons = 0
    ids = pool_targets(tree, names)
    assert len(ids) == MAX_POOL_TARGETS + 1
    assert CountedId.comparisons <= 3 * len(names)


@settings(max_examples=50)
@given(st.lists(st.integers(0, 30), max_size=60))
def test_pool_targets_keeps_the_first_of_each_in_order(picks: list[int]) -> None:
    tree = TargetTree.build(f"t{i}" for i in range(31))
    names = [f"T{i}" for i in picks]
    expected = list(dict.fromkeys(f"t{i}" for i in picks))
    if not expected:
        with pytest.raises(DomainError):
            pool_targets(tree, names)
        return
    assert pool_targets(tree, names) == [*expected, "none"]


def test_a_pool_past_its_bound_is_refused() -> None:
    tree = TargetTree.build(f"t{i}" for i in range(MAX_POOL_TARGETS + 1))
    with pytest.raises(DomainError) as refused:
        pool_targets(tree, [f"t{i}" for i in range(MAX_POOL_TARGETS + 1)])
    assert refused.value.code == "INVALID_PARAMETER"
    assert refused.value.extra == {"parameter": "targets", "limit": MAX_POOL_TARGETS}
    assert len(pool_targets(tree, ["none", *(f"t{i}" for i in range(MAX_POOL_TARGETS))])) == 201


def test_game_bounds_refuse_growth_only() -> None:
    full = TargetTree.build(f"t{i}" for i in range(MAX_GAME_TARGETS))
    assert full.merged(["T1", "none"]) == full
    with pytest.raises(DomainError) as refused:
        full.merged(["one more"])
    assert (refused.value.code, refused.value.extra["limit"]) == ("INVALID_PARAMETER", 1_000)
    stored_over = TargetTree({f"t{i}": f"T{i}" for i in range(MAX_GAME_TARGETS + 5)})
    assert len(stored_over.merged(["t3"])) == MAX_GAME_TARGETS + 6
    long_name = "x" * (MAX_TARGET_NAME + 1)
    stored_long = TargetTree({long_name: long_name})
    assert stored_long.merged([long_name.upper()]) == stored_long
    with pytest.raises(DomainError) as refused:
        stored_long.merged([long_name + "y"])
    assert refused.value.extra == {"parameter": "targets", "limit": MAX_TARGET_NAME}
    actions = build_actions(f"a{i}" for i in range(MAX_GAME_ACTIONS))
    assert merged_actions(actions, ["A1"]) == actions
    with pytest.raises(DomainError) as refused:
        merged_actions(actions, ["another"])
    assert refused.value.extra == {"parameter": "actions", "limit": MAX_GAME_ACTIONS}


def test_events_past_the_bound_are_refused() -> None:
    check_event_room(MAX_GAME_EVENTS - 1)
    for recorded in (MAX_GAME_EVENTS, MAX_GAME_EVENTS + 3):
        with pytest.raises(DomainError) as refused:
            check_event_room(recorded)
        assert refused.value.extra["limit"] == MAX_GAME_EVENTS


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("x" * MAX_TARGET_NAME, True),
        ("é" * (MAX_TARGET_NAME // 2), True),  # two bytes each
        ("é" * (MAX_TARGET_NAME // 2 + 1), False),
        ("bell\x07", False),
        ("tab\there", False),
    ],
)
def test_a_new_target_name_is_bounded_in_bytes_and_printable(name: str, ok: bool) -> None:
    if ok:
        assert len(TargetTree.build([name])) == 2
        return
    with pytest.raises(DomainError) as refused:
        TargetTree.build([name])
    assert refused.value.code == "INVALID_PARAMETER"
