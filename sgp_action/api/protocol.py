"""`ApiClient`: the calls the phases make, as a Protocol. `SGPClient` is the real one; the tests' fake is another.

The phases are typed against this rather than `SGPClient`, so mypy checks that a test double offers what the code
under test calls, with the same names and keywords.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sgp_action.api.models import Build, Deployment, LogPage


class BuildLogStream(Protocol):
    """An open build log stream: iterate it for lines; `close()` ends the iteration from any thread."""

    def __iter__(self) -> Iterator[str]: ...

    def entries(self) -> Iterator[tuple[str, str]]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: object) -> None: ...


class ApiClient(Protocol):
    """The SGP calls of the build, deploy, teardown and cleanup phases (`sgp_action.api.client.SGPClient`)."""

    def create_build(
        self,
        *,
        image_name: str,
        archive_path: Path | None = None,
        image_url: str | None = None,
        image_tag: str | None = None,
        agent_name: str | None = None,
        agent_id: str | None = None,
        build_args: Mapping[str, str] | None = None,
        platform: str | None = None,
        source: Mapping[str, str | bool | None] | None = None,
        working_tree_hash: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Build: ...

    def get_build(self, build_id: str) -> Build: ...

    def list_builds(
        self,
        *,
        agent_name: str | None = None,
        source_commit: str | None = None,
        working_tree_hash: str | None = None,
        limit: int = 100,
        sort_by: str | None = None,
        sort_order: str | None = None,
    ) -> Iterator[Build]: ...

    def cancel_build(self, build_id: str) -> Build: ...

    def open_build_logs(self, build_id: str, *, last_event_id: str = "") -> BuildLogStream: ...

    def create_deployment(
        self,
        *,
        manifest_file: str,
        environment_config: str,
        build_id: str | None = None,
        image_name: str | None = None,
        image_tag: str | None = None,
        preview: bool = False,
        preview_label: str | None = None,
        expires_at: datetime | str | None = None,
    ) -> Deployment: ...

    def get_deployment(self, deployment_id: str) -> Deployment: ...

    def list_deployments(
        self,
        *,
        agent_name: str | None = None,
        build_id: str | None = None,
        preview_label: str | None = None,
        limit: int = 100,
        sort_by: str | None = None,
        sort_order: str | None = None,
    ) -> Iterator[Deployment]: ...

    def delete_deployment(self, deployment_id: str) -> Deployment: ...

    def deployment_logs(self, deployment_id: str, *, cursor: str = "", limit: int = 100) -> LogPage: ...

    def close(self) -> None: ...
