"""Is the candidate judged against the champion only where the champion did not learn?"""

from __future__ import annotations

from training.bless import compare_to_champion
from training.config import Blessing


def _evaluation(auc: float) -> dict:
    return {"overall": {"roc_auc": auc}, "segments": {}}


def test_the_champion_is_judged_on_the_rows_after_its_data_and_named_so() -> None:
    rows = {"fair": 4000, "test": 6000, "seen_until": "2013-07-01T00:00:00+00:00"}
    check, _ = compare_to_champion(_evaluation(0.75), _evaluation(0.7519), Blessing(), rows)
    assert check.passed  # -0.0019: a tie within noise
    assert "the 4,000 of 6,000 test rows after the champion's data" in check.detail
    lost, _ = compare_to_champion(_evaluation(0.75), _evaluation(0.7521), Blessing(), rows)
    assert not lost.passed


def test_too_few_fair_rows_leave_the_baseline_to_judge_and_say_so() -> None:
    rows = {"fair": 10, "test": 6000, "seen_until": "2013-07-01T00:00:00+00:00"}
    checks = compare_to_champion(_evaluation(0.75), None, Blessing(), rows)
    assert [c.passed for c in checks] == [True]
    assert checks[0].detail.startswith("not comparable: the champion learned from data until")
    assert compare_to_champion(_evaluation(0.75), None, Blessing())[0].detail == "no champion yet"
