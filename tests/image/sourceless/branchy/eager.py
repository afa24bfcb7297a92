"""Imported by branchy only where its source cannot be read."""
