"""invbench: a benchmark harness for model-inversion attacks and defenses."""

__version__ = "0.1.0"
