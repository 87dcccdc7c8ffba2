import pytest
from django.db import connection

from kb.documents.models import Collection
from kb.documents.selectors import chunk_get_for_user
from kb.search.selectors import passages_search_for_user
from tests.factories import ingested_document, make_collection, make_department, make_user

pytestmark = pytest.mark.django_db

QUESTION = "Why does Python use indentation for grouping of statements?"


@pytest.fixture
def organisation(python_docs):
    engineering, finance = make_department("Engineering"), make_department("Finance")
    faq = make_collection(owner=engineering)
    design = ingested_document(
        collection=faq, name="design.html", content=(python_docs / "faq" / "design.html").read_bytes()
    )
    return {"engineering": engineering, "finance": finance, "collection": faq, "document": design}


def test_members_find_their_department_passages_first(organisation):
    alice = make_user(department=organisation["engineering"])

    hits = passages_search_for_user(user=alice, query_text=QUESTION, k=4, mode="dense")

    assert len(hits) == 4
    assert hits[0].heading == QUESTION
    assert hits[0].document_id == organisation["document"].pk
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def test_other_departments_get_nothing_from_a_department_collection(organisation):
    bob = make_user(department=organisation["finance"])
    nobody = make_user()

    for user in (bob, nobody):
        assert passages_search_for_user(user=user, query_text=QUESTION, k=4, mode="dense") == []
        chunk_id = organisation["document"].chunks.first().pk
        with pytest.raises(Exception, match="No such passage"):
            chunk_get_for_user(user=user, chunk_id=chunk_id)


def test_company_wide_collections_are_readable_by_everyone(organisation):
    bob = make_user(department=organisation["finance"])
    Collection.objects.filter(pk=organisation["collection"].pk).update(visibility=Collection.Visibility.COMPANY)

    hits = passages_search_for_user(user=bob, query_text=QUESTION, k=4, mode="dense")

    assert hits and hits[0].heading == QUESTION


def test_filtered_search_still_returns_k_rows_when_the_readable_rows_are_few(organisation, python_docs):
    # Many unreadable chunks lie nearer to the question than the readable ones. With the HNSW index forced, the
    # permission filter throws most visited rows away; iterative index scans keep walking until k readable ones.
    finance_faq = make_collection(owner=organisation["finance"])
    ingested_document(
        collection=finance_faq, name="general.html", content=(python_docs / "faq" / "general.html").read_bytes()
    )
    bob = make_user(department=organisation["finance"])
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")

    hits = passages_search_for_user(user=bob, query_text=QUESTION, k=10, mode="dense")

    assert len(hits) == 10
    assert {hit.collection_name for hit in hits} == {finance_faq.name}


def vector_storage() -> dict[str, int]:
    """How the chunk rows hold their vectors: out of line (in the TOAST table) or in the row itself."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), "
            "count(*) FILTER (WHERE pg_column_size(documents_chunk.*) > 2032), "
            "count(*) FILTER (WHERE pg_column_toast_chunk_id(embedding) IS NOT NULL), "
            "count(*) FILTER (WHERE pg_column_toast_chunk_id(search_vector) IS NOT NULL), "
            "(SELECT attstorage FROM pg_attribute WHERE attrelid = 'documents_chunk'::regclass "
            " AND attname = 'embedding') FROM documents_chunk"
        )
        rows, wide, vectors_out_of_line, tsvectors_out_of_line, storage = cursor.fetchone()
    return {
        "rows": rows,
        "wide": wide,
        "vectors_out_of_line": vectors_out_of_line,
        "tsvectors_out_of_line": tsvectors_out_of_line,
        "storage": storage,
    }


def test_vectors_and_tsvectors_stay_in_the_row_so_searches_need_no_toast_fetch(organisation):
    storage = vector_storage()

    # Real passages make rows past PostgreSQL's 2 kB toast threshold, where it moves columns out of the row.
    assert storage["wide"] > 0
    assert storage["storage"] == "m"
    assert storage["vectors_out_of_line"] == 0 and storage["tsvectors_out_of_line"] == 0


def test_filtered_search_still_returns_k_rows_behind_many_dead_index_entries(organisation):
    # Passages deleted but not yet vacuumed stay in the HNSW index (here copies of the readable ones, each vector
    # moved a little: the index keeps identical vectors as one entry). When the scan has visited hnsw.max_scan_tuples
    # entries (here 1, in production 20,000 of a busy table's dead ones) it stops, with fewer than k readable rows.
    alice = make_user(department=organisation["engineering"])
    exact = [hit.chunk_id for hit in passages_search_for_user(user=alice, query_text=QUESTION, k=50, mode="dense")]
    assert 10 < len(exact) < 50  # every readable passage
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO documents_chunk (document_id, version_id, collection_id, is_serving, ordinal, heading, text, "
            "char_start, char_end, token_count, embedding, hosts, programs, peers, severity_counts) "
            "SELECT document_id, version_id, collection_id, is_serving, ordinal + 1000 * copy, heading, text, "
            "char_start, char_end, token_count, embedding + (SELECT array_agg((random() - 0.5) / 100) "
            "FROM generate_series(1, vector_dims(embedding)) WHERE copy > 0)::vector, "
            "hosts, programs, peers, severity_counts "
            "FROM documents_chunk, generate_series(1, 30) AS copy WHERE document_id = %s",
            [organisation["document"].pk],
        )
        cursor.execute("DELETE FROM documents_chunk WHERE ordinal >= 1000")
        # At scale the planner walks the HNSW index for a broad reader; on this small table it would read the
        # collection's rows by their B-tree index and sort them. Without that index (dropped in this transaction,
        # rolled back with it) and without sequential scans, the HNSW walk is the plan.
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'documents_chunk' AND indexdef LIKE '%%(collection_id)'"
        )
        for (index_name,) in cursor.fetchall():
            cursor.execute(f'DROP INDEX "{index_name}"')
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL hnsw.max_scan_tuples = 1")

    for k in (50, 10):
        hits = passages_search_for_user(user=alice, query_text=QUESTION, k=k, mode="dense")
        assert [hit.chunk_id for hit in hits] == exact[:k]
    with connection.cursor() as cursor:
        cursor.execute("SHOW enable_indexscan")
        assert cursor.fetchone() == ("on",)  # the exact scan's setting does not outlive it
