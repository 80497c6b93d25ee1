"""Admin routes: knowledge-base ingestion by upload, source deletion, listing.

Admin routes act for the tenant of ``?tenant=`` (default: the admin key's, else
the default tenant). ``server.admin_auth`` authenticates every ``/admin`` request
before its body is read: the admin token, an admin API key (its own tenant only),
or, in loopback mode, this machine only.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile

from .admin_auth import admin_tenant
from .errors import ApiError

__all__ = ["router"]

router = APIRouter(prefix="/admin")

_CHUNK = 1024 * 1024


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
    tenant: str = Depends(admin_tenant),
    text_field: str | None = Form(default=None),
    title_field: str | None = Form(default=None),
):
    """Ingest uploaded files; like `lepton ingest`, bad files are reported and the rest ingest."""
    from retrieval import IngestConfig, RetrievalError, ingest_bytes

    settings = request.app.state.settings
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
                        tenant: str = Depends(admin_tenant)):
    """Remove every chunk of one source (an uploaded file name or an ingested path)."""
    from retrieval import RetrievalError

    store = knowledge(request)
    try:
        removed = await asyncio.to_thread(store.delete_source, collection, source, tenant)
    except RetrievalError as exc:
        raise _retrieval_error(exc) from None
    return {"collection": collection, "tenant": tenant, "source": source, "removed_chunks": removed}


@router.get("/collections")
async def list_collections(request: Request, tenant: str = Depends(admin_tenant)):
    store = knowledge(request)
    names = await asyncio.to_thread(store.list_collections, tenant)
    return {"tenant": tenant, "collections": [
        {"name": name, "chunks": store.count(name, tenant), "sources": store.sources(name, tenant)} for name in names]}


# -- data skills (assistant.tenant_skills; the CLI's `lepton skills create|delete`) --------------


def _data_skill_error(exc) -> ApiError:  # noqa: ANN001 - assistant.tenant_skills.DataSkillError
    status, code = {"missing": (404, "skill_not_found"), "exists": (409, "skill_exists")}.get(
        exc.kind, (400, "invalid_data_skill"))
    return ApiError(status, str(exc), param="name" if status != 400 else None, code=code)


@router.get("/skills")
async def list_data_skills(request: Request, tenant: str = Depends(admin_tenant)):
    """A tenant's data skills (the installed skills are in /v1/models)."""
    assistant = request.app.state.assistant
    records = await asyncio.to_thread(assistant.store.data_skills, tenant)
    return {"tenant": tenant, "skills": [{**r, "examples": len(r["examples"])} for r in records]}


@router.post("/skills")
async def create_data_skill(
    request: Request,
    name: str = Form(...),
    description: str = Form(...),
    examples: str = Form(..., description="Routing examples, one message per line (at least 5)."),
    prompt: str | None = Form(default=None),
    files: list[UploadFile] | None = File(default=None, description="Documents to answer from: md, txt, html, "
                                                                    "pdf, csv or jsonl"),
    tenant: str = Depends(admin_tenant),
):
    """Make a data skill for the tenant, as `lepton skills create` does; nothing is kept when it fails."""
    import tempfile
    from pathlib import Path

    from assistant.tenant_skills import DataSkillError, create_data_skill as create
    from skills import installed_names

    assistant = request.app.state.assistant
    settings = request.app.state.settings
    payloads = [(Path(f.filename or "upload").name or "upload", await _read_upload(f, settings.max_upload_bytes))
                for f in files or []]
    lines = [" ".join(line.split()) for line in examples.splitlines()]
    wanted = list(dict.fromkeys(line for line in lines if line and not line.startswith("#")))

    def run():  # noqa: ANN202
        with tempfile.TemporaryDirectory(prefix="lepton-skill-upload-") as folder:
            for filename, data in payloads:
                (Path(folder) / filename).write_bytes(data)
            return create(settings, assistant.store, tenant, name, description=description, examples=wanted,
                          prompt=prompt, knowledge=[Path(folder)] if payloads else [],
                          installed=installed_names(), base_dir=Path(folder),
                          knowledge_store=assistant.knowledge.store)

    try:
        created = await asyncio.to_thread(run)
    except DataSkillError as exc:
        raise _data_skill_error(exc) from None
    return {"tenant": tenant, "name": created.name, "examples": created.examples,
            "collection": created.collection, "chunks": created.chunks}


@router.delete("/skills/{name}")
async def delete_data_skill(request: Request, name: str, tenant: str = Depends(admin_tenant)):
    """Remove a tenant's data skill with its documents and adapters."""
    from assistant.tenant_skills import DataSkillError, delete_data_skill as delete

    assistant = request.app.state.assistant
    settings = request.app.state.settings
    try:
        deleted = await asyncio.to_thread(delete, settings, assistant.store, tenant, name,
                                          assistant.knowledge.store)
    except DataSkillError as exc:
        raise _data_skill_error(exc) from None
    return {"tenant": tenant, "name": name, "removed_chunks": deleted.chunks, "removed_adapters": deleted.adapters}
