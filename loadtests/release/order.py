"""The order a release goes through the environments, and when it may go on: a release is
promoted to an environment by hand only after enough successful runs in the one before it
(`release.runs_before_promotion` of the environments file)."""

from __future__ import annotations

from dataclasses import dataclass

from skewless.ledger import Ledger, Release


@dataclass(frozen=True)
class Environments:
    """What deploy and promote need of the environments file (the roof reads it)."""

    order: list[str]  # in the order a release goes through them
    by_hand: set[str]  # reached only by `release promote`
    runs_before_promotion: int

    def before(self, environment: str) -> str | None:
        at = self.order.index(environment)
        return self.order[at - 1] if at > 0 else None


def promotion_refusal(
    ledger: Ledger, release: Release, target: str, environments: Environments
) -> str | None:
    """Why `release` may not be promoted to `target`, or None when it may: it needs at least
    `runs_before_promotion` successful runs in the environment before it."""
    before = environments.before(target)
    if before is None:
        return f"{target} is the first environment: `skewless release deploy` reaches it"
    done = [r for r in ledger.runs(release.id, before) if r.successful]
    needed = environments.runs_before_promotion
    if len(done) < needed:
        return (
            f"release {release.id} has {len(done)} successful run(s) in {before}; promotion to "
            f"{target} needs {needed}"
        )
    return None
