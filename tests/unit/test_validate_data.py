"""Does data validation stop on schema skew and only measure value skew?"""

import numpy as np
import pandas as pd
import pytest

from skewless.quality.reference import derive_schema
from training.config import DataValidation
from training.validate_data import validate

RNG = np.random.default_rng(0)
REFERENCE = pd.DataFrame(
    {"temp": RNG.normal(50, 10, 2000), "kind": RNG.choice(["a", "b", "c"], 2000)}
)
SCHEMA = derive_schema(REFERENCE, ["temp", "kind"])
FEATURES = ["temp", "kind"]


def test_same_distribution_passes_with_small_skew() -> None:
    report = validate(
        REFERENCE.sample(frac=0.5, random_state=1), FEATURES, SCHEMA, DataValidation()
    )
    assert report.passed and not report.warnings
    assert report.skew["temp"]["psi"] < 0.05 and report.skew["temp"]["ks"] < 0.05
    assert report.skew["kind"]["js"] < 0.01


@pytest.mark.parametrize(
    "frame, features, problem",
    [
        (REFERENCE.drop(columns="temp"), ["kind"], "missing columns"),
        (REFERENCE.assign(extra=1.0), [*FEATURES, "extra"], "unexpected columns"),
        (REFERENCE.assign(temp=REFERENCE["temp"].astype(str)), FEATURES, "type changed"),
        (
            REFERENCE.assign(temp=REFERENCE["temp"].mask(RNG.random(2000) < 0.3)),
            FEATURES,
            "null rate",
        ),
        (
            REFERENCE.assign(kind=REFERENCE["kind"].mask(RNG.random(2000) < 0.05, "zzz")),
            FEATURES,
            "unknown categories",
        ),
        (REFERENCE.assign(temp=REFERENCE["temp"] * 100), FEATURES, "outside"),
    ],
)
def test_schema_skew_is_a_problem(frame: pd.DataFrame, features: list[str], problem: str) -> None:
    report = validate(frame, features, SCHEMA, DataValidation())
    assert not report.passed
    assert any(problem in p for p in report.problems), report.problems


def test_value_skew_warns_or_stops_by_threshold() -> None:
    shifted = REFERENCE.assign(temp=REFERENCE["temp"] + 8)
    warned = validate(shifted, FEATURES, SCHEMA, DataValidation())
    assert warned.passed and any("temp" in w for w in warned.warnings)
    stopped = validate(shifted, FEATURES, SCHEMA, DataValidation(psi_stop=0.2))
    assert not stopped.passed


def test_ks_is_near_zero_for_the_same_zero_inflated_distribution() -> None:
    values = pd.DataFrame(
        {"rain": np.where(RNG.random(4000) < 0.85, 0.0, RNG.exponential(1, 4000))}
    )
    schema = derive_schema(values.iloc[:2000], ["rain"])
    report = validate(values.iloc[2000:], ["rain"], schema, DataValidation())
    assert report.skew["rain"]["ks"] < 0.05


def test_a_range_exempt_feature_may_leave_the_reference_range() -> None:
    months = pd.DataFrame({"month": RNG.integers(1, 7, 5000).astype("float64")})
    schema = derive_schema(months, ["month"])
    later = pd.DataFrame({"month": np.full(500, 11.0)})
    strict = validate(later, ["month"], schema, DataValidation())
    assert any("outside" in p for p in strict.problems)
    exempt = validate(later, ["month"], schema, DataValidation(range_exempt=["month"]))
    assert exempt.passed  # value skew is still measured
    assert exempt.skew["month"]["ks"] == pytest.approx(1.0)


def test_a_null_exempt_feature_may_be_null_more_often() -> None:
    gusts = pd.DataFrame({"gust": np.where(RNG.random(5000) < 0.7, np.nan, 20.0)})
    schema = derive_schema(gusts, ["gust"])
    calm = pd.DataFrame({"gust": np.where(RNG.random(500) < 0.97, np.nan, 20.0)})
    strict = validate(calm, ["gust"], schema, DataValidation())
    assert any("null rate" in p for p in strict.problems)
    assert validate(calm, ["gust"], schema, DataValidation(null_exempt=["gust"])).passed
