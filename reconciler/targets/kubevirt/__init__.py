"""The kubevirt target: a real cluster through the official kubernetes client.

What it makes, in the plan's target namespace, every object labelled with the plan, the
Migration and the VM id (``plan``, ``migration``, ``vmID``) so it can be found and cleaned up:

- the Namespace, one PVC per disk (``manifests.disk_claims``) and the kubevirt.io/v1
  VirtualMachine (``manifests.vm_manifest``);
- per disk, a batch/v1 Job that runs this project's image with ``mtv-gitops transfer`` and the
  PVC mounted, and a Secret beside it with the source Provider's credentials
  (``transfer_job``).

The modules, each one job:

- ``api``: the kubernetes client (made from a URL and token, or in-cluster), JSON requests
  and the errors that say which cluster and what to do;
- ``manifests``: the VirtualMachine and PVC manifests of a planned VM (the local target
  writes the same ones);
- ``transfer_job``: a disk's transfer Job and its Secret: built, watched, cleaned up;
- ``hook_job``: a PreHook's or PostHook's Job and its ConfigMap (the hook's inputs);
- ``target``: ``KubevirtTarget``, the Target interface over the four above.

Nothing is imported here, so the pipeline and the local target can use ``manifests`` without
loading the kubernetes client.
"""
