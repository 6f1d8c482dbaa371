"""``python -m tickflow.cli``: the ``tickflow`` command."""

from tickflow.cli import main

main()
