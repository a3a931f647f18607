"""The start-up diet: replacements for standard modules the hot paths cannot afford (see README.md here)."""
