import re

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

_WORD = re.compile(r"[^\W_]{3,}")


@register.filter
def highlight(text: str, query: str) -> SafeString:
    """The text, escaped, with the query's words (three letters or more) marked wherever they start a word."""
    words = sorted({word.lower() for word in _WORD.findall(query or "")}, key=len, reverse=True)
    escaped = escape(text)
    if not words:
        return mark_safe(escaped)
    pattern = re.compile(r"\b(" + "|".join(re.escape(word) for word in words) + r")", re.IGNORECASE)
    return mark_safe(pattern.sub(r"<mark>\1</mark>", escaped))
