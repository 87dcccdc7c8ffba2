from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET, require_http_methods

from extract.formats import SEARCH_GROUPS, search_group_extensions
from kb.documents.selectors import chunk_get_for_user, chunk_neighbours_for_user, collections_readable_by
from kb.platform.forms import submitted_id
from kb.platform.views import render_page
from kb.search.selectors import PassageFilters
from kb.search.services import passages_search_recorded

SEARCH_MODES = {"hybrid": "Hybrid", "dense": "Meaning (dense)", "keyword": "Keywords"}
# The type filter: its query value, label and the extensions it finds, from the one table of file types.
FILE_TYPES = {
    "": ("Any type", ()),
    **{group: (label, search_group_extensions(group)) for group, label in SEARCH_GROUPS.items()},
}
MAX_QUERY_CHARS = 500


@login_required
@require_GET
def passage_detail(request: HttpRequest, chunk_id: int) -> HttpResponse:
    chunk = chunk_get_for_user(user=request.user, chunk_id=chunk_id)
    before, after = chunk_neighbours_for_user(user=request.user, chunk=chunk)
    return render_page(
        request,
        "search/passage.html",
        partial="passage",
        context={"chunk": chunk, "document": chunk.document, "before": before, "after": after},
    )


@login_required
@require_http_methods(["GET", "POST"])
def search_page(request: HttpRequest) -> HttpResponse:
    """Ranked passages for people who want to find the document, not an answer (no LLM involved).

    The words are posted, never put in the URL: what a user searched for stays out of access logs and browser
    history, and each search is recorded in the audit trail as a question is (kb.search.services)."""
    form = request.POST if request.method == "POST" else {}
    query = " ".join(form.get("q", "").split())[:MAX_QUERY_CHARS]
    mode = form.get("mode", "hybrid")
    if mode not in SEARCH_MODES:
        mode = "hybrid"
    collections = collections_readable_by(user=request.user)
    collection = collections.filter(pk=submitted_id(form.get("collection"))).first()
    file_type = form.get("type", "") if form.get("type", "") in FILE_TYPES else ""
    filters = PassageFilters(collection_ids=(collection.pk,) if collection else (), extensions=FILE_TYPES[file_type][1])
    hits = (
        passages_search_recorded(
            user=request.user, query_text=query, k=20, mode=mode, filters=filters, channel="search"
        )
        if query
        else []
    )
    return render_page(
        request,
        "search/search.html",
        partial="results",
        context={
            "query": query,
            "mode": mode,
            "modes": SEARCH_MODES,
            "hits": hits,
            "collections": collections,
            "collection": collection,
            "file_types": {key: label for key, (label, _) in FILE_TYPES.items()},
            "file_type": file_type,
        },
    )
