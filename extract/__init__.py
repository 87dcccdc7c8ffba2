"""Extraction: uploaded files become titled, sectioned text (and logs, records), then passages to embed.

Plain Python: never imports Django or kb, so scripts, benchmarks and other services can use it as it is.
"""
