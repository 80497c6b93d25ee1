"""The demo help centre: WixQA articles as a ready-made knowledge base.

On a fresh install the default tenant has no knowledge at all, so the
customer-service skill could only decline. ``ensure_demo_help_centre`` fills the
tenant's ``help_centre`` collection once with the 173 WixQA help articles (one
document per article id, titled by the article's first line) shipped beside
this module; a collection that already exists is left alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .evaluate import load_wixqa
from .ingest import IngestConfig, IngestReport, ingest_documents
from .store import KnowledgeStore

__all__ = ["DEMO_COLLECTION", "WIXQA_SAMPLE", "demo_articles", "ensure_demo_help_centre", "ensure_collection"]

DEMO_COLLECTION = "help_centre"
WIXQA_SAMPLE = Path(__file__).parent / "data" / "wixqa" / "wixqa_public_rag_sample.jsonl"


def demo_articles(limit: int | None = None) -> list:
    """The WixQA articles as documents, in file order; ``limit`` keeps the first ones."""
    _, articles = load_wixqa(WIXQA_SAMPLE)
    docs = list(articles.values())
    return docs[:limit] if limit is not None else docs


def ensure_demo_help_centre(
    store: KnowledgeStore,
    tenant: str | None = None,
    *,
    collection: str = DEMO_COLLECTION,
    limit: int | None = None,
    progress: Callable[[str], None] | None = print,
) -> IngestReport | None:
    """Ingest the demo articles into ``collection`` unless it exists; None when it did."""
    return ensure_collection(store, tenant, collection, lambda: demo_articles(limit), progress=progress,
                             what="the demo help centre")


def ensure_collection(
    store: KnowledgeStore,
    tenant: str | None,
    collection: str,
    documents: Callable[[], list],
    *,
    progress: Callable[[str], None] | None = print,
    what: str | None = None,
) -> IngestReport | None:
    """Ingest ``documents()`` into ``collection`` unless it exists or there are none; None then."""
    if store.exists(collection, tenant):
        return None
    docs = documents()
    if not docs:
        return None
    what = what or f"demo documents for '{collection}'"
    if progress:
        progress(f"Loading {what}: {len(docs)} documents into '{collection}' of tenant "
                 f"'{store.tenant(tenant)}' (once; set LEPTON_DEMO_KNOWLEDGE=false to skip)...")
    report = ingest_documents(store, docs, collection, tenant, config=IngestConfig(progress=False))
    if progress:
        progress(f"Ready: {report.chunks} chunks in '{collection}' in {report.seconds:.1f} s.")
    return report
