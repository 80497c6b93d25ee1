"""``python -m assistant`` runs the ``lepton`` command line."""

from .cli import main

main()
