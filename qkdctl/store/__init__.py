"""Persistence: run database (SQLite), key store, recordings."""
