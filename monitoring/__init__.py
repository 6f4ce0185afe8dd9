"""Monitoring: drift, skew and performance on what was served (`skewless monitor`), and the
continuous-training controller that decides when to retrain (`skewless ct`). It reads the
prediction log and the registry through the kernel, never serving internals, and acts through
the commands in subprocesses, never by importing training or the release path (the
import-linter contracts in pyproject.toml hold it to that)."""
