"""Severities: the eight syslog levels, and the words and numbers that logs write for them."""

import re

SEVERITIES = ("emerg", "alert", "crit", "error", "warning", "notice", "info", "debug")

_SEVERITY_WORDS = {
    "emerg": "emerg",
    "emergency": "emerg",
    "panic": "emerg",
    "alert": "alert",
    "crit": "crit",
    "critical": "crit",
    "fatal": "crit",
    "severe": "crit",
    "err": "error",
    "error": "error",
    "eror": "error",
    "warn": "warning",
    "warning": "warning",
    "notice": "notice",
    "info": "info",
    "information": "info",
    "informational": "info",
    "debug": "debug",
    "trace": "debug",
    "verbose": "debug",
    "config": "debug",
    "fine": "debug",
    "finer": "debug",
    "finest": "debug",
}
_WORDS = "|".join(sorted(_SEVERITY_WORDS, key=len, reverse=True))
# Only words that read as a level: bracketed ([error], [core:warn], <warn>), upper case (ERROR, NOTICE[12]), a
# lead-in followed by a colon (sshd's "error: ..."), or a level= key. A bare "failed" or "error" in a sentence is
# not a level, so most sshd and postfix lines have none.
_LEVEL_TOKEN = re.compile(
    rf"(?<![\w-])(?:[\[<(](?:[\w-]*:)?(?i:(?P<bracketed>{_WORDS}))\d?[\]>)]|(?P<upper>{_WORDS.upper()})(?![\w-])"
    rf"|(?i:(?P<colon>{_WORDS})):\s|(?i:level|lvl|severity|levelname)=[\"']?(?i:(?P<keyed>{_WORDS}))\b)"
)
# pino/bunyan numeric levels
_NUMERIC_LEVELS = ((60, "crit"), (50, "error"), (40, "warning"), (30, "info"), (0, "debug"))


def severity_word(word: str) -> str | None:
    return _SEVERITY_WORDS.get(word.lower().rstrip("0123456789"))  # Apache's trace1..trace8


def severity_number(value: int) -> str | None:
    if 0 <= value < len(SEVERITIES):  # syslog / journald PRIORITY
        return SEVERITIES[value]
    return next((name for floor, name in _NUMERIC_LEVELS if value >= floor), None)


def keyword_severity(message: str) -> str | None:
    match = _LEVEL_TOKEN.search(message, 0, 80)
    return severity_word(next(word for word in match.groups() if word)) if match else None
