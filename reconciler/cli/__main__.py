"""``python -m reconciler.cli``: the same as the ``mtv-gitops`` console script."""

from reconciler.cli.entry import main

main()
