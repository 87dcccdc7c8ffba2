from kb.platform.bearer import bearer_token


def test_only_a_bearer_header_with_a_token_gives_one():
    assert bearer_token("Bearer kb_abc123") == "kb_abc123"
    assert bearer_token("bearer   kb_abc123  ") == "kb_abc123"  # the scheme is case-insensitive (RFC 9110)
    assert bearer_token("Basic dXNlcjpwYXNz") == ""
    assert bearer_token("Bearer") == "" and bearer_token("Bearer   ") == "" and bearer_token("") == ""
    assert bearer_token("kb_abc123") == ""  # a token without its scheme
