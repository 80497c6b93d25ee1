"""Admin routes: knowledge-base ingestion by upload, source deletion, listing.

Admin routes act for any tenant (``?tenant=``, default: the default tenant).
They need ``Authorization: Bearer <LEPTON_ADMIN_TOKEN>``; with no token
configured they answer only clients on this machine, so a fresh install is not
administrable from the network.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress

from fastapi import APIRouter, File, Form, Query, Request, UploadFile

from .errors import ApiError

__all__ = ["router"]

router = APIRouter(prefix="/admin")

_CHUNK = 1024 * 1024


def require_admin(request: Request) -> None:
    settings = request.app.state.settings
    if settings.admin_token:
        presented = request.headers.get("authorization", "")
        if not hmac.compare_digest(presented.encode(), f"Bearer {settings.admin_token}".encode()):
            raise ApiError(401, "Admin routes need 'Authorization: Bearer <admin token>'.", code="invalid_api_key")
        return
    host = request.client.host if request.client else ""
    try:
        local = ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if not local:
        raise ApiError(403, "Admin routes are only open to this machine until LEPTON_ADMIN_TOKEN is set.",
                       code="admin_forbidden")


def knowledge(request: Request):
    """The assistant's own KnowledgeStore, so admin writes and skill searches share one."""
    return request.app.state.assistant.knowledge.store


def _retrieval_error(exc: Exception) -> ApiError:
    from retrieval import CollectionNotFoundError

    status = 404 if isinstance(exc, CollectionNotFoundError) else 400
    return ApiError(status, str(exc))


async def _read_upload(upload: UploadFile, limit: int) -> bytes:
    data = bytearray()
    while chunk := await upload.read(_CHUNK):
        data += chunk
        if len(data) > limit:
            raise ApiError(413, f"{upload.filename} is over the {limit} byte upload limit; nothing was ingested",
                           param="files", code="file_too_large")
    return bytes(data)


@router.post("/collections/{collection}/documents")
async def upload_documents(
    request: Request,
    collection: str,
    files: list[UploadFile] = File(..., description="md, txt, html, pdf, csv or jsonl files"),
    tenant: str | None = Query(default=None),
    text_field: str | None = Form(default=None),
    title_field: str | None = Form(default=None),
):
    """Ingest uploaded files; like `lepton ingest`, bad files are reported and the rest ingest."""
    require_admin(request)
    from retrieval import IngestConfig, RetrievalError, ingest_bytes

    settings = request.app.state.settings
    tenant = tenant or settings.default_tenant
    store = knowledge(request)
    # Read everything first: one oversized file refuses the whole request before any write.
    payloads = [(f.filename or "upload", await _read_upload(f, settings.max_upload_bytes)) for f in files]
    config = IngestConfig(max_file_bytes=settings.max_upload_bytes)
    reports = []
    try:
        for name, data in payloads:
            report = await asyncio.to_thread(
                ingest_bytes, store, data, name, collection, tenant,
                text_field=text_field, title_field=title_field, config=config,
            )
            reports.append({**report.to_dict(), "ok": report.ok})
    except RetrievalError as exc:
        raise _retrieval_error(exc) from None
    return {"collection": collection, "tenant": tenant, "files": reports,
            "ok": all(r["ok"] for r in reports)}


@router.delete("/collections/{collection}/documents")
async def delete_source(request: Request, collection: str, source: str = Query(...),
                        tenant: str | None = Query(default=None)):
    """Remove every chunk of one source (an uploaded file name or an ingested path)."""
    require_admin(request)
    from retrieval import RetrievalError

    tenant = tenant or request.app.state.settings.default_tenant
    store = knowledge(request)
    try:
        removed = await asyncio.to_thread(store.delete_source, collection, source, tenant)
    except RetrievalError as exc:
        raise _retrieval_error(exc) from None
    return {"collection": collection, "tenant": tenant, "source": source, "removed_chunks": removed}


@router.get("/collections")
async def list_collections(request: Request, tenant: str | None = Query(default=None)):
    require_admin(request)
    tenant = tenant or request.app.state.settings.default_tenant
    store = knowledge(request)
    names = await asyncio.to_thread(store.list_collections, tenant)
    return {"tenant": tenant, "collections": [
        {"name": name, "chunks": store.count(name, tenant), "sources": store.sources(name, tenant)} for name in names]}
