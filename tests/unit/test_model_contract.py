"""Is the model input built one way, with the contract's encoding, whatever the rows hold?"""

import numpy as np
import pandas as pd
import pytest

from skewless.model_contract import FeatureSpec, ModelContract, derive_features, feature_matrix

CONTRACT = ModelContract(
    "m",
    "svc",
    "1",
    "y",
    (FeatureSpec("speed", "numeric"), FeatureSpec("colour", "categorical", ("blue", "red"))),
)


def test_contract_order_codes_and_missing_values() -> None:
    rows = pd.DataFrame({"colour": ["red", None, "green"], "speed": [1, None, 3], "x": [0, 0, 0]})
    matrix = feature_matrix(rows, CONTRACT)
    assert matrix.shape == (3, 2)
    assert matrix[0].tolist() == [1.0, 1.0]  # speed first, red is category 1
    assert np.isnan(matrix[1]).all()
    assert np.isnan(matrix[2, 1])  # an unseen category is missing, never a new code


def test_contract_round_trips_through_json() -> None:
    assert ModelContract.from_json(CONTRACT.to_json()) == CONTRACT


def test_missing_feature_is_named() -> None:
    with pytest.raises(KeyError, match="colour"):
        feature_matrix(pd.DataFrame({"speed": [1.0]}), CONTRACT)


def test_categories_are_derived_sorted_from_training_rows() -> None:
    frame = pd.DataFrame({"c": ["b", "a", None, "b"], "n": [1.0, 2.0, 3.0, None]})
    specs = derive_features(frame, ["n", "c"])
    assert specs == (FeatureSpec("n", "numeric"), FeatureSpec("c", "categorical", ("a", "b")))


def test_a_mapping_of_columns_gives_the_same_matrix_as_a_frame() -> None:
    columns = {"colour": ["red", None, "green", "blue"], "speed": [1, None, 2.5, "7"], "x": [0] * 4}
    from_mapping = feature_matrix(columns, CONTRACT)
    from_frame = feature_matrix(pd.DataFrame(columns), CONTRACT)
    np.testing.assert_array_equal(from_mapping, from_frame)
    assert from_mapping[3].tolist() == [7.0, 0.0]  # a numeric string is coerced, both ways
