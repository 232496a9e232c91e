"""Integration tests use the workspaces of ``tests/conftest.py`` (``workspace_factory``)."""
