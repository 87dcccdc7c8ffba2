from functools import partial
from pathlib import PurePosixPath

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST

from extract.formats import ACCEPTED_EXTENSIONS, FORMATS
from kb.accounts.models import Department, User
from kb.accounts.selectors import departments_administered_by
from kb.documents.models import Collection, CollectionGrant, UploadBatch
from kb.documents.selectors import (
    collections_manageable_by,
    document_get_for_manager,
    document_version_get_for_manager,
    document_version_pdf_get_for_reader,
    document_versions_manageable_by,
    document_versions_of_batch_for_manager,
    upload_batch_get_for_manager,
    upload_batch_progress_for_manager,
    upload_batches_manageable_by,
)
from kb.documents.services import (
    UploadRejected,
    collection_create,
    collection_delete,
    collection_visibility_change,
    document_delete,
    document_move,
    document_version_retry,
    grant_create,
    grant_revoke,
    stalled_cutoff,
    upload_batch,
)
from kb.platform.forms import submitted_id
from kb.platform.views import render_after_change, render_page


def _manageable_collections(request: HttpRequest):
    collections = collections_manageable_by(user=request.user)
    if not collections.exists():
        if departments_administered_by(user=request.user).exists():
            raise PermissionDenied("You manage no collection yet: create one on the Access page.")
        if request.user.is_superuser:
            raise PermissionDenied("There is no department yet: create one on the Organisation page first.")
        raise PermissionDenied("Only department admins can upload documents.")
    return collections


# What the upload form says it takes, and what its file picker offers: every type the upload accepts.
UPLOAD_FORMATS = ", ".join(file_format.label for file_format in FORMATS)
UPLOAD_ACCEPT = ",".join(ACCEPTED_EXTENSIONS)


def _render_workspace(request: HttpRequest, *, status: int = 200, **extra) -> HttpResponse:
    context = {
        "upload_formats": UPLOAD_FORMATS,
        "upload_accept": UPLOAD_ACCEPT,
        "request_max_bytes": settings.KB_REQUEST_MAX_BYTES,
        "collections": _manageable_collections(request),
        "versions": document_versions_manageable_by(user=request.user)[:200],
        "stalled_before": stalled_cutoff(),
        **extra,
    }
    return render_page(request, "documents/documents.html", partial="workspace", context=context, status=status)


@login_required
@require_GET
def documents_page(request: HttpRequest) -> HttpResponse:
    return _render_workspace(request)


@login_required
@require_POST
def documents_upload(request: HttpRequest) -> HttpResponse:
    collection = _manageable_collections(request).filter(pk=submitted_id(request.POST.get("collection"))).first()
    uploads = request.FILES.getlist("files")
    if collection is None or not uploads:
        problem = "Choose a collection you manage." if collection is None else "Choose at least one file."
        return _render_workspace(
            request, status=400, rejected=[problem], upload_collection_id=collection.pk if collection else None
        )
    result = upload_batch(acting_user=request.user, collection=collection, files=uploads)
    progress = upload_batch_progress_for_manager(user=request.user, batch_id=result.batch.pk)
    return _render_workspace(
        request,
        upload_collection_id=collection.pk,
        status=200 if result.accepted or not result.rejected else 400,
        accepted=result.accepted,
        rejected=result.rejected,
        progress=progress,
    )


@login_required
@require_GET
def upload_batch_progress(request: HttpRequest, batch_id: int) -> HttpResponse:
    progress = upload_batch_progress_for_manager(user=request.user, batch_id=batch_id)
    return render(request, "documents/documents.html#batch", {"progress": progress})


def _row_context(request: HttpRequest, version) -> dict:
    """What the row partial needs when it is drawn alone: the collections its move form offers, as in the workspace."""
    return {
        "version": version,
        "stalled_before": stalled_cutoff(),
        "collections": collections_manageable_by(user=request.user),
    }


@login_required
@require_GET
def document_version_row(request: HttpRequest, version_id: int) -> HttpResponse:
    version = document_version_get_for_manager(user=request.user, version_id=version_id)
    return render(request, "documents/documents.html#row", _row_context(request, version))


@login_required
@require_GET
def document_version_pdf(request: HttpRequest, version_id: int) -> FileResponse:
    """The original PDF for the page viewer of a citation, shown in the browser, never run as anything else."""
    version = document_version_pdf_get_for_reader(user=request.user, version_id=version_id)
    response = FileResponse(
        version.file.open("rb"),
        content_type="application/pdf",
        filename=PurePosixPath(version.document.original_name).name,
    )
    response["X-Content-Type-Options"] = "nosniff"
    # Never kept by a shared cache, and asked for again at every opening: a revoked grant takes effect at once.
    response["Cache-Control"] = "private, no-cache"
    return response


@login_required
@require_POST
def document_version_retry_view(request: HttpRequest, version_id: int) -> HttpResponse:
    version = document_version_get_for_manager(user=request.user, version_id=version_id)
    try:
        version = document_version_retry(acting_user=request.user, version=version)
    except UploadRejected as error:
        return _render_workspace(request, status=400, rejected=[str(error)])
    response = render(request, "documents/documents.html#row", _row_context(request, version))
    # The upload history's file list listens for this to redraw itself and start polling again.
    response["HX-Trigger"] = "version-retried"
    return response


