from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST

from kb.accounts.models import Department, User
from kb.documents.models import CollectionGrant
from kb.documents.selectors import (
    collections_manageable_by,
    document_get_for_manager,
    document_version_get_for_manager,
    document_versions_manageable_by,
    upload_batch_progress_for_manager,
)
from kb.documents.services import (
    UploadRejected,
    document_delete,
    document_version_retry,
    grant_create,
    grant_revoke,
    stalled_cutoff,
    upload_batch,
)


def _manageable_collections(request: HttpRequest):
    collections = collections_manageable_by(user=request.user)
    if not collections.exists():
        raise PermissionDenied("Only department admins can upload documents.")
    return collections


def _render_workspace(request: HttpRequest, *, status: int = 200, **extra) -> HttpResponse:
    context = {
        "collections": _manageable_collections(request),
        "versions": document_versions_manageable_by(user=request.user)[:200],
        "stalled_before": stalled_cutoff(),
        **extra,
    }
    template = "documents/documents.html#workspace" if request.htmx else "documents/documents.html"
    return render(request, template, context, status=status)


@login_required
@require_GET
def documents_page(request: HttpRequest) -> HttpResponse:
    return _render_workspace(request)


@login_required
@require_POST
def documents_upload(request: HttpRequest) -> HttpResponse:
    collection = _manageable_collections(request).filter(pk=request.POST.get("collection") or None).first()
    uploads = request.FILES.getlist("files")
    if collection is None or not uploads:
        problem = "Choose a collection you manage." if collection is None else "Choose at least one file."
        return _render_workspace(request, status=400, rejected=[problem])
    result = upload_batch(acting_user=request.user, collection=collection, files=uploads)
    progress = upload_batch_progress_for_manager(user=request.user, batch_id=result.batch.pk)
    return _render_workspace(request, status=200 if result.accepted or not result.rejected else 400,
                             accepted=result.accepted, rejected=result.rejected, progress=progress)


@login_required
@require_GET
def upload_batch_progress(request: HttpRequest, batch_id: int) -> HttpResponse:
    progress = upload_batch_progress_for_manager(user=request.user, batch_id=batch_id)
    return render(request, "documents/documents.html#batch", {"progress": progress})


@login_required
@require_GET
def document_version_row(request: HttpRequest, version_id: int) -> HttpResponse:
    version = document_version_get_for_manager(user=request.user, version_id=version_id)
    return render(request, "documents/documents.html#row",
                  {"version": version, "stalled_before": stalled_cutoff()})


@login_required
@require_POST
def document_version_retry_view(request: HttpRequest, version_id: int) -> HttpResponse:
    version = document_version_get_for_manager(user=request.user, version_id=version_id)
    try:
        version = document_version_retry(acting_user=request.user, version=version)
    except UploadRejected as error:
        return _render_workspace(request, status=400, rejected=[str(error)])
    return render(request, "documents/documents.html#row", {"version": version, "stalled_before": stalled_cutoff()})


@login_required
@require_POST
def document_delete_view(request: HttpRequest, document_id: int) -> HttpResponse:
    document = document_get_for_manager(user=request.user, document_id=document_id)
    name = document.original_name
    document_delete(acting_user=request.user, document=document)
    return _render_workspace(request, deleted=name)


def _render_access(request: HttpRequest, *, status: int = 200, **extra) -> HttpResponse:
    collections = _manageable_collections(request).prefetch_related("grants__department", "grants__user",
                                                                    "grants__granted_by")
    context = {"collections": collections, "departments": Department.objects.all(), **extra}
    template = "documents/access.html#access" if request.htmx else "documents/access.html"
    return render(request, template, context, status=status)


@login_required
@require_GET
def access_page(request: HttpRequest) -> HttpResponse:
    return _render_access(request)


@login_required
@require_POST
def grant_create_view(request: HttpRequest, collection_id: int) -> HttpResponse:
    collection = get_object_or_404(_manageable_collections(request), pk=collection_id)
    department = Department.objects.filter(pk=request.POST.get("department") or None).first()
    user = User.objects.filter(username=request.POST.get("username", "").strip()).first()
    if (department is None) == (user is None):
        return _render_access(request, status=400, error="Choose a department or give one existing username.")
    try:
        grant_create(acting_user=request.user, collection=collection, department=department, user=user)
    except ValidationError as error:
        return _render_access(request, status=400, error=" ".join(error.messages))
    return _render_access(request)


@login_required
@require_POST
def grant_revoke_view(request: HttpRequest, grant_id: int) -> HttpResponse:
    grant = get_object_or_404(CollectionGrant, pk=grant_id, collection__in=_manageable_collections(request))
    grant_revoke(acting_user=request.user, grant=grant)
    return _render_access(request)
