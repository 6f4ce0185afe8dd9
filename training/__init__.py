"""The continuous-training pipeline: one module per step, chained by `pipeline.run`."""
