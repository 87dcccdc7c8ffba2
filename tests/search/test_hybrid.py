"""Keyword and hybrid retrieval, each permission-filtered in its own SQL, and the search page."""

import pytest
from django.urls import reverse

from kb.platform.actors import system_actor
from kb.search.selectors import (
    PassageHit,
    passages_search_for_user,
    reciprocal_rank_fusion,
)
from tests.factories import PASSWORD, ingested_document, make_collection, make_department, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def organisation(python_docs):
    engineering, sales = make_department("Engineering"), make_department("Sales")
    faq = make_collection(owner=engineering)
    ingested_document(collection=faq, name="design.html", content=(python_docs / "faq" / "design.html").read_bytes())
    return {"member": make_user(department=engineering), "outsider": make_user(department=sales)}


def _hit(chunk_id: int) -> PassageHit:
    return PassageHit(
        chunk_id=chunk_id,
        document_id=1,
        version_id=1,
        document_title="",
        collection_name="",
        heading="",
        text="",
        score=0.0,
    )


def test_reciprocal_rank_fusion_rewards_agreement_between_rankings(settings):
    settings.KB_RRF_K = 60
    fused = reciprocal_rank_fusion([[_hit(1), _hit(2), _hit(3)], [_hit(3), _hit(4), _hit(1)]], k=3)

    assert [hit.chunk_id for hit in fused] == [1, 3, 2]
    assert fused[0].score == pytest.approx(1 / 61 + 1 / 63)


def test_keyword_search_ranks_passages_holding_the_words(organisation):
    hits = passages_search_for_user(
        user=organisation["member"], query_text="lambda expressions statements", k=5, mode="keyword"
    )

    assert hits and "lambda" in (hits[0].heading + hits[0].text).lower()
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    assert passages_search_for_user(user=organisation["member"], query_text="?!", k=5, mode="keyword") == []


@pytest.mark.parametrize("mode", ["dense", "keyword", "hybrid"])
def test_every_mode_finds_the_faq_entry_and_nothing_leaks(organisation, mode):
    question = "Why can’t lambda expressions contain statements?"

    hits = passages_search_for_user(user=organisation["member"], query_text=question, k=5, mode=mode)

    assert question in [hit.heading for hit in hits]
    assert passages_search_for_user(user=organisation["outsider"], query_text=question, k=5, mode=mode) == []


def test_the_search_page_shows_ranked_passages_with_highlights(client, organisation):
    client.login(username=organisation["member"].username, password=PASSWORD)

    page = client.get(reverse("search:page"), {"q": "lambda statements"}).content.decode()

    assert "<mark>lambda</mark>" in page.lower()
    assert "Design and History FAQ" in page
    partial = client.get(reverse("search:page"), {"q": "lambda", "mode": "keyword"}, headers={"HX-Request": "true"})
    assert partial.content.decode().lstrip().startswith('<div id="results">')


def test_the_search_page_shows_an_outsider_nothing(client, organisation):
    client.login(username=organisation["outsider"].username, password=PASSWORD)

    page = client.get(reverse("search:page"), {"q": "lambda statements"}).content.decode()

    assert "Nothing you can read matches" in page and "Design and History FAQ" not in page


def test_a_configured_cross_encoder_reorders_the_candidates(organisation, settings, tmp_path):
    import torch
    from sentence_transformers import CrossEncoder

    from embedding.encoders import model_directory

    torch.manual_seed(0)
    CrossEncoder(str(model_directory("")), num_labels=1, device="cpu").save(str(tmp_path / "reranker"))
    settings.KB_RERANKER_MODEL_PATH = str(tmp_path / "reranker")
    question = "Why can’t lambda expressions contain statements?"

    hits = passages_search_for_user(user=organisation["member"], query_text=question, k=5)

    judge = CrossEncoder(str(tmp_path / "reranker"), device="cpu")
    expected = judge.predict([(question, f"{hit.heading}\n{hit.text}") for hit in hits])
    assert [hit.score for hit in hits] == pytest.approx(list(expected), rel=1e-4)
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def test_the_search_page_narrows_by_collection_and_file_type(client, organisation):
    from kb.documents.models import Collection

    other = make_collection(owner=Collection.objects.get().owner)
    ingested_document(collection=other, name="lambda-notes.md", content=b"# Lambda notes\nLambda statements again.")
    client.login(username=organisation["member"].username, password=PASSWORD)

    only_other = client.get(reverse("search:page"), {"q": "lambda", "collection": other.pk}).content.decode()
    only_html = client.get(reverse("search:page"), {"q": "lambda", "type": "web"}).content.decode()
    only_logs = client.get(reverse("search:page"), {"q": "lambda", "type": "logs"}).content.decode()

    assert "Lambda notes" in only_other and "Design and History FAQ" not in only_other
    assert "Design and History FAQ" in only_html and "Lambda notes" in only_html
    assert "Nothing you can read matches" in only_logs


