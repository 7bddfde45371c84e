"""`python -m commands`: the same as the `ledger` entry point."""

from commands.app import main

main()
