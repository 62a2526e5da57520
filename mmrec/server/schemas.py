"""The HTTP API's JSON shapes, as pydantic models, so that ``/docs`` tells a client what it gets.

Routes return the Library's own ``to_dict()`` payloads (no second copy of the data per request);
these models describe them for OpenAPI, and the API tests validate every real response against
them, so the documentation cannot drift from what is served. ``extra="allow"`` lets the Library
add a field without breaking clients; a field these models name must be present with its type.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

JsonScalar = str | int | float | bool | None


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorDetail(BaseModel):
    type: str = Field(description="A stable machine-readable name, e.g. item_not_found, invalid_input.")
    message: str = Field(description="What went wrong and what to do about it; never a traceback.")
    field: str | None = Field(description="The request field at fault (query parameter, body path), if any.")


class ErrorBody(BaseModel):
    """Every error response has this one shape, whatever its status code."""

    error: ErrorDetail


class Health(BaseModel):
    status: str = Field(description="`ok` while the process answers.")
    ready: bool = Field(description="True once models, fusion, index and recommender are loaded.")
    error: str | None = Field(default=None, description="Why warm-up failed, when it did.")


class SearchMatch(_Open):
    """Why a text search returned an item: which side ranked it where, and the words it matched."""

    dense_rank: int | None = Field(description="1-based rank in the dense (embedding) ranking, if ranked.")
    lexical_rank: int | None = Field(description="1-based rank in the full-text (bm25) ranking, if ranked.")
    dense_score: float | None = Field(description="Cosine of query and item; the contributions sum to it.")
    lexical_score: float | None = Field(
        description="bm25 relevance (higher is better), if the words matched."
    )
    words: dict[str, list[str]] = Field(
        description="Stored words the query matched, per field: title, description, tags, transcript, vtags."
    )


class SearchHit(_Open):
    item_id: str
    path: str | None
    title: str
    kind: str
    score: float = Field(
        description="What the ranking used: the cosine (dense, similar items), bm25 relevance (lexical), "
        "or the reciprocal-rank-fusion sum (hybrid)."
    )
    contributions: dict[str, float] = Field(
        description="Per-modality parts of the dense cosine (they sum to it: `score` in dense mode and for "
        "similar items, `matched.dense_score` in text searches)."
    )
    attention: dict[str, float] = Field(description="The item's fusion weight per modality.")
    matched: SearchMatch | None = Field(
        default=None, description="Text searches only: which side found the item, and the words it matched."
    )


class SearchResponse(_Open):
    query: dict[str, JsonScalar]
    results: list[SearchHit]


class ItemSummary(_Open):
    item_id: str
    title: str
    kind: str
    duration_s: float | None
    path_name: str | None = Field(description="The file name only, never the full path.")
    has_thumbnail: bool


class ItemPage(_Open):
    items: list[ItemSummary]
    total: int
    offset: int
    limit: int


class ItemDetail(ItemSummary):
    description: str
    tags: list[str]
    width: int | None
    height: int | None
    status: str
    modalities: list[str]
    attention: dict[str, float]


class Reason(_Open):
    kind: str = Field(description="Which candidate source: content, collaborative, popular, explore, ...")
    detail: str
    weight: float


class Recommendation(_Open):
    item_key: int
    item_id: str
    score: float
    reasons: list[Reason]


class RecommendationList(_Open):
    user: str
    k: int
    diversity: float
    explore: float | None
    results: list[Recommendation]


class Interest(_Open):
    weight: float
    keywords: list[str]
    items: list[int] = Field(description="Catalog keys of the latest items behind this interest.")


class Negative(_Open):
    weight: float
    items: list[int]


class ProfileSummary(_Open):
    user_id: str
    interests: list[Interest]
    negatives: list[Negative]
    keywords: dict[str, float]
    modality_prefs: dict[str, float]
    seen: int
    disliked: list[int]
    description: str | None
    n_events: int
    updated: float | None


class RowError(_Open):
    line: int = Field(description="1-based index of the row in the posted list.")
    field: str
    reason: str


class IngestResult(_Open):
    kind: str
    added: int
    duplicates: int
    errors: list[RowError]
    users: list[str]
    profiles_updated: int


class DescriptionIn(BaseModel):
    """A user's free-text self-description: a standing interest, and the cold start for new users."""

    text: str = Field(min_length=1, max_length=10_000, examples=["I like wildlife films and jazz"])


class DescribeResult(_Open):
    user: str
    description: str
    dim: int


class RefitResult(_Open):
    """What `POST /api/refit` did: the collaborative model fitted again on every stored event."""

    library: str
    fitted: bool
    users: int
    items: int
    interactions: int = Field(description="Distinct user-item pairs with a positive event.")
    events: int
    pending_events: int = Field(description="Events folded in since this server's previous fit.")
    seconds: float
    version: str | None
    version_before: str | None
    refits_recorded: int


class ModelErasure(_Open):
    model: str
    method: str = Field(description="`sherman-morrison downdate`, `refit` or `none`.")
    held_user: bool
    version_before: str | None = Field(description="The model version that still held the user.")
    version_after: str | None
    note: str


class SqliteScrub(_Open):
    file: str
    secure_delete: bool
    vacuumed: bool
    wal_truncated: bool
    wal_bytes: int
    free_pages: int


class ErasureReceipt(_Open):
    """What `DELETE /api/users/{id}` removed, where, and when."""

    user_id: str
    library: str
    erased_at: float
    erased_at_iso: str
    removed: dict[str, int] = Field(
        description="Rows per kind: events, comments, comment_analyses, served, profiles, self_description."
    )
    total_rows: int
    popularity_items: int
    models: list[ModelErasure]
    sqlite: list[SqliteScrub]
    memory: list[str]
    not_on_disk: list[str]
    seconds: float


class UserExport(_Open):
    """Everything the library holds about one user."""

    user_id: str
    library: str
    exported_at: float
    exported_at_iso: str
    counts: dict[str, int]
    events: list[dict[str, JsonScalar]]
    comments: list[dict[str, object]]
    served: list[dict[str, JsonScalar]]
    profile: ProfileSummary | None
    description: str
