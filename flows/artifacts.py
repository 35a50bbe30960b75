"""A run's artifacts, one per key, updated in place.

Prefect keeps a new version of a keyed artifact at each `create_*_artifact`, all listed on
the run; a run that resumes a hundred times would show a hundred identical notes. Here an
artifact is created once per run and key, then updated only when its content changes (the
key's latest version, shown in the UI's Artifacts page, is updated with it).
"""

from __future__ import annotations

import json
from typing import Any

from prefect import get_client
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.schemas.actions import ArtifactUpdate
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)

from flows.run import run_id


def _existing(key: str) -> tuple[Any, Any] | None:
    """The current run's artifact of this key (its id and data), if any."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[run_id()]),
            ),
            limit=1,
        )
    return (found[0].id, found[0].data) if found else None


def _update(artifact_id: Any, data: str, description: str) -> None:
    with get_client(sync_client=True) as client:
        client.update_artifact(artifact_id, ArtifactUpdate(data=data, description=description))


def show_markdown(*, key: str, markdown: str, description: str) -> None:
    """The run's markdown artifact `key`, created or updated in place."""
    existing = _existing(key)
    if existing is None:
        create_markdown_artifact(key=key, markdown=markdown, description=description)
    elif existing[1] != markdown:
        _update(existing[0], markdown, description)


def show_table(*, key: str, table: list[dict[str, Any]], description: str) -> None:
    """The run's table artifact `key`, created or updated in place."""
    existing = _existing(key)
    data = json.dumps(table)  # as Prefect stores a table
    if existing is None:
        create_table_artifact(key=key, table=table, description=description)
    elif existing[1] != data:
        _update(existing[0], data, description)
