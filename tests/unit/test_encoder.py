"""Is the model input built one way, with the contract's encoding, whatever the rows hold, and
by one encoder online (row by row) and in batch (a matrix)?"""

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from skewless.models import encoder
from skewless.models.artifacts import LoadedModel
from skewless.models.contract import FeatureSpec, ModelContract, derive_features
from skewless.models.encoder import FeatureEncoder

CONTRACT = ModelContract(
    "m",
    "svc",
    "1",
    "y",
    (FeatureSpec("speed", "numeric"), FeatureSpec("colour", "categorical", ("blue", "red"))),
)


def test_contract_order_codes_and_missing_values() -> None:
    rows = pd.DataFrame({"colour": ["red", None, "green"], "speed": [1, None, 3], "x": [0, 0, 0]})
    matrix = FeatureEncoder(CONTRACT).matrix(rows)
    assert matrix.shape == (3, 2)
    assert matrix[0].tolist() == [1.0, 1.0]  # speed first, red is category 1
    assert np.isnan(matrix[1]).all()
    assert np.isnan(matrix[2, 1])  # an unseen category is missing, never a new code


def test_contract_round_trips_through_json() -> None:
    assert ModelContract.from_json(CONTRACT.to_json()) == CONTRACT


def test_missing_feature_is_named() -> None:
    with pytest.raises(KeyError, match="colour"):
        FeatureEncoder(CONTRACT).matrix(pd.DataFrame({"speed": [1.0]}))


def test_categories_are_derived_sorted_from_training_rows() -> None:
    frame = pd.DataFrame({"c": ["b", "a", None, "b"], "n": [1.0, 2.0, 3.0, None]})
    specs = derive_features(frame, ["n", "c"])
    assert specs == (FeatureSpec("n", "numeric"), FeatureSpec("c", "categorical", ("a", "b")))


# Every kind of value the two paths once read differently: numeric strings, unparseable
# strings, pandas NA, nullable integers, None, NaN; in a categorical feature: a number, a
# boolean, None, an unseen string.
AWKWARD = {
    "speed": [1, None, 2.5, "7", "fast", pd.NA, float("nan"), " 3.5 ", True, np.int64(4)],
    "colour": ["red", None, "green", "blue", 1, True, "red", pd.NA, 2.0, "blue"],
    "x": [0] * 10,
}


def test_a_mapping_a_frame_and_single_rows_encode_alike() -> None:
    enc = FeatureEncoder(CONTRACT)
    from_mapping = enc.matrix(AWKWARD)
    from_frame = enc.matrix(pd.DataFrame(AWKWARD))
    row = np.empty(2)
    rows = []
    for k in range(10):
        enc.row(AWKWARD, k, row)
        rows.append(row.copy())
    np.testing.assert_array_equal(from_mapping, from_frame)
    np.testing.assert_array_equal(from_mapping, np.array(rows))
    assert from_mapping[3].tolist() == [7.0, 0.0]  # a numeric string is coerced, every way
    assert np.isnan(from_mapping[4, 0]) and np.isnan(from_mapping[5, 0])  # unparseable, NA
    assert np.isnan(from_mapping[[1, 4, 5, 7, 8], 1]).all()  # non-strings in a category: missing


def test_nullable_and_plain_numeric_dtypes_encode_alike() -> None:
    enc = FeatureEncoder(CONTRACT)
    plain = pd.DataFrame({"speed": [1.0, np.nan, 3.0], "colour": ["red"] * 3})
    nullable = plain.astype({"speed": "Float64"})
    integers = pd.DataFrame({"speed": pd.array([1, None, 3], "Int64"), "colour": ["red"] * 3})
    expected = enc.matrix(plain)
    np.testing.assert_array_equal(enc.matrix(nullable), expected)
    np.testing.assert_array_equal(enc.matrix(integers), expected)


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    """A real LightGBM model whose scores depend on both features."""
    rng = np.random.default_rng(7)
    n = 400
    speed = rng.uniform(0, 10, n)
    colour = rng.integers(0, 2, n).astype("float64")
    label = ((speed > 5) ^ (colour == 1)).astype(int)
    data = lgb.Dataset(
        np.column_stack([speed, colour]),
        label,
        feature_name=["speed", "colour"],
        categorical_feature=["colour"],
        params={"min_data_in_bin": 1, "verbose": -1},
    )
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "min_data_in_leaf": 5, "num_threads": 1},
        data,
        num_boost_round=20,
    )
    return LoadedModel(booster, CONTRACT, "sha")


