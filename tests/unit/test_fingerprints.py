"""Fingerprints without Feast: the code hash of a table builder follows its code and the
helpers it calls, not its comments; a model without recorded definitions is refused."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from feature_repo.tables.code_hash import code_hash
from skewless.fingerprints import definition_changes, skew_message

HELPERS = '''
from datetime import timedelta

WINDOW = 7
KNOWN_AFTER = timedelta(minutes=15)
COLUMNS = ["dep_delay", "arr_delay"]


def late_rate(rows):
    """The share of late departures."""
    return sum(rows) / max(len(rows), 1) * WINDOW + KNOWN_AFTER.seconds + len(COLUMNS)


def unrelated():
    return 0
'''
BUILDER = """
from . import helpers


def build(rows):
    # a comment
    return helpers.late_rate(rows)
"""


def _hash(folder: Path, helpers: str, builder: str, package: str) -> str:
    root = folder / package
    root.mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "helpers.py").write_text(helpers)
    (root / "builder.py").write_text(builder)
    sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    try:
        module = importlib.import_module(f"{package}.builder")
        return code_hash(module.build, parameters={"lead": 60})
    finally:
        sys.path.remove(str(folder))
        for name in [m for m in sys.modules if m.split(".")[0] == package]:
            del sys.modules[name]


@pytest.mark.parametrize(
    ("helpers", "builder", "same"),
    [
        (HELPERS, BUILDER.replace("# a comment", "# another comment"), True),
        (HELPERS.replace("The share of", "Share of"), BUILDER, True),  # a docstring
        (HELPERS.replace("return 0", "return 1"), BUILDER, True),  # a helper it never calls
        (HELPERS.replace("WINDOW = 7", "WINDOW = 14"), BUILDER, False),  # a constant it reads
        (HELPERS.replace("minutes=15", "minutes=30"), BUILDER, False),  # a Timedelta it reads
        (HELPERS.replace(', "arr_delay"', ""), BUILDER, False),  # a list it reads
        (HELPERS.replace("/ max(", "/ min("), BUILDER, False),  # the helper it calls
        (HELPERS, BUILDER.replace("late_rate(rows)", "late_rate(rows[1:])"), False),
    ],
    ids=[
        "comment",
        "docstring",
        "uncalled-helper",
        "constant",
        "timedelta",
        "list",
        "called-helper",
        "builder",
    ],
)
def test_a_builders_code_hash_follows_what_it_runs(
    tmp_path: Path, helpers: str, builder: str, same: bool
) -> None:
    before = _hash(tmp_path / "a", HELPERS, BUILDER, "builders")
    after = _hash(tmp_path / "b", helpers, builder, "builders")
    assert (before == after) is same


def test_a_model_without_recorded_definitions_is_refused_with_how_to_retrain() -> None:
    why = skew_message({}, {"x": {"field": "1"}}, "3")
    assert why is not None and "version 3" in why and "skewless train" in why


def test_changes_name_each_feature_and_part() -> None:
    recorded = {"a": {"field": "1", "view": "2"}, "b": {"field": "3"}, "c": {"field": "4"}}
    current = {"a": {"field": "1", "view": "9"}, "b": {"field": "3"}}
    assert definition_changes(recorded, current) == ["a: view changed", "c: no longer defined"]
    assert skew_message(recorded, recorded, "1") is None


def test_a_switch_to_the_namespace_already_live_keeps_the_rollback() -> None:
    from skewless.features.namespaces import Namespaces

    first = Namespaces(None, "p_aaaa", None).switched("p")
    assert first == Namespaces("p_aaaa", None, "p")
    # The same definitions deployed again: the candidate is the live namespace; rolling back
    # must still reach the one before it, not the live one itself.
    again = Namespaces("p_aaaa", "p_aaaa", "p").switched("p")
    assert again == Namespaces("p_aaaa", None, "p")
    assert again.rolled_back("p") == Namespaces("p", None, "p_aaaa")
