"""Are the records between rooms read as they were written, whichever release of skewless
wrote them: version tags, gate verdicts?"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from skewless.models.configuration import Window, Windows
from skewless.records import CheckResult, GateVerdict, StepVerdict, VersionTags
from skewless.registry.adapter import ModelRegistry
from tests.support.registry_state import mlflow_client

T = [datetime(2013, m, 1, tzinfo=UTC) for m in (1, 6, 7, 8)]
WINDOWS = Windows(
    train=Window(start=T[0], end=T[1]),
    validation=Window(start=T[1], end=T[2]),
    test=Window(start=T[2], end=T[3]),
)
RECORD = VersionTags(
    sha256="a" * 64,
    blessed=True,
    feature_service="delay_model_v1",
    windows=WINDOWS,
    git_commit="abc",
    feast_registry_sha256="b" * 64,
    test_roc_auc=0.77661,
    data_until=T[3],
)


def _as_main_wrote_them(record: VersionTags, *, with_data_until: bool = True) -> dict[str, str]:
    """The tags the pipeline registered before these records (training/register.py then)."""
    assert record.windows is not None
    tags = {
        "sha256": record.sha256,
        "blessed": str(record.blessed).lower(),
        "feature_service": record.feature_service,
        "windows": str(record.windows.model_dump(mode="json")),
        "git_commit": record.git_commit,
        "feast_registry_sha256": record.feast_registry_sha256,
        "test_roc_auc": f"{record.test_roc_auc:.5f}",
    }
    if with_data_until:
        tags["data_until"] = T[3].isoformat()
    return tags


def test_version_tags_read_back_as_written() -> None:
    tags = RECORD.to_tags()
    assert json.loads(tags["windows"])["test"]["end"].startswith("2013-08-01")
    assert tags["blessed"] == "true"
    back = VersionTags.from_tags(tags)
    assert back == RECORD and back.legacy == ()
    assert back.trained_until == T[3] and back.fitted_until == T[2]
    assert VersionTags.from_tags(VersionTags(blessed=False).to_tags()).blessed is False


def test_tags_an_older_release_wrote_are_read_and_named_as_such() -> None:
    old = VersionTags.from_tags(_as_main_wrote_them(RECORD))
    assert old == RECORD  # the same facts
    assert old.legacy == ("windows",)
    oldest = VersionTags.from_tags(_as_main_wrote_them(RECORD, with_data_until=False))
    assert oldest.data_until is None and oldest.trained_until == T[3]  # its test window's end
    assert set(oldest.legacy) == {"windows", "data_until"}
    assert VersionTags.from_tags({"windows": "not a literal"}).windows is None


def test_a_registry_written_by_an_older_release_is_migrated_once(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    client = mlflow_client(registry)
    client.create_registered_model("m")
    for with_data_until in (True, False):
        run = client.create_run(registry.experiment_id("m"))
        tags = _as_main_wrote_them(RECORD, with_data_until=with_data_until)
        client.create_model_version("m", "runs:/x/model", run_id=run.info.run_id, tags=tags)
    before = [v.record for v in registry.versions("m")]
    assert registry.migrate_tags("m", dry_run=True) == {
        "1": ["windows"],
        "2": ["data_until", "windows"],
    }
    assert [v.record.legacy for v in registry.versions("m")] == [r.legacy for r in before]
    registry.migrate_tags("m")
    after = [v.record for v in registry.versions("m")]
    assert [r.legacy for r in after] == [(), ()]
    # The same facts, in one form: the oldest's "trained until" is now its own tag.
    assert after == [before[0], replace(before[1], data_until=T[3])]
    assert [r.trained_until for r in after] == [r.trained_until for r in before] == [T[3]] * 2
    assert registry.migrate_tags("m") == {}  # once


def test_a_gate_verdict_reads_back_what_the_gate_wrote() -> None:
    checks = (CheckResult("server p99", True, "1 ms", "load"), CheckResult("skew", False, "2"))
    verdict = GateVerdict(checks, None, "m", "3", "c" * 64, "t1")
    back = GateVerdict.from_report(json.loads(json.dumps(verdict.to_report())))
    assert back == verdict and not back.passed
    assert back.failures() == ["skew: 2"]
    assert back.covers("3", "c" * 64) and not back.covers("3", "d" * 64)
    # A report as an older gate wrote it: its own check order, a stopped gate.
    old = {
        "model_name": "m",
        "version": "3",
        "sha256": "c" * 64,
        "finished_at": "t1",
        "passed": False,
        "stopped": "preflight: no model",
        "checks": [{"stage": "preflight", "name": "loads", "passed": True, "detail": ""}],
    }
    read = GateVerdict.from_report(old)
    assert read.failures() == ["stopped: preflight: no model"] and not read.passed
    # A canary's report has no `stopped`: its checks decide.
    canary = StepVerdict.from_report({"checks": [{"name": "errors", "passed": True, "detail": ""}]})
    assert canary.passed and canary.failures() == []
