"""The live path: the event log (Redis Streams) and the stream processor that turns events
into the same features the batch build computes (feature_repo/tables/tiles.py)."""
