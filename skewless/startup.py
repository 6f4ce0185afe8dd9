"""Process start-up: what the command line does before Feast is imported.

Feast 0.67 decorates its classes with typeguard's `@typechecked`, which at import re-parses
and recompiles the whole module once per method (about 5.5 s of the 9 s `import feast` took
here; `python -O` skips it the same way, but also strips asserts and finds no cached
bytecode). Every `skewless` command paid that before doing anything, so the roof turns the
decorator into a no-op first. Only Feast's run-time argument type checks are lost; the
`feast` CLI, which applies repository definitions, keeps them.
"""

from __future__ import annotations

import sys
from typing import Any


def _unchecked(target: Any = None, **_: Any) -> Any:
    # typechecked is used bare (@typechecked) and with keywords (@typechecked(...)).
    return target if target is not None else _unchecked


def skip_feast_type_checks() -> None:
    """Must run before the first `import feast`; a no-op once Feast is imported."""
    if "feast" in sys.modules:
        return
    import typeguard

    typeguard.typechecked = _unchecked
