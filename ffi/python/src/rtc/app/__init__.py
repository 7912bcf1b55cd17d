"""Modules at the reference's paths that code and tests written for it import."""
