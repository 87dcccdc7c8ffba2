import re

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

_WORD = re.compile(r"[^\W_]{3,}")


@register.filter
def highlight(text: str, query: str) -> SafeString:
    """The text, escaped, with the query's words (three letters or more) marked wherever they start a word. Words are
    found in the text before it is escaped: in the escaped text "amp" would be found inside "&amp;" and break it."""
    words = sorted({word.lower() for word in _WORD.findall(query or "")}, key=len, reverse=True)
    if not words:
        return mark_safe(escape(text))
    pattern = re.compile(r"\b(" + "|".join(re.escape(word) for word in words) + r")", re.IGNORECASE)
    # split() with one group: the words found are at the odd places, the text around them at the even ones.
    parts = pattern.split(text)
    marked = (f"<mark>{escape(part)}</mark>" if index % 2 else escape(part) for index, part in enumerate(parts))
    return mark_safe("".join(marked))
