"""The HTTP API over a real small library: every route's happy path with real results, every bad
input with its status code and JSON error body, media ranges and 304s, and live feedback."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from mmrec import Library
from mmrec.server import create_app, schemas


@pytest.fixture(scope="module")
def library(server_library_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    path = tmp_path_factory.mktemp("api") / "library"
    shutil.copytree(server_library_path, path)
    with Library(path, device="cpu", create=False) as lib:
        yield lib


@pytest.fixture(scope="module")
def client(library: Library) -> Iterator[TestClient]:
    with TestClient(create_app(library), raise_server_exceptions=False) as c:
        yield c


def valid(model: type[BaseModel], body: object) -> BaseModel:
    """The documented model (OpenAPI) must describe what is really served."""
    return model.model_validate(body)


def assert_error(response: object, status: int, field: str | None = None, type_: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    assert "traceback" not in response.text.lower()
    body = response.json()
    assert set(body) == {"error"}
    error = schemas.ErrorBody.model_validate(body).error
    assert error.message
    if field is not None:
        assert error.field == field, body
    if type_ is not None:
        assert error.type == type_, body
    return body["error"]


# ---------------------------------------------------------------------- health, page, docs
def test_health_reports_ready_after_warm_up(client: TestClient) -> None:
    health = valid(schemas.Health, client.get("/health").json())
    assert health.status == "ok"
    deadline = time.monotonic() + 180
    while not client.get("/health").json()["ready"]:
        assert time.monotonic() < deadline, "warm-up never finished"
        time.sleep(0.2)
    assert client.get("/health").json() == {"status": "ok", "ready": True, "error": None}


def test_page_and_openapi(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    spec = client.get("/openapi.json").json()
    paths = set(spec["paths"])
    assert {
        "/health",
        "/api/search",
        "/api/items",
        "/api/items/{item_id}",
        "/api/items/{item_id}/similar",
        "/api/items/{item_id}/thumbnail",
        "/api/items/{item_id}/media",
        "/api/similar",
        "/api/users/{user_id}/profile",
        "/api/users/{user_id}/recommendations",
        "/api/users/{user_id}/description",
        "/api/events",
        "/api/comments",
    } <= paths
    # Errors are documented with their one shape, not FastAPI's default validation body.
    search_422 = spec["paths"]["/api/search"]["get"]["responses"]["422"]
    assert search_422["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert client.get("/docs").status_code == 200


# ---------------------------------------------------------------------- search and items
def test_search_in_english_and_chinese(client: TestClient) -> None:
    r = client.get("/api/search", params={"q": "a fire truck", "k": 3})
    assert r.status_code == 200
    body = valid(schemas.SearchResponse, r.json())
    assert body.query["text"] == "a fire truck"
    top = body.results[0]
    assert top.item_id == "images/firetruck.png"
    assert top.score > body.results[1].score
    assert top.matched is not None and top.matched.dense_score is not None  # hybrid's score fuses ranks
    assert sum(top.contributions.values()) == pytest.approx(top.matched.dense_score, abs=1e-4)
    zh = client.get("/api/search", params={"q": "消防车", "k": 3}).json()
    assert zh["results"][0]["item_id"] == "images/firetruck.png"


def test_search_filters(client: TestClient) -> None:
    videos = client.get("/api/search", params={"q": "bicycles on a street", "kind": "video"}).json()
    assert [h["item_id"] for h in videos["results"]] == ["bikes.mp4"]
    food = client.get("/api/search", params={"q": "something to eat", "tag": "food"}).json()
    assert {h["item_id"] for h in food["results"]} == {"images/apple.png", "images/banana.png"}


def test_items_pages_and_detail(client: TestClient, library: Library, stamps: dict[str, str]) -> None:
    n_items = len(stamps) + 2  # stamps, a video, an audio file
    first = valid(schemas.ItemPage, client.get("/api/items", params={"limit": 4}).json())
    second = valid(schemas.ItemPage, client.get("/api/items", params={"limit": 4, "offset": 4}).json())
    assert first.total == second.total == n_items
    assert len(first.items) == 4 and first.offset == 0 and second.offset == 4
    assert not {i.item_id for i in first.items} & {i.item_id for i in second.items}
    everything = client.get("/api/items", params={"limit": 500}).json()["items"]
    assert len(everything) == n_items
    for item in everything:  # a file name, never a server path
        assert item["path_name"] is None or "/" not in item["path_name"]
    images = client.get("/api/items", params={"kind": "image"}).json()
    assert images["total"] == len(stamps)

    detail = valid(schemas.ItemDetail, client.get("/api/items/images/dog.png").json())
    assert detail.item_id == "images/dog.png" and detail.kind == "image"
    assert detail.path_name == "dog.png"
    assert "frames" in detail.modalities and detail.tags == ["animals"]
    assert sum(detail.attention.values()) == pytest.approx(1.0, abs=1e-3)
    assert str(library.path) not in json.dumps(detail.model_dump())


def test_similar_by_id_and_by_upload(client: TestClient, server_media: Path) -> None:
    r = client.get("/api/items/images/dog.png/similar", params={"k": 4})
    body = valid(schemas.SearchResponse, r.json())
    ids = [h.item_id for h in body.results]
    assert len(ids) == 4 and "images/dog.png" not in ids
    assert ids[0] == "images/elephant.png"

    banana = (server_media / "images" / "banana.png").read_bytes()
    up = client.post("/api/similar", files={"file": ("my banana.png", banana, "image/png")}, params={"k": 2})
    assert up.status_code == 200, up.text
    hits = valid(schemas.SearchResponse, up.json()).results
    assert hits[0].item_id == "images/banana.png" and hits[0].score > 0.5


# ---------------------------------------------------------------------- media
def test_media_full_range_and_304(client: TestClient, server_media: Path) -> None:
    original = (server_media / "bikes.mp4").read_bytes()
    full = client.get("/api/items/bikes.mp4/media")
    assert full.status_code == 200 and full.content == original
    assert full.headers["content-type"] == "video/mp4"
    assert full.headers["accept-ranges"] == "bytes"
    etag, modified = full.headers["etag"], full.headers["last-modified"]

    part = client.get("/api/items/bikes.mp4/media", headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.content == original[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(original)}"
    tail = client.get("/api/items/bikes.mp4/media", headers={"Range": "bytes=-500"})
    assert tail.status_code == 206 and tail.content == original[-500:]

    assert client.get("/api/items/bikes.mp4/media", headers={"If-None-Match": etag}).status_code == 304
    weak = client.get("/api/items/bikes.mp4/media", headers={"If-None-Match": f'"x", W/{etag}'})
    assert weak.status_code == 304 and weak.content == b""
    other = client.get("/api/items/bikes.mp4/media", headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200
    assert (
        client.get("/api/items/bikes.mp4/media", headers={"If-Modified-Since": modified}).status_code == 304
    )

    # A stale If-Range gets the whole (new) file, not a range of it.
    stale = client.get("/api/items/bikes.mp4/media", headers={"Range": "bytes=0-9", "If-Range": '"old"'})
    assert stale.status_code == 200 and len(stale.content) == len(original)

    out = client.get("/api/items/bikes.mp4/media", headers={"Range": f"bytes={len(original) + 10}-"})
    assert_error(out, 416, field="Range")
    assert out.headers["content-range"] == f"bytes */{len(original)}"
    assert_error(client.get("/api/items/bikes.mp4/media", headers={"Range": "pages=1-2"}), 400, field="Range")

    head = client.head("/api/items/images/dog.png/media")
    assert head.status_code == 200 and int(head.headers["content-length"]) > 0 and head.content == b""


def test_thumbnail_with_etag(client: TestClient, library: Library) -> None:
    r = client.get("/api/items/images/dog.png/thumbnail")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("image/") and len(r.content) > 100
    again = client.get("/api/items/images/dog.png/thumbnail", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    video = client.get("/api/items/bikes.mp4/thumbnail")
    assert video.status_code == 200 and video.headers["content-type"].startswith("image/")


# ---------------------------------------------------------------------- users and feedback
def test_events_change_the_next_recommendations(client: TestClient, library: Library) -> None:
    assert_error(client.get("/api/users/alice/recommendations"), 404, field="user_id", type_="unknown_user")
    r = client.post("/api/events", json=[{"user_id": "alice", "item_id": "images/dog.png", "event": "like"}])
    result = valid(schemas.IngestResult, r.json())
    assert r.status_code == 200 and result.added == 1 and result.errors == [] and result.users == ["alice"]

    recs = valid(schemas.RecommendationList, client.get("/api/users/alice/recommendations?k=4").json())
    ids = [x.item_id for x in recs.results]
    assert recs.user == "alice" and len(ids) == 4
    assert "images/dog.png" not in ids  # liked: not recommended again
    assert ids[0] == "images/elephant.png"  # the liked item's nearest neighbour
    assert all(x.reasons for x in recs.results)

    # The next event moves the very next call: liking vehicles brings the other vehicle up.
    before = ids.index("images/double_decker_bus.png") if "images/double_decker_bus.png" in ids else 99
    client.post(
        "/api/events",
        json=[
            {"user_id": "alice", "item_id": "images/firetruck.png", "event": "like"},
            {"user_id": "alice", "item_id": "images/elephant.png", "event": "dislike"},
        ],
    )
    after = [x["item_id"] for x in client.get("/api/users/alice/recommendations?k=4").json()["results"]]
    assert "images/firetruck.png" not in after and "images/elephant.png" not in after
    assert after.index("images/double_decker_bus.png") < before

    prof = valid(schemas.ProfileSummary, client.get("/api/users/alice/profile").json())
    assert prof.user_id == "alice" and prof.n_events == 3 and prof.interests


def test_description_is_a_cold_start(client: TestClient) -> None:
    assert_error(client.get("/api/users/bob/profile"), 404, field="user_id")
    r = client.put("/api/users/bob/description", json={"text": "I love fire engines and big red buses"})
    assert r.status_code == 200, r.text
    body = valid(schemas.DescribeResult, r.json())
    assert body.user == "bob" and body.dim > 0
    recs = client.get("/api/users/bob/recommendations", params={"k": 2}).json()["results"]
    assert {x["item_id"] for x in recs} == {"images/firetruck.png", "images/double_decker_bus.png"}


def test_comments_and_row_errors(client: TestClient) -> None:
    r = client.post(
        "/api/comments",
        json=[
            {"user_id": "carol", "item_id": "images/banana.png", "text": "太好吃了, lovely banana"},
            {"user_id": "carol", "item_id": "images/apple.png", "text": ""},
        ],
    )
    body = valid(schemas.IngestResult, r.json())
    assert r.status_code == 200 and body.kind == "comments" and body.added == 1
    assert [(e.line, e.field) for e in body.errors] == [(2, "text")]

    bad = client.post(
        "/api/events",
        json=[
            {"user_id": "dave", "item_id": "images/apple.png", "event": "like"},
            {"user_id": "dave", "item_id": "images/apple.png", "event": "frobnicate"},
            {"item_id": "images/apple.png", "event": "like"},
        ],
    ).json()
    assert bad["added"] == 1
    assert [(e["line"], e["field"]) for e in bad["errors"]] == [(2, "event"), (3, "user_id")]


def test_served_items_are_recorded_unless_switched_off(library: Library) -> None:
    from mmrec.events import EventStore

    library.add_events([{"user_id": "erin", "item_id": "images/apple.png", "event": "like"}])
    with TestClient(create_app(library, record_served=False)) as off:
        shown = [x["item_id"] for x in off.get("/api/users/erin/recommendations?k=3").json()["results"]]
    with EventStore.open(library.path) as events:
        assert events.served("erin") == {}
    with TestClient(create_app(library)) as on:
        shown = [x["item_id"] for x in on.get("/api/users/erin/recommendations?k=3").json()["results"]]
    with EventStore.open(library.path) as events:
        assert set(events.served("erin")) == set(shown)


# ---------------------------------------------------------------------- bad input
TRAVERSAL = ["..%2F..%2Fetc%2Fpasswd", "../../etc/passwd", "%2Fetc%2Fpasswd", "images/..%2F..%2Fdog.png"]


@pytest.mark.parametrize("item_id", TRAVERSAL)
@pytest.mark.parametrize("suffix", ["", "/similar", "/media", "/thumbnail"])
def test_path_like_ids_are_unknown_items(client: TestClient, item_id: str, suffix: str) -> None:
    r = client.get(f"/api/items/{item_id}{suffix}")
    assert_error(r, 404)
    assert "root:" not in r.text


def test_a_library_file_path_is_not_an_id(client: TestClient, server_media: Path, library: Library) -> None:
    stored = library.media_path("images/dog.png")
    for suffix in ("/similar", "/media", ""):
        assert_error(client.get(f"/api/items/{stored}{suffix}"), 404, field="item_id")
    assert_error(client.get(f"/api/items/{server_media / 'bikes.mp4'}/similar"), 404)


BAD_REQUESTS = [
    ("GET", "/api/search", {}, 422, "q"),
    ("GET", "/api/search?q=%20%20", {}, 422, "q"),
    ("GET", "/api/search?q=dog&k=0", {}, 422, "k"),
    ("GET", "/api/search?q=dog&k=abc", {}, 422, "k"),
    ("GET", "/api/search?q=dog&k=100000", {}, 422, "k"),
    ("GET", "/api/search?q=dog&kind=podcast", {}, 422, "kind"),
    ("GET", "/api/search?q=dog&min_duration=-1", {}, 422, "min_duration"),
    ("GET", "/api/items?limit=0", {}, 422, "limit"),
    ("GET", "/api/items?offset=-3", {}, 422, "offset"),
    ("GET", "/api/items/no/such/item.mp4", {}, 404, "item_id"),
    ("GET", "/api/items/no/such/item.mp4/similar", {}, 404, "item_id"),
    ("GET", "/api/items/no/such/item.mp4/media", {}, 404, "item_id"),
    ("GET", "/api/items/images/dog.png/similar?k=-1", {}, 422, "k"),
    ("GET", "/api/users/nobody/profile", {}, 404, "user_id"),
    ("GET", "/api/users/nobody/recommendations", {}, 404, "user_id"),
    ("GET", "/api/users/alice/recommendations?diversity=2", {}, 422, "diversity"),
    ("GET", "/api/users/alice/recommendations?explore=-0.5", {}, 422, "explore"),
    ("PUT", "/api/users/bob/description", {"json": {"text": ""}}, 422, "body.text"),
    ("PUT", "/api/users/bob/description", {"json": {"text": "   "}}, 422, "text"),
    ("PUT", "/api/users/bob/description", {"json": {"words": "hi"}}, 422, "body.text"),
    ("POST", "/api/events", {"json": {"user_id": "u"}}, 422, "body"),
    ("POST", "/api/events", {"json": [1, 2]}, 422, "body[0]"),
    ("POST", "/api/events", {"json": [{"user_id": ["nested"]}]}, 422, None),
    (
        "POST",
        "/api/events",
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        422,
        None,
    ),
    ("POST", "/api/comments", {"json": "text"}, 422, "body"),
    ("POST", "/api/similar", {}, 422, "body.file"),
    ("POST", "/api/similar", {"files": {"file": ("x.png", b"", "image/png")}}, 422, "file"),
    ("POST", "/api/similar", {"files": {"file": ("x.mp4", b"\x00garbage" * 200, "video/mp4")}}, 422, "file"),
    ("DELETE", "/api/search", {}, 405, None),
    ("POST", "/api/items/images/dog.png", {}, 405, None),
    ("GET", "/api/events", {}, 405, None),
    ("GET", "/api/nothing-here", {}, 404, None),
    ("GET", "/nothing-here", {}, 404, None),
    ("GET", "/static/..%2F..%2F..%2Fetc%2Fpasswd", {}, 404, None),
]


@pytest.mark.parametrize(("method", "url", "kwargs", "status", "field"), BAD_REQUESTS)
def test_bad_requests_get_one_json_error(
    client: TestClient, method: str, url: str, kwargs: dict, status: int, field: str | None
) -> None:
    assert_error(client.request(method, url, **kwargs), status, field=field)


def test_body_limit_by_header_and_while_reading(library: Library, server_media: Path) -> None:
    banana = (server_media / "images" / "banana.png").read_bytes()
    limit = 1000
    assert len(banana) > 2 * limit
    with TestClient(create_app(library, max_upload_bytes=limit), raise_server_exceptions=False) as small:
        declared = small.post("/api/similar", files={"file": ("b.png", banana, "image/png")})
        assert_error(declared, 413, field="body", type_="payload_too_large")
        rows = json.dumps([{"user_id": "u", "item_id": "images/dog.png", "event": "view"}] * 40).encode()

        def chunks() -> Iterator[bytes]:  # no Content-Length: the server must count
            for i in range(0, len(rows), 100):
                yield rows[i : i + 100]

        streamed = small.post("/api/events", content=chunks(), headers={"content-type": "application/json"})
        assert_error(streamed, 413, field="body")
        ok = small.post("/api/events", json=[{"user_id": "u", "item_id": "images/dog.png", "event": "view"}])
        assert ok.status_code == 200


def test_api_key_guards_writes_only(library: Library) -> None:
    event = [{"user_id": "keyed", "item_id": "images/dog.png", "event": "view", "timestamp": 1.7e9}]
    with TestClient(create_app(library, api_key="s3cret"), raise_server_exceptions=False) as keyed:
        assert_error(keyed.post("/api/events", json=event), 401, field="Authorization")
        wrong = keyed.post("/api/events", json=event, headers={"Authorization": "Bearer nope"})
        assert_error(wrong, 401)
        assert wrong.headers["www-authenticate"] == "Bearer"
        assert_error(keyed.put("/api/users/keyed/description", json={"text": "cats"}), 401)
        bearer = keyed.post("/api/events", json=event, headers={"Authorization": "Bearer s3cret"})
        assert bearer.status_code == 200 and bearer.json()["added"] == 1
        header = keyed.post("/api/events", json=event, headers={"X-API-Key": "s3cret"})
        assert header.status_code == 200 and header.json()["duplicates"] == 1
        assert keyed.get("/api/search", params={"q": "dog"}).status_code == 200  # reads stay open


def test_cors_is_off_unless_origins_are_given(library: Library, client: TestClient) -> None:
    origin = {"Origin": "http://example.org"}
    assert "access-control-allow-origin" not in client.get("/api/items", headers=origin).headers
    with TestClient(create_app(library, cors_origins=["http://example.org"])) as cors:
        r = cors.get("/api/items", headers=origin)
        assert r.headers["access-control-allow-origin"] == "http://example.org"
        other = cors.get("/api/items", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers


class _Broken(Library):
    """A Library whose listing fails in an unexpected way, as a bug deep inside would."""

    def items(self, *args: object, **kwargs: object) -> object:
        raise RuntimeError("internal detail: /secret/path/catalog.sqlite is locked")


def test_unexpected_errors_are_500_without_details(
    server_library_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lib = _Broken(server_library_path, device="cpu", create=False)
    with caplog.at_level(logging.ERROR, logger="mmrec.server"), TestClient(create_app(lib)) as broken:
        r = broken.get("/api/items")
    lib.close()
    error = assert_error(r, 500, type_="internal_error")
    assert "secret" not in r.text and "RuntimeError" not in r.text
    assert "internal error" in error["message"]
    # The server log keeps the details, traceback included.
    logged = [rec for rec in caplog.records if rec.exc_info and "/api/items" in rec.getMessage()]
    assert logged and "secret" in str(logged[0].exc_info[1])
