"""Pipeline releases: a content-addressed release of the pipeline's implementation (manifest.py),
the CI checks it must pass (checks.py), and its deploy through environments (deploy.py), all
recorded in the release ledger (skewless/ledger.py)."""
