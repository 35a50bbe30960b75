"""Tags of a flow run: its CLSM, which the service's gateway uses to show each coordinator
the runs of their own CLSM only."""

from __future__ import annotations

from uuid import UUID

from prefect.runtime import flow_run


def clsm_tag(slug: str) -> str:
    return f"clsm:{slug}"


def tag_run(run_id: str, clsm: str, process: str) -> None:
    """Tag the current run with its CLSM and process (once: a replay finds them there)."""
    from prefect.client.orchestration import get_client

    current = set(flow_run.get_tags() or [])
    wanted = {clsm_tag(clsm), process}
    if wanted <= current:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(UUID(run_id), tags=sorted(current | wanted))
