"""Tickets API (to be completed)."""
