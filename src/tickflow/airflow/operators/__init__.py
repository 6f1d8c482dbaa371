"""Operators: template, then call one tickflow function."""
