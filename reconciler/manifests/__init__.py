"""Desired state: Forklift-compatible manifests read from the GitOps repo."""
