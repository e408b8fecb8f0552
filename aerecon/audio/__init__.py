"""Audio: decoding and writing files, representations, stitching segments into songs, figures."""
