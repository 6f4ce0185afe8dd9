"""Changing feature definitions safely: `skewless plan` (Feast's plan and which models it
would skew), `skewless apply` (refused while it would skew the champion), and the way through,
`apply --candidate` then `skewless switch` (skewless/namespaces.py)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Annotated

import typer
from feast.errors import FeatureServiceNotFoundException

from skewless.command_support import ConfigOption, console, model_config
from skewless.definition_plan import (
    DefinitionPlan,
    Definitions,
    Recorded,
    pending_definitions,
    plan,
    recorded_definitions,
)
from skewless.errors import CheckFailed, SkewlessError
from skewless.features import namespaces
from skewless.features import store as feature_store
from skewless.features.definitions import MANIFEST, feature_definitions
from skewless.fingerprints import definitions_fingerprint
from skewless.registry.adapter import ModelRegistry
from skewless.registry.aliases import CHAMPION
from skewless.settings import Settings, get_settings

FEAST_SUMMARY = ("Created", "Updated", "Deleted", "No changes")

# On a version: when and why definitions it was not trained on were applied anyway.
OVERRIDE_TAG = "definition_skew_applied"


def built_code(settings: Settings) -> dict[str, str] | None:
    """The code hash each table would be built with now, where the project built the
    repository's tables (a build manifest beside them): a changed table builder is a pending
    change like a changed view."""
    if not (settings.data_dir / MANIFEST).is_file():
        return None
    from feature_repo.tables.build import table_code

    return table_code(settings.lead_time_minutes)


def _applied(settings: Settings, service: str) -> Definitions:
    """The definitions registered now; none when the repository was never applied."""
    try:
        return feature_definitions(feature_store.open_store(settings), service)
    except FeatureServiceNotFoundException:
        return {}


def definition_plan(
    settings: Settings, config: ConfigOption = None, recorded: Recorded | None = None
) -> DefinitionPlan:
    model = model_config(config, settings)
    if recorded is None:
        recorded = recorded_definitions(settings, model.name)
    applied = _applied(settings, model.feature_service)
    return plan(settings, model.feature_service, applied, recorded, built_code(settings))


def print_plan(found: DefinitionPlan) -> None:
    if found.changed:
        console.print(f"{len(found.changed)} feature(s) would change meaning:")
        for line in found.changed:
            console.print(f"  {line}")
    else:
        console.print("no feature would change meaning")
    for impact in found.impacts:
        console.print(f"  {impact.line()}")


def plan_command(config: ConfigOption = None) -> None:
    """Feast's plan of the repository's files, and what it does to the models: the features
    whose definitions would change, and the registered versions (champion, challenger) that
    were trained on the old ones and would be refused."""
    settings = get_settings()
    with ThreadPoolExecutor(1) as feast:  # Feast's plan runs beside the scratch apply
        feast_plan = feast.submit(feature_store.run_feast, settings, "plan")
        found = definition_plan(settings, config)
    # Feast's summary: one line per object; its whole diff (`feast plan`) also lists
    # materialization times as updates.
    for line in feast_plan.result().splitlines():
        if line.startswith(FEAST_SUMMARY):
            console.print(f"feast: {line}")
    print_plan(found)
    if found.skewed(CHAMPION):
        raise CheckFailed(
            "applying this would skew the champion: apply it to a candidate namespace "
            "(`skewless apply --candidate`), train there, then `skewless switch`"
        )


def apply_command(
    candidate: Annotated[
        bool,
        typer.Option(
            help="Apply to a candidate namespace of its own (its own Feast project: "
            "registry objects, online tables or keys) that the champion does not read."
        ),
    ] = False,
    allow_definition_skew: Annotated[
        bool,
        typer.Option(
            help="Apply even if the champion was trained on other definitions: the service "
            "then refuses it (not-ready) until a model trained on the new ones is champion."
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Register the feature definitions (`feast apply` on the configured online store);
    refused while it would change the meaning of a feature the champion reads."""
    settings = get_settings()
    if candidate:
        apply_candidate(settings, config)
        return
    recorded = recorded_definitions(settings, model_config(config, settings).name)
    if not recorded:  # no model to skew (a first apply): Feast's apply alone
        console.print(feature_store.apply(settings).strip())
        return
    found = definition_plan(settings, config, recorded)
    skewed = found.skewed(CHAMPION)
    if skewed and not allow_definition_skew:
        print_plan(found)
        raise SkewlessRefusal(
            f"refused: {skewed[0].line()}. Apply it to a candidate namespace "
            "(`skewless apply --candidate`), materialize, train and gate there, then "
            "`skewless switch`; or apply anyway with --allow-definition-skew"
        )
    if skewed:
        # The override is recorded before it happens, where each skewed model's lineage is.
        registry = ModelRegistry.of(settings)
        when = datetime.now(UTC).isoformat(timespec="seconds")
        for impact in (i for i in found.impacts if i.changes):
            registry.tag_version(
                model_config(config, settings).name,
                impact.version,
                {OVERRIDE_TAG: f"{when}: apply --allow-definition-skew: {impact.line()}"[:4000]},
            )
    console.print(feature_store.apply(settings).strip())
    if skewed:
        console.print(
            f"[yellow]applied despite definition skew: {skewed[0].line()} (recorded on each "
            f"version it skews as the tag {OVERRIDE_TAG})[/yellow]"
        )


def apply_candidate(settings: Settings, config: ConfigOption = None) -> None:
    """The repository's definitions applied to a namespace named after their fingerprint."""
    service = model_config(config, settings).feature_service
    pending = pending_definitions(settings, service, built_code(settings))
    name = namespaces.candidate_name(
        feature_store.yaml_project(settings), definitions_fingerprint(pending)
    )
    namespaces.with_candidate(settings.state_dir, name)
    output = feature_store.apply(settings.model_copy(update={"namespace": "candidate"}))
    console.print(output.strip())
    console.print(
        f"applied to the candidate namespace {name}; with SKEWLESS_NAMESPACE=candidate, "
        "materialize, train and gate there, then `skewless switch`"
    )


class SkewlessRefusal(SkewlessError):
    """A change refused because it would skew a served model (exit 1, nothing applied)."""


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_command)
    app.command("apply")(apply_command)
