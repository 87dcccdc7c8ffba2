from django import template

register = template.Library()


@register.filter
def metric(scores: dict | None, name: str):
    """A score by its name ("recall@5"), which the template language cannot spell."""
    return (scores or {}).get(name)


@register.filter
def signed(value: float | None) -> str:
    """A change of score: "+0.050", "−0.125", "±0" for none; empty when there is nothing to compare."""
    if value is None:
        return ""
    if value == 0:
        return "±0"
    return f"{value:+.3f}".replace("-", "−")
