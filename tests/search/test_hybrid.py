"""Keyword and hybrid retrieval, each permission-filtered in its own SQL, and the search page."""

import math

import pytest
from django.urls import reverse

from kb.platform.actors import system_actor
from kb.search.selectors import (
    PassageHit,
    bm25_idf,
    fused,
    passages_search_for_user,
    reciprocal_rank_fusion,
    score_fusion,
)
from tests.factories import PASSWORD, ingested_document, make_collection

pytestmark = pytest.mark.django_db


def _hit(chunk_id: int, score: float = 0.0) -> PassageHit:
    return PassageHit(
        chunk_id=chunk_id,
        document_id=1,
        version_id=1,
        document_title="",
        collection_name="",
        heading="",
        text="",
        score=score,
    )


def test_reciprocal_rank_fusion_rewards_agreement_between_rankings(settings):
    settings.KB_RRF_K = 60
    fused = reciprocal_rank_fusion([[_hit(1), _hit(2), _hit(3)], [_hit(3), _hit(4), _hit(1)]], k=3)

    assert [hit.chunk_id for hit in fused] == [1, 3, 2]
    assert fused[0].score == pytest.approx(1 / 61 + 1 / 63)


def test_min_max_fusion_weighs_each_ranking_by_its_scaled_scores():
    dense = [_hit(1, 0.9), _hit(2, 0.8), _hit(3, 0.5)]
    keyword = [_hit(3, 12.0), _hit(4, 2.0), _hit(1, 0.0)]

    fused = score_fusion(dense, keyword, dense_weight=0.6, k=4, scaling="minmax")

    # 1: 0.6 × 1 + 0.4 × 0; 2: 0.6 × 0.75; 3: 0.6 × 0 + 0.4 × 1; 4: 0.4 × 0.1667
    assert [hit.chunk_id for hit in fused] == [1, 2, 3, 4]
    assert [hit.score for hit in fused] == pytest.approx([0.6, 0.45, 0.4, 0.4 / 6])


def test_z_score_fusion_counts_how_far_a_passage_stands_out_of_its_list():
    # Keyword's best (2) is barely ahead of its runner-up; dense's best (1) is well ahead of the rest of its list.
    dense = [_hit(1, 0.69), _hit(2, 0.60), _hit(3, 0.56), _hit(4, 0.22)]
    keyword = [_hit(2, 9.6), _hit(5, 9.2), _hit(1, 6.7), _hit(6, 3.4)]

    fused = score_fusion(dense, keyword, dense_weight=0.7, k=6, scaling="zscore")

    def deviations(scores: list[float]) -> list[float]:  # from the list's mean, in its standard deviations
        mean = sum(scores) / len(scores)
        spread = math.sqrt(sum((score - mean) ** 2 for score in scores) / len(scores))
        return [(score - mean) / spread for score in scores]

    dense_z, keyword_z = deviations([0.69, 0.60, 0.56, 0.22]), deviations([9.6, 9.2, 6.7, 3.4])
    expected = {
        1: 0.7 * dense_z[0] + 0.3 * keyword_z[2],
        2: 0.7 * dense_z[1] + 0.3 * keyword_z[0],
        3: 0.7 * dense_z[2] + 0.3 * keyword_z[3],  # missing from keyword: its list's lowest
        4: 0.7 * dense_z[3] + 0.3 * keyword_z[3],
        5: 0.7 * dense_z[3] + 0.3 * keyword_z[1],  # missing from dense: its list's lowest
        6: 0.7 * dense_z[3] + 0.3 * keyword_z[3],
    }
    assert [hit.chunk_id for hit in fused] == sorted(expected, key=lambda chunk_id: (-expected[chunk_id], chunk_id))
    assert [hit.score for hit in fused] == pytest.approx(sorted(expected.values(), reverse=True))
    assert fused[0].chunk_id == 1
    # Min-max gives keyword's best a full 1 however close its runner-up, and puts it first.
    assert score_fusion(dense, keyword, dense_weight=0.7, k=1, scaling="minmax")[0].chunk_id == 2


