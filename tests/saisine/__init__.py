"""Tests of saisine."""
