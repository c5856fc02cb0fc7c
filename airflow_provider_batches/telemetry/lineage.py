"""OpenLineage for the operators: what a task read and wrote, and what its batch did.

``apache-airflow-providers-openlineage`` is optional: nothing here imports OpenLineage until
its listener calls :meth:`BatchLineage.get_openlineage_facets_on_complete`, so without it
this costs nothing. The input dataset is the requests file when the requests are a path
(a ``str`` or ``ObjectStoragePath``), the output dataset is the batch's results prefix when
results were written; names follow OpenLineage's naming (``file`` + absolute path for a local
file, ``s3://bucket`` + key for S3, ``<scheme>://<bucket>`` + key for any other store). The
run facet ``anthropicBatch`` carries the batch id, its status and request counts, the models
and, with results written, token usage (and cost, when the manifest has one). Credentials never
appear: a location's user part (``s3://conn_id@bucket``) is dropped, and nothing is read from
the connection.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

#: Key of the run facet in the OpenLineage event.
FACET_NAME = "anthropicBatch"
#: Where the facet's JSON schema is described (docs/lineage.md).
FACET_SCHEMA_URL = (
    "https://github.com/airflow-provider-batches/airflow-provider-batches/blob/main/"
    "docs/lineage.md#the-anthropicbatch-run-facet"
)
_LOCAL_SCHEMES = ("", "file", "local")


def dataset_name(location: Any) -> tuple[str, str] | None:
    """OpenLineage ``(namespace, name)`` of a file or prefix, or ``None`` when ``location`` is
    no path (a list of requests, a JSON array string)."""
    from airflow.sdk import ObjectStoragePath

    if isinstance(location, ObjectStoragePath | os.PathLike):
        location = str(location)  # an ObjectStoragePath's str is its URL
    if not isinstance(location, str) or not location.strip():
        return None
    location = location.strip()
    if location.startswith("["):
        return None
    if "://" not in location:
        return "file", os.path.abspath(location)
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    if scheme in _LOCAL_SCHEMES:
        return "file", parts.path or "/"
    # hostname drops the user part ("conn_id@" or "user:password@") and any port.
    bucket = parts.hostname or ""
    key = parts.path.lstrip("/").rstrip("/")
    return f"{scheme}://{bucket}", key or "/"


def models_of(manifest: Mapping[str, Any] | None, requests: Any, model: Any) -> list[str]:
    """The models a batch used, from what is at hand without reading anything: the
    manifest's per-model cost entries (``cost.by_model``), requests held in memory, the
    operator's ``model``."""
    found: set[str] = set()
    if isinstance(model, str) and model:
        found.add(model)
    if isinstance(requests, list):
        for request in requests:
            params = request.get("params") if isinstance(request, Mapping) else None
            if isinstance(params, Mapping) and isinstance(params.get("model"), str):
                found.add(params["model"])
    by_model = _get(manifest, "cost", "by_model") if isinstance(manifest, Mapping) else None
    if isinstance(by_model, Mapping):
        # "(other models)" pools what is past the manifest's model cap: no model id.
        found.update(str(name) for name in by_model if not str(name).startswith("("))
    return sorted(found)


def facet_fields(
    batch: Mapping[str, Any] | None, manifest: Mapping[str, Any] | None, models: list[str]
) -> dict[str, Any] | None:
    """The ``anthropicBatch`` facet's fields, or ``None`` before a batch is known."""
    if batch is None and isinstance(manifest, Mapping):
        batch = manifest.get("batch") if isinstance(manifest.get("batch"), Mapping) else None
    if not isinstance(batch, Mapping) or not isinstance(batch.get("id"), str):
        return None
    counts = batch.get("request_counts")
    fields: dict[str, Any] = {
        "batchId": batch["id"],
        "processingStatus": batch.get("processing_status"),
        "requestCounts": dict(counts) if isinstance(counts, Mapping) else None,
        "models": models,
        "usage": None,
        "costUsd": None,
    }
    if isinstance(manifest, Mapping):
        usage = manifest.get("usage")
        fields["usage"] = dict(usage) if isinstance(usage, Mapping) else None
        total = _get(manifest, "cost", "total_usd")
        if isinstance(total, int | float) and not isinstance(total, bool):
            fields["costUsd"] = float(total)
    return fields


def _get(mapping: Mapping[str, Any], *keys: str) -> Any:
    value: Any = mapping
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


@functools.cache
def _facet_class() -> Any:
    """The facet class, built on OpenLineage's own attrs base once it is importable."""
    import attrs
    from airflow.providers.common.compat.openlineage.facet import RunFacet

    @attrs.define
    class AnthropicBatchRunFacet(RunFacet):
        """An Anthropic Message Batch: id, status, request counts, models, usage, cost."""

        batchId: str  # camelCase, as OpenLineage's own facets
        processingStatus: str | None = None
        requestCounts: dict[str, int] | None = None
        models: list[str] = attrs.Factory(list)
        usage: dict[str, int] | None = None
        costUsd: float | None = None

        @staticmethod
        def _get_schema() -> str:
            return FACET_SCHEMA_URL

    return AnthropicBatchRunFacet


class BatchLineage:
    """Mixin giving an operator Airflow's OpenLineage methods.

    The operator calls :meth:`record_lineage` with the ended batch and the manifest (when it
    wrote results) before it finishes; OpenLineage's listener then calls
    :meth:`get_openlineage_facets_on_complete` on the same operator, after success or failure.
    """

    _lineage_batch: Mapping[str, Any] | None = None
    _lineage_manifest: Mapping[str, Any] | None = None

    def record_lineage(
        self,
        batch: Mapping[str, Any] | None = None,
        manifest: Mapping[str, Any] | None = None,
    ) -> None:
        if batch is not None:
            self._lineage_batch = batch
        if manifest is not None:
            self._lineage_manifest = manifest

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Inputs, outputs and the ``anthropicBatch`` run facet (module docstring)."""
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage

        requests = getattr(self, "requests", None)
        manifest = self._lineage_manifest
        inputs = [dataset_name(requests)]
        outputs = [dataset_name(manifest.get("prefix")) if manifest is not None else None]
        models = models_of(manifest, requests, getattr(self, "model", None))
        fields = facet_fields(self._lineage_batch, manifest, models)
        return OperatorLineage(
            inputs=[Dataset(namespace=ns, name=name) for ns, name in filter(None, inputs)],
            outputs=[Dataset(namespace=ns, name=name) for ns, name in filter(None, outputs)],
            run_facets={} if fields is None else {FACET_NAME: _facet_class()(**fields)},
        )
