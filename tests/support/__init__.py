"""Helpers shared by the tests: repositories, registries, Redis and Ray started for a test."""
