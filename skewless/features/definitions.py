"""Definition fingerprints: for each feature a model reads, hashes of what determines its value,
so that a model is never served features whose meaning changed since it was trained.

A feature's definition is in parts, each hashed on its own so that a refusal can say what
changed:
- `field`: its name and type;
- `view`: the view as Feast stores it, without what does not change a value (descriptions,
  tags, owners, timestamps, the other fields): entities and their join keys, TTL, field
  mapping, and for an on-demand view its mode and sources (a request source's schema);
- `source`: the batch source (kind, path relative to the repository, query, timestamp
  columns, field mapping);
- `transformation`: an on-demand view's function, as source text;
- `table_code`: where the project built the source table, the hash of the code that built it
  (the build manifest `tables.json` beside the table: its `code` per table);
- `upstream`: for an on-demand view reading a feature view, that view's features' fingerprints.

Read from the Feast registry the service reads (no repository code is imported), so the
service fingerprints what it serves in milliseconds at start.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from feast import FeatureStore, FeatureView, OnDemandFeatureView
from feast.errors import FeatureViewNotFoundException
from google.protobuf.json_format import MessageToDict

from skewless.fingerprints import Definition, digest, fingerprint

MANIFEST = "tables.json"  # a build manifest beside the tables: {"code": {table: sha256}}
# Keys that describe or time-stamp a definition without changing a value.
UNRELATED = frozenset(
    {
        "description",
        "tags",
        "owner",
        "meta",
        "createdTimestamp",
        "lastUpdatedTimestamp",
        "version",
        "currentVersionNumber",
        "materializationIntervals",
    }
)


def feature_definitions(
    store: FeatureStore,
    service_name: str,
    built_code: Mapping[Path, Mapping[str, str]] | None = None,
) -> dict[str, Definition]:
    """Every feature of a feature service, by the name the model sees, with its definition.
    `built_code`: per data folder, the table code hashes to use in place of its manifest's
    (what the project's builders would build now, for `skewless plan`)."""
    service = store.get_feature_service(service_name)
    reader = _Reader(store)
    for folder, code in (built_code or {}).items():
        reader.manifests[folder.resolve()] = dict(code)
    out: dict[str, Definition] = {}
    for projection in service.feature_view_projections:
        for field in projection.features:
            out[field.name] = reader.definition(projection.name, field.name)
    return out


class _Reader:
    """One pass over the registry: views and manifests read once each."""

    def __init__(self, store: FeatureStore) -> None:
        self.store = store
        self.repo = Path(store.repo_path).resolve() if store.repo_path else None
        self.manifests: dict[Path, dict[str, str]] = {}
        self.views: dict[str, tuple[FeatureView | OnDemandFeatureView, dict[str, Any]]] = {}

    def definition(self, view_name: str, feature: str) -> Definition:
        view, spec = self._view(view_name)
        fields = {f["name"]: f for f in spec.get("features", [])}
        parts: Definition = {"field": digest(_clean(fields.get(feature, {"name": feature})))}
        shared = {k: v for k, v in spec.items() if k not in ("features", "name")}
        if isinstance(view, OnDemandFeatureView):
            transformation = shared.pop("featureTransformation", {})
            parts["transformation"] = digest(_transformation(transformation))
            sources = shared.pop("sources", {})
            parts["view"] = digest({**shared, "sources": self._request_sources(sources)})
            upstream = {
                f"{name}.{f.name}": fingerprint(self.definition(name, f.name))
                for name, projection in view.source_feature_view_projections.items()
                for f in projection.features
            }
            if upstream:
                parts["upstream"] = digest(upstream)
        else:
            source = shared.pop("batchSource", {})
            shared.pop("streamSource", None)
            parts["view"] = digest({**shared, "entities": self._entities(view)})
            parts["source"] = digest(self._source(source))
            code = self._table_code(source)
            if code is not None:
                parts["table_code"] = code
        return parts

    def _view(self, name: str) -> tuple[FeatureView | OnDemandFeatureView, dict[str, Any]]:
        if name not in self.views:
            view: FeatureView | OnDemandFeatureView
            try:
                view = self.store.get_feature_view(name)
            except FeatureViewNotFoundException:
                view = self.store.get_on_demand_feature_view(name)
            self.views[name] = (view, _clean(MessageToDict(view.to_proto().spec)))
        return self.views[name]

    def _entities(self, view: FeatureView) -> list[Any]:
        found = []
        for name in sorted(view.entities):
            if name == "__dummy":  # Feast's stand-in for a view without entities
                continue
            found.append(_clean(MessageToDict(self.store.get_entity(name).to_proto().spec)))
        return found

    def _request_sources(self, sources: dict[str, Any]) -> dict[str, Any]:
        # Feature-view sources are covered by `upstream`; request sources by their schema.
        return {k: v for k, v in sources.items() if "requestDataSource" in v}

    def _source(self, source: dict[str, Any]) -> dict[str, Any]:
        source = {k: v for k, v in source.items() if k != "name"}
        options = dict(source.get("fileOptions", {}))
        if "uri" in options:
            options["uri"] = self._relative(options["uri"])
            source["fileOptions"] = options
        return source

    def _relative(self, uri: str) -> str:
        """A file under the repository by its path in it: the same repository on another
        machine or folder has the same definitions."""
        path = Path(uri.removeprefix("file://"))
        if self.repo is not None and path.is_absolute():
            try:
                return path.resolve().relative_to(self.repo).as_posix()
            except ValueError:  # applied from a repository elsewhere (a shared registry)
                return f"{path.parent.name}/{path.name}"
        return uri

    def _table_code(self, source: dict[str, Any]) -> str | None:
        uri = source.get("fileOptions", {}).get("uri")
        if not uri:
            return None
        path = Path(uri.removeprefix("file://"))
        if not path.is_absolute() and self.repo is not None:
            path = self.repo / path
        folder = path.parent.resolve()
        if folder not in self.manifests:
            try:
                manifest = json.loads((folder / MANIFEST).read_text())
            except (OSError, ValueError):
                manifest = {}
            code = manifest.get("code") if isinstance(manifest, dict) else None
            self.manifests[folder] = code if isinstance(code, dict) else {}
        return self.manifests[folder].get(path.name.removesuffix(".parquet"))


def _transformation(transformation: dict[str, Any]) -> Any:
    """The function as source text where Feast keeps it (its pickled body changes with the
    Python that pickled it); the pickled body only where no text is kept."""
    out = {}
    for kind, udf in transformation.items():
        if isinstance(udf, dict) and udf.get("bodyText"):
            udf = {k: v for k, v in udf.items() if k != "body"}
        out[kind] = udf
    return out


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k not in UNRELATED}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
