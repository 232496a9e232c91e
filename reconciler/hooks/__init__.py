"""Migration hooks: what a PreHook or PostHook runs with, and how it runs on the local target.

:mod:`reconciler.hooks.model` holds the records (a resolved Hook, one run of it, its outcome),
:mod:`reconciler.hooks.inputs` the ``plan.yml`` and ``workload.yml`` a playbook reads, in the
shapes Forklift gives its hook-runner, and :mod:`reconciler.hooks.local` the run on a laptop
(``ansible-playbook``, or podman/docker for a custom image). The kubevirt target runs the same
inputs as a Job (:mod:`reconciler.targets.kubevirt.hook_job`).
"""
