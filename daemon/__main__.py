"""``python -m daemon`` runs the tocsin daemon."""

from daemon.cli import main

main()
