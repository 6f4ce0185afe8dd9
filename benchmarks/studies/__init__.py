"""One-off studies: measurements that informed a decision, kept to be rerun; not the
regression benchmarks."""
