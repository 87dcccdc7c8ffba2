"""What users type where the app expects a row's id."""

BIGINT_MAX = 2**63 - 1


def submitted_id(value: str | None) -> int | None:
    """An id from a form field or query parameter, or None for anything that cannot be one ("abc", "1.5", "-3",
    a number beyond PostgreSQL's bigint): a lookup by it then finds nothing, instead of failing inside the query."""
    if value is None or not value.strip().isdecimal() or len(value.strip()) > len(str(BIGINT_MAX)):
        return None  # the length first: int() refuses more than 4,300 digits with an error of its own
    number = int(value)
    return number if 0 < number <= BIGINT_MAX else None