def _online_and_batch(model: LoadedModel) -> tuple[list[float], list[float]]:
    online = [model.single.score(AWKWARD, k) for k in range(10)]
    batch = model.score(pd.DataFrame(AWKWARD)).tolist()
    return online, batch


def test_a_rule_changed_in_the_one_place_moves_online_and_batch_alike(
    model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bug the project is named against: an encoding rule changed on one path only. Plant
    a change in the encoder's rules and both paths must move together."""
    online, batch = _online_and_batch(model)
    np.testing.assert_allclose(online, batch, rtol=0, atol=1e-12)

    original_number, original_category = encoder.number, encoder.category

    def strings_are_not_numbers(value: object) -> float:
        return 9.0 if isinstance(value, str) or value is pd.NA else original_number(value)

    def numbers_are_categories(value: object, codes: dict[str, float]) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return 1.0  # a planted rule: any number reads as category "red"
        return original_category(value, codes)

    monkeypatch.setattr(encoder, "number", strings_are_not_numbers)
    monkeypatch.setattr(encoder, "category", numbers_are_categories)
    moved_online, moved_batch = _online_and_batch(model)
    np.testing.assert_allclose(moved_online, moved_batch, rtol=0, atol=1e-12)
    changed = [k for k in range(10) if moved_online[k] != online[k]]
    # Rows whose speed crossed the model's split (4, 5, 7: unparseable, NA, " 3.5 ") or
    # whose colour is a number (8) moved; row 3 ("7" -> 9.0) stays on the same side...
    assert {4, 5, 7, 8} <= set(changed)
    # ...and rows the planted rules do not touch did not.
    assert moved_online[0] == online[0] and moved_online[9] == online[9]


def test_the_matrix_shortcuts_give_what_the_rule_gives_each_value() -> None:
    """The matrix takes numpy's conversion where it equals `number` value by value (numeric
    dtypes; lists of numbers and None): should `number` ever change for plain numbers, this
    fails until the shortcuts follow it, so online and batch cannot part."""
    from decimal import Decimal

    rng = np.random.default_rng(23)
    kinds = [
        lambda: float(rng.normal() * 10.0 ** rng.integers(-3, 12)),
        lambda: int(rng.integers(-(10**12), 10**12)),
        lambda: bool(rng.integers(0, 2)),
        lambda: None,
        lambda: float("nan"),
        lambda: float(rng.choice([np.inf, -np.inf])),
        lambda: np.float32(rng.normal()),
        lambda: np.int64(rng.integers(-100, 100)),
        lambda: Decimal("1.25"),
        lambda: 2**60 + 1,  # beyond a float's 53 bits: rounded the same way both ways
    ]
    text = [lambda: "7.5", lambda: " 3 ", lambda: "1_000", lambda: "abc", lambda: pd.NA]
    for trial in range(200):
        pool = kinds if trial % 2 else kinds + text  # half the lists hold no text at all
        values = [pool[rng.integers(0, len(pool))]() for _ in range(int(rng.integers(1, 40)))]
        expected = np.array([encoder.number(v) for v in values], dtype="float64")
        contract = ModelContract("m", "s", "1", "y", (FeatureSpec("speed", "numeric"),))
        enc = FeatureEncoder(contract)
        got = enc.matrix({"speed": values})[:, 0]
        np.testing.assert_array_equal(got, expected, err_msg=repr(values))
        series = pd.Series(values, dtype="object")
        np.testing.assert_array_equal(enc.matrix(pd.DataFrame({"speed": series}))[:, 0], expected)
    floats = rng.normal(size=1000) * 10.0 ** rng.integers(-5, 15, size=1000)
    floats[::7] = np.nan
    by_dtype = FeatureEncoder(CONTRACT).matrix({"speed": floats, "colour": ["red"] * 1000})
    np.testing.assert_array_equal(by_dtype[:, 0], [encoder.number(v) for v in floats])


def test_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="do not hold 1 rows"):
        FeatureEncoder(CONTRACT).matrix({"speed": [1.0], "colour": ["red", "blue"]})
