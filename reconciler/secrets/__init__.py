"""Credentials for providers, from outside the repo."""