@login_required
@require_POST
def document_delete_view(request: HttpRequest, document_id: int) -> HttpResponse:
    document = document_get_for_manager(user=request.user, document_id=document_id)
    name = document.original_name
    document_delete(acting_user=request.user, document=document)
    return _render_workspace(request, deleted=name)


@login_required
@require_POST
def document_move_view(request: HttpRequest, document_id: int) -> HttpResponse:
    document = document_get_for_manager(user=request.user, document_id=document_id)
    to_collection = (
        _manageable_collections(request)
        .exclude(pk=document.collection_id)
        .filter(pk=submitted_id(request.POST.get("collection")))
        .first()
    )
    if to_collection is None:
        return _render_workspace(request, status=400, rejected=["Choose a collection you manage."])
    try:
        document_move(acting_user=request.user, document=document, to_collection=to_collection)
    except UploadRejected as error:
        return _render_workspace(request, status=400, rejected=[str(error)])
    except PermissionDenied as error:
        return _render_workspace(request, status=403, rejected=[str(error)])
    return _render_workspace(request, moved=document)


UPLOAD_BATCHES_PER_PAGE = 25


@login_required
@require_GET
def upload_batches_page(request: HttpRequest) -> HttpResponse:
    # Someone who manages no collection sees an empty history (the Documents page answers 403 instead).
    page = Paginator(upload_batches_manageable_by(user=request.user), UPLOAD_BATCHES_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return render_page(request, "documents/batches.html", partial="batches", context={"page": page})


def _rejected_files(batch: UploadBatch) -> list[tuple[str, str]]:
    """The refused files as (name, reason); the upload service records each as "name: reason"."""
    return [
        (name, reason) if reason else ("", name)
        for name, _, reason in (str(entry).partition(": ") for entry in batch.rejected)
    ]


@login_required
@require_GET
def upload_batch_page(request: HttpRequest, batch_id: int) -> HttpResponse:
    batch = upload_batch_get_for_manager(user=request.user, batch_id=batch_id)
    context = {
        "batch": batch,
        "versions": document_versions_of_batch_for_manager(user=request.user, batch=batch),
        "rejected_files": _rejected_files(batch),
        "stalled_before": stalled_cutoff(),
    }
    return render_page(request, "documents/batch.html", partial="files", context=context)


def _render_access(request: HttpRequest, *, status: int = 200, **extra) -> HttpResponse:
    owners = departments_administered_by(user=request.user)
    if not owners.exists():
        raise PermissionDenied("Only department admins manage collections and who may read them.")
    collections = (
        collections_manageable_by(user=request.user)
        .select_related("owner")
        .prefetch_related("grants__department", "grants__user", "grants__granted_by")
    )
    context = {
        "collections": collections,
        "departments": Department.objects.all(),
        "owners": owners,
        "visibilities": Collection.Visibility.choices,
        **extra,
    }
    return render_page(request, "documents/access.html", partial="access", context=context, status=status)


def _change_access(request: HttpRequest, change) -> HttpResponse:
    return render_after_change(change, partial(_render_access, request))


@login_required
@require_GET
def access_page(request: HttpRequest) -> HttpResponse:
    return _render_access(request)


@login_required
@require_POST
def grant_create_view(request: HttpRequest, collection_id: int) -> HttpResponse:
    collection = get_object_or_404(_manageable_collections(request), pk=collection_id)
    department = Department.objects.filter(pk=submitted_id(request.POST.get("department"))).first()
    user = User.objects.filter(username=request.POST.get("username", "").strip()).first()
    if (department is None) == (user is None):
        return _render_access(request, status=400, error="Choose a department or give one existing username.")
    return _change_access(
        request, lambda: grant_create(acting_user=request.user, collection=collection, department=department, user=user)
    )


@login_required
@require_POST
def grant_revoke_view(request: HttpRequest, grant_id: int) -> HttpResponse:
    grant = get_object_or_404(CollectionGrant, pk=grant_id, collection__in=_manageable_collections(request))
    grant_revoke(acting_user=request.user, grant=grant)
    return _render_access(request)


@login_required
@require_POST
def collection_create_view(request: HttpRequest) -> HttpResponse:
    owner = get_object_or_404(
        departments_administered_by(user=request.user), pk=submitted_id(request.POST.get("owner"))
    )
    name = request.POST.get("name", "").strip()
    visibility = request.POST.get("visibility", Collection.Visibility.DEPARTMENT)
    return _change_access(
        request, lambda: collection_create(acting_user=request.user, name=name, owner=owner, visibility=visibility)
    )


@login_required
@require_POST
def collection_visibility_view(request: HttpRequest, collection_id: int) -> HttpResponse:
    collection = get_object_or_404(collections_manageable_by(user=request.user), pk=collection_id)
    visibility = request.POST.get("visibility", "")
    return _change_access(
        request,
        lambda: collection_visibility_change(acting_user=request.user, collection=collection, visibility=visibility),
    )


@login_required
@require_POST
def collection_delete_view(request: HttpRequest, collection_id: int) -> HttpResponse:
    collection = get_object_or_404(collections_manageable_by(user=request.user), pk=collection_id)
    collection_delete(acting_user=request.user, collection=collection)
    return _render_access(request, deleted=collection.name)
