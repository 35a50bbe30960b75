"""The immersion sessions process (stages croisés)."""
