"""Coding songs into bits: entropy coding, the compressed-file framing, reference codecs."""