@pytest.mark.parametrize("scaling", ["zscore", "minmax"])
def test_score_fusion_with_one_empty_ranking_keeps_the_other_order(scaling):
    dense = [_hit(5, 0.7), _hit(6, 0.7), _hit(7, 0.2)]

    assert [hit.chunk_id for hit in score_fusion(dense, [], dense_weight=0.6, k=3, scaling=scaling)] == [5, 6, 7]
    assert [hit.chunk_id for hit in score_fusion([], dense, dense_weight=0.6, k=2, scaling=scaling)] == [5, 6]
    assert [hit.chunk_id for hit in score_fusion([_hit(8, 0.4)], [], dense_weight=0.6, k=2, scaling=scaling)] == [8]


def test_fusion_is_the_one_the_settings_name(settings):
    dense, keyword = [_hit(1, 0.9), _hit(2, 0.1)], [_hit(2, 5.0), _hit(1, 4.9)]
    settings.KB_RRF_K = 60

    settings.KB_FUSION = "rrf"
    assert [hit.score for hit in fused(dense, keyword, k=2)] == pytest.approx([1 / 61 + 1 / 62] * 2)
    settings.KB_FUSION, settings.KB_FUSION_DENSE_WEIGHT = "minmax", 0.6
    assert [hit.score for hit in fused(dense, keyword, k=2)] == pytest.approx([0.6, 0.4])
    settings.KB_FUSION = "zscore"
    assert [hit.score for hit in fused(dense, keyword, k=2)] == pytest.approx([0.6 - 0.4, 0.4 - 0.6])


def test_bm25_idf_falls_as_words_get_common_and_stays_positive():
    idfs = [bm25_idf(share, passages=1000) for share in (0.0, 0.001, 0.1, 0.5, 1.0)]

    assert idfs == sorted(idfs, reverse=True)
    assert idfs[-1] > 0
    assert bm25_idf(0.01, passages=1000) == pytest.approx(math.log(1 + 990.5 / 10.5))


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

    page = client.post(reverse("search:page"), {"q": "lambda statements"}).content.decode()

    assert "<mark>lambda</mark>" in page.lower()
    assert "Design and History FAQ" in page
    partial = client.post(reverse("search:page"), {"q": "lambda", "mode": "keyword"}, headers={"HX-Request": "true"})
    assert partial.content.decode().lstrip().startswith('<div id="results">')


def test_the_search_page_shows_an_outsider_nothing(client, organisation):
    client.login(username=organisation["outsider"].username, password=PASSWORD)

    page = client.post(reverse("search:page"), {"q": "lambda statements"}).content.decode()

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

    only_other = client.post(reverse("search:page"), {"q": "lambda", "collection": other.pk}).content.decode()
    only_html = client.post(reverse("search:page"), {"q": "lambda", "type": "web"}).content.decode()
    only_logs = client.post(reverse("search:page"), {"q": "lambda", "type": "logs"}).content.decode()

    assert "Lambda notes" in only_other and "Design and History FAQ" not in only_other
    assert "Design and History FAQ" in only_html and "Lambda notes" in only_html
    assert "Nothing you can read matches" in only_logs


@pytest.fixture
def word_statistics(organisation, monkeypatch):
    """The chunk table analysed, as in production, and the selector's cache of word statistics emptied."""
    from django.db import connection

    from kb.search import selectors

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE documents_chunk")
    monkeypatch.setattr(selectors, "_lexeme_statistics_cache", (float("-inf"), None))
    return selectors._lexeme_statistics()


def _words(hit: PassageHit) -> str:
    return (hit.heading + " " + hit.text).lower()


def _expected_passages(statistics, *words: str) -> float:
    return sum(statistics.share(word) for word in words) * statistics.passages


def test_keyword_candidates_hold_the_rarest_word_and_are_ranked_by_all_words(organisation, word_statistics, settings):
    assert word_statistics.share("statement") > word_statistics.share("lambda")
    settings.KB_KEYWORD_MAX_CANDIDATES = _expected_passages(word_statistics, "lambda")  # "statement" would pass it

    hits = passages_search_for_user(user=organisation["member"], query_text="lambda statements", k=50, mode="keyword")

    assert hits and all("lambda" in _words(hit) for hit in hits)
    assert "statement" in _words(hits[0])


def test_below_the_candidate_bound_every_word_of_the_question_brings_candidates(
    organisation, word_statistics, settings
):
    settings.KB_KEYWORD_MAX_CANDIDATES = _expected_passages(word_statistics, "lambda", "statement")

    hits = passages_search_for_user(user=organisation["member"], query_text="lambda statements", k=50, mode="keyword")

    assert any("lambda" not in _words(hit) and "statement" in _words(hit) for hit in hits)


