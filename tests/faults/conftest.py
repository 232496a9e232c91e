"""The fault suite runs on the integration tests' real GitOps workspaces."""

from tests.integration.conftest import workspace_factory  # noqa: F401 - a fixture
