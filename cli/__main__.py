"""`python -m cli ...`: the `skewless` command, for subprocesses that act through it."""

from cli.main import main

main()
