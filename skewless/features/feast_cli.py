"""Feast's own command line (`python -m skewless.features.feast_cli -c REPO -f YAML apply`),
without Feast's import-time typeguard instrumentation (skewless/startup.py): ~3 s less for
every `apply` and `plan` skewless runs. Feast's run-time type checks are what is lost; when a
command fails here, `run_feast` runs Feast's unchanged command line again, whose checks name
a wrongly typed argument of a definition, and reports that failure."""

from skewless.startup import skip_feast_type_checks

skip_feast_type_checks()

from feast.cli.cli import cli  # noqa: E402 -- after the decorator is a no-op

if __name__ == "__main__":
    cli(prog_name="feast")
