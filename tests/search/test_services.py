"""Searches in the audit trail: who searched for what, under which filter, and the passages they were shown."""

import pytest
from django.urls import reverse

from kb.audit.ledger import ledger_problems
from kb.audit.models import QueryRecord
from kb.search.selectors import PassageFilters, passages_search_for_user
from kb.search.services import passages_search_recorded
from tests.audit.test_selectors import make_auditor
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

QUESTION = "Why can’t lambda expressions contain statements?"


def test_a_search_is_recorded_with_the_passages_it_showed_and_its_permission_filter(organisation):
    member, faq = organisation["member"], organisation["faq"]

    hits = passages_search_recorded(
        user=member,
        query_text=QUESTION,
        k=5,
        mode="hybrid",
        filters=PassageFilters(collection_ids=(faq.pk,)),
        channel="search",
    )

    record = QueryRecord.objects.get()
    assert hits == passages_search_for_user(
        user=member, query_text=QUESTION, k=5, filters=PassageFilters(collection_ids=(faq.pk,))
    )
    assert (record.user, record.question, record.channel, record.answer, record.model) == (
        member,
        QUESTION,
        "search",
        "",
        "",
    )
    assert record.is_search and record.department_names == ["Engineering"]
    assert record.scope == {"mode": "hybrid", "k": 5, "filters": {"collection_ids": [faq.pk]}}
    assert record.permission_filter["collections"] == [faq.pk]
    passages = list(record.passages.order_by("rank"))
    assert [p.chunk_id for p in passages] == [hit.chunk_id for hit in hits]
    assert [p.text for p in passages] == [hit.text for hit in hits]
    assert not any(p.sent_to_model for p in passages) and record.flags == []
    assert list(ledger_problems()) == []


def test_a_search_that_finds_nothing_readable_is_recorded_and_flagged(organisation):
    hits = passages_search_recorded(
        user=organisation["outsider"], query_text=QUESTION, k=5, mode="keyword", filters=None, channel="api-search"
    )

    record = QueryRecord.objects.get()
    assert hits == [] and record.passages.count() == 0
    assert (record.channel, record.flags) == ("api-search", ["no_passages"])
    assert record.scope == {"mode": "keyword", "k": 5, "filters": {}}


def test_a_channel_that_is_not_a_search_channel_is_refused_before_searching(organisation):
    with pytest.raises(ValueError, match="not a search channel"):
        passages_search_recorded(
            user=organisation["member"], query_text=QUESTION, k=5, mode="hybrid", filters=None, channel="web"
        )

    assert not QueryRecord.objects.exists()


def test_the_search_page_posts_its_words_and_never_reads_them_from_the_url(client, organisation):
    client.login(username=organisation["member"].username, password=PASSWORD)

    from_url = client.get(reverse("search:page"), {"q": "lambda statements"}).content.decode()
    posted = client.post(reverse("search:page"), {"q": "lambda statements"}).content.decode()

    assert 'method="post"' in from_url and 'hx-post="' in from_url and "hx-push-url" not in from_url
    assert "Design and History FAQ" not in from_url and "lambda statements" not in from_url
    assert "Design and History FAQ" in posted
    assert list(QueryRecord.objects.values_list("question", "channel")) == [("lambda statements", "search")]


def test_an_empty_search_records_nothing(client, organisation):
    client.login(username=organisation["member"].username, password=PASSWORD)

    assert client.post(reverse("search:page"), {"q": "   "}).status_code == 200
    assert not QueryRecord.objects.exists()


def test_the_auditor_sees_a_search_as_a_search(client, organisation):
    auditor = make_auditor()
    passages_search_recorded(
        user=organisation["member"], query_text=QUESTION, k=3, mode="hybrid", filters=None, channel="search"
    )
    record = QueryRecord.objects.get()
    client.login(username=auditor.username, password=PASSWORD)

    listed = client.get(reverse("audit:queries")).content.decode()
    detail = client.get(reverse("audit:query-detail", args=[record.pk])).content.decode()

    assert "lambda expressions contain statements" in listed and ">search</span>" in listed
    assert "A search: the passages below were shown" in detail and "How it was searched" in detail
    assert "Model</th>" not in detail and detail.count('class="passage"') == record.passages.count() > 0