def test_when_every_word_is_common_candidates_hold_all_of_them_together(organisation, word_statistics, settings):
    both = word_statistics.share("lambda") * word_statistics.share("statement") * word_statistics.passages
    settings.KB_KEYWORD_MAX_CANDIDATES = both

    hits = passages_search_for_user(user=organisation["member"], query_text="lambda statements", k=50, mode="keyword")

    assert hits and all("lambda" in _words(hit) and "statement" in _words(hit) for hit in hits)
    # One common word alone is as common as itself: no keyword candidates.
    assert passages_search_for_user(user=organisation["member"], query_text="lambda", k=50, mode="keyword") == []


def test_a_question_of_one_common_word_is_answered_by_the_dense_search_alone(organisation, word_statistics, settings):
    settings.KB_KEYWORD_MAX_CANDIDATES = _expected_passages(word_statistics, "python") / 2
    question = "What is Python?"

    assert passages_search_for_user(user=organisation["member"], query_text=question, k=5, mode="keyword") == []
    hybrid = passages_search_for_user(user=organisation["member"], query_text=question, k=5)
    dense = passages_search_for_user(user=organisation["member"], query_text=question, k=5, mode="dense")
    assert hybrid and [hit.chunk_id for hit in hybrid] == [hit.chunk_id for hit in dense]


def test_a_rare_word_weighs_more_than_a_common_one(organisation, word_statistics):
    from kb.search.selectors import keyword_query

    query = keyword_query("lambda statements")

    assert query.weights["lambda"] > query.weights["statement"] > 0


def test_passage_words_joined_by_punctuation_match_the_question_words(organisation):
    from kb.documents.models import Collection

    notes = make_collection(owner=Collection.objects.get().owner)
    ingested_document(
        collection=notes,
        name="bans.md",
        content=b"# Bans\nEdit /etc/fail2ban/jail.local to unban 192.168.1.10 with os.path.join.",
    )
    member = organisation["member"]

    for question in ("Where is the jail.local file?", "jail local", "192.168.1.10", "os path join"):
        hits = passages_search_for_user(user=member, query_text=question, k=5, mode="keyword")
        assert hits and hits[0].heading == "Bans", question


def test_a_compound_word_ranks_the_passage_naming_it_whole_above_one_holding_its_parts(organisation):
    from kb.documents.models import Collection

    notes = make_collection(owner=Collection.objects.get().owner)
    # The passages holding the parts come first, so that they would win a tie.
    for name, content in (
        ("parts-address.md", b"# Parts apart\nThe 7 bans of 2 June came from 192 hosts in 0 days."),
        ("whole-address.md", b"# Address whole\nThe ban came from 192.0.2.7 on a Tuesday."),
        ("parts-encoding.md", b"# Encoding apart\nUTF files kept 16 lines."),
        ("whole-encoding.md", b"# Encoding whole\nConvert utf-16 files first."),
    ):
        ingested_document(collection=notes, name=name, content=content)
    member = organisation["member"]

    for question, heading in (("who is 192.0.2.7", "Address whole"), ("my utf-16 files", "Encoding whole")):
        hits = passages_search_for_user(user=member, query_text=question, k=5, mode="keyword")
        assert hits and hits[0].heading == heading, question


def test_a_compound_word_too_long_for_a_lexeme_leaves_its_passage_searchable(organisation):
    from kb.documents.models import Collection

    notes = make_collection(owner=Collection.objects.get().owner)
    # 2,201 bytes, over a lexeme's 2,046 (array_to_tsvector would refuse it), in a few tokens: one passage holds it.
    probe = "x" * 1100 + "/" + "y" * 1100
    ingested_document(
        collection=notes, name="probe.md", content=f"# Probe\nThe scanner asked for {probe} twice.".encode()
    )

    hits = passages_search_for_user(user=organisation["member"], query_text="scanner probe", k=5, mode="keyword")
    assert hits and hits[0].heading == "Probe"


def test_a_compound_word_of_the_question_is_one_lexeme_of_the_keyword_query(organisation):
    from kb.search.selectors import keyword_query

    query = keyword_query("Why is utf-16 shown as binary on 192.0.2.7?")

    assert {"utf-16", "192.0.2.7", "utf", "16", "binari"} <= set(query.weights)
    # A rare whole word weighs at least as much as its commonest part.
    assert query.weights["utf-16"] >= query.weights["utf"]


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
