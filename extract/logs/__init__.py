"""Log files: detect the format from the content, parse records, and group records into windows for ingestion.

`formats` parses a record's first line in each known format and detects a file's format; `records` splits a log into
records (`parse_log`); `timestamps`, `peers` and `severities` read what a record says of its time, remote party and
level; `windows` groups records for embedding (`log_windows`). Pure Python, like the rest of `extract`.
"""

from extract.logs.formats import detect_log_format
from extract.logs.records import LogRecord, parse_log
from extract.logs.severities import SEVERITIES
from extract.logs.windows import LogWindow, log_windows

__all__ = ["SEVERITIES", "LogRecord", "LogWindow", "detect_log_format", "log_windows", "parse_log"]
