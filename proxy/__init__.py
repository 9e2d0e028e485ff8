"""careers-edge: a reverse proxy in front of a hosted careers site."""

__version__ = "0.1.0"
