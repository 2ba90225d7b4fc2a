"""``python -m supervisor.cli``: the same as the ``unigw`` console script."""

from supervisor.cli.commands import main

main()
