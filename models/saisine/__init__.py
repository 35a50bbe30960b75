"""The saisines of the cell (situations psychosociales complexes)."""
