"""Sensors: wait for a tickflow condition, fail on one that will not heal by waiting."""
