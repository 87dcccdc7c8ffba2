from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from kb.documents.selectors import chunk_get_for_user


@login_required
@require_GET
def passage_detail(request: HttpRequest, chunk_id: int) -> HttpResponse:
    chunk = chunk_get_for_user(user=request.user, chunk_id=chunk_id)
    template = "search/passage.html#passage" if request.htmx else "search/passage.html"
    return render(request, template, {"chunk": chunk, "document": chunk.document})
