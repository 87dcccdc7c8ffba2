from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from kb.documents.selectors import collections_manageable_by, documents_in_manageable_collections
from kb.documents.services import UploadRejected, document_upload


def _require_some_collection(request: HttpRequest):
    collections = collections_manageable_by(user=request.user)
    if not collections.exists():
        raise PermissionDenied("Only department admins can upload documents.")
    return collections


def _page_context(request: HttpRequest, **extra) -> dict:
    return {
        "collections": _require_some_collection(request),
        "documents": documents_in_manageable_collections(user=request.user)[:200],
        **extra,
    }


@login_required
@require_GET
def documents_page(request: HttpRequest) -> HttpResponse:
    return render(request, "documents/documents.html", _page_context(request))


@login_required
@require_POST
def documents_upload(request: HttpRequest) -> HttpResponse:
    collections = _require_some_collection(request)
    collection = collections.filter(pk=request.POST.get("collection") or None).first()
    uploads = request.FILES.getlist("files")
    accepted, rejected = [], []
    if collection is None:
        rejected.append("Choose a collection you manage.")
    elif not uploads:
        rejected.append("Choose at least one file.")
    else:
        # Each file stands alone: one bad file is reported and the rest of the batch goes on.
        for upload in uploads:
            try:
                accepted.append(document_upload(acting_user=request.user, collection=collection, upload=upload))
            except UploadRejected as error:
                rejected.append(str(error))
    template = "documents/documents.html#workspace" if request.htmx else "documents/documents.html"
    status = 200 if accepted or not rejected else 400
    return render(request, template, _page_context(request, accepted=accepted, rejected=rejected), status=status)


@login_required
@require_GET
def document_row(request: HttpRequest, document_id: int) -> HttpResponse:
    document = documents_in_manageable_collections(user=request.user).filter(pk=document_id).first()
    if document is None:
        raise Http404("No such document")
    return render(request, "documents/documents.html#row", {"document": document})