@pytest.fixture
def word_statistics(organisation, monkeypatch):
    """The chunk table analysed, as in production, and the selector's cache of word shares emptied."""
    from django.db import connection

    from kb.search import selectors

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE documents_chunk")
    monkeypatch.setattr(selectors, "_lexeme_shares_cache", (float("-inf"), {}))
    return selectors._lexeme_shares()


def _words(hit: PassageHit) -> str:
    return (hit.heading + " " + hit.text).lower()


def test_keyword_candidates_hold_a_distinctive_word_and_are_ranked_by_all_words(
    organisation, word_statistics, settings
):
    settings.KB_KEYWORD_MAX_WORD_SHARE = word_statistics["lambda"]  # "lambda" is rare enough, "statement" is not
    assert word_statistics["statement"] > word_statistics["lambda"]

    hits = passages_search_for_user(user=organisation["member"], query_text="lambda statements", k=50, mode="keyword")

    assert hits and all("lambda" in _words(hit) for hit in hits)
    assert "statement" in _words(hits[0])


def test_when_every_word_is_common_candidates_hold_all_of_them_together(organisation, word_statistics, settings):
    settings.KB_KEYWORD_MAX_WORD_SHARE = word_statistics["lambda"] * word_statistics["statement"]

    hits = passages_search_for_user(user=organisation["member"], query_text="lambda statements", k=50, mode="keyword")

    assert hits and all("lambda" in _words(hit) and "statement" in _words(hit) for hit in hits)
    # One common word alone is as common as itself: no keyword candidates.
    assert passages_search_for_user(user=organisation["member"], query_text="lambda", k=50, mode="keyword") == []


def test_a_question_of_one_common_word_is_answered_by_the_dense_search_alone(organisation, word_statistics, settings):
    settings.KB_KEYWORD_MAX_WORD_SHARE = word_statistics["python"] / 2
    question = "What is Python?"

    assert passages_search_for_user(user=organisation["member"], query_text=question, k=5, mode="keyword") == []
    hybrid = passages_search_for_user(user=organisation["member"], query_text=question, k=5)
    dense = passages_search_for_user(user=organisation["member"], query_text=question, k=5, mode="dense")
    assert hybrid and [hit.chunk_id for hit in hybrid] == [hit.chunk_id for hit in dense]


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_keyword_search_runs_beside_dense_search_under_the_same_filter(organisation, monkeypatch):
    import threading

    from django.db import transaction

    from kb.accounts.services import membership_delete
    from kb.search import selectors

    keyword_threads = []
    keyword_ranking = selectors.keyword_ranking

    def spied(readable_chunks, **arguments):
        keyword_threads.append(threading.current_thread().name)
        return keyword_ranking(readable_chunks, **arguments)

    monkeypatch.setattr(selectors, "keyword_ranking", spied)
    question, member = "Why can’t lambda expressions contain statements?", organisation["member"]
    with transaction.atomic():
        in_one_connection = passages_search_for_user(user=member, query_text=question, k=5)
    beside = passages_search_for_user(user=member, query_text=question, k=5)

    assert keyword_threads[0] == threading.current_thread().name
    assert keyword_threads[1].startswith("keyword-search")
    assert [hit.chunk_id for hit in beside] == [hit.chunk_id for hit in in_one_connection]
    assert question in [hit.heading for hit in beside]
    assert passages_search_for_user(user=organisation["outsider"], query_text=question, k=5) == []

    membership_delete(
        acting_user=system_actor(), membership=member.memberships.get()
    )  # the very next search, both connections
    assert passages_search_for_user(user=member, query_text=question, k=5) == []
    assert keyword_threads[-1].startswith("keyword-search")
