"""Monitoring: drift, skew and performance on what was served, and the CT triggers. It reads
the prediction log and the registry through the kernel, never serving internals (the
import-linter contracts in pyproject.toml hold it to that)."""
