"""Helpers every room uses: errors, atomic files, log filters, config helpers, settings rules."""
