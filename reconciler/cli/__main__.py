"""``python -m reconciler.cli``: the same as the ``mtv-gitops`` console script."""

from reconciler.cli.main import main

main()
