"""careers-edge."""
