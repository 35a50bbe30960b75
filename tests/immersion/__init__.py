"""Tests of immersion."""
