"""``python -m iff`` runs the command line (same as the ``iff`` script)."""

from iff.console import main

main()
