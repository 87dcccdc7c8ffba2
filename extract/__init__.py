"""Extraction: uploaded files become titled, sectioned text (and logs, records), then passages to embed.

The file types and what is known of each (`formats`), the parsers (`parsing`, `office`, `pdf`, `mail`, `logs`), ZIP
expansion (`archives`) and chunking (`chunking`). Plain Python: never imports Django or kb, so scripts, benchmarks and
other services can use it as it is.
"""
