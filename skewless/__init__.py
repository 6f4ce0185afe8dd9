"""skewless: one Feast feature contract for point-in-time training and low-latency serving."""

__version__ = "0.1.0"
