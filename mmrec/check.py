"""``mmrec check``: verify every part of a library folder against the others, and repair what is derived.

Source data is the catalog (items, slots, thumbnails are in it), the per-modality vector files and the
events; everything else is derived from them and can be rebuilt: the fused vectors (from the modality
vectors and the fusion), the FAISS index (from the fused vectors), the manifest (its copy in the
catalog), profiles (from the events) and thumbnails (from the media files). ``repair=True`` rebuilds
derived parts only and never deletes source data; what it cannot derive is named with the command
that fixes it. Each problem carries a stable ``code`` (tests and scripts match on it).

Checks run read-only. A repair takes the library's writer lock for each step (the steps are the
same atomic writers ``reindex`` and ``train-fusion`` use), then the whole check runs again, so the
report says what is left.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mmrec.errors import LibraryError, MmrecError
from mmrec.search import block_dims
from mmrec.store.library import CATALOG, MANIFEST, LibraryStore
from mmrec.store.records import FUSED
from mmrec.store.vectors import VectorFile

NORM_TOLERANCE = 1e-3  # every stored row is an L2-normalised float32 vector
SAMPLE = 64  # fused vectors re-computed / looked up in the index per check
MEDIA_KINDS = ("video", "audio", "image")

ThumbnailRepair = Callable[[LibraryStore], object]


@dataclass(frozen=True)
class CheckProblem:
    """One thing wrong: which part, which file, what, the command that fixes it, and whether
    ``--repair`` can (it derives the part again) or could (``repaired``)."""

    code: str
    part: str
    path: str
    message: str
    fix: str
    repairable: bool
    repaired: bool = False

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class CheckReport:
    """What ``mmrec check`` found: every part it verified and every problem, repaired or not."""

    library: str
    repair: bool
    checked: list[str] = field(default_factory=list)
    problems: list[CheckProblem] = field(default_factory=list)

    @property
    def remaining(self) -> list[CheckProblem]:
        """Problems still there (all of them without ``repair``)."""
        return [p for p in self.problems if not p.repaired]

    @property
    def ok(self) -> bool:
        return not self.remaining

    def codes(self) -> set[str]:
        return {p.code for p in self.problems}

    def to_dict(self) -> dict[str, object]:
        return {
            "library": self.library,
            "ok": self.ok,
            "repair": self.repair,
            "checked": list(self.checked),
            "problems": [p.to_dict() for p in self.problems],
        }


class _Findings:
    def __init__(self, library: Path) -> None:
        self.library = library
        self.checked: list[str] = []
        self.problems: list[CheckProblem] = []

    def add(self, code: str, part: str, path: Path | str, message: str, fix: str, repairable: bool) -> None:
        self.problems.append(CheckProblem(code, part, str(path), message, fix, repairable))

    def has(self, *codes: str) -> bool:
        return any(p.code in codes for p in self.problems)

    def cmd(self, text: str) -> str:
        return text.format(lib=self.library)


REPAIR = "mmrec check --library {lib} --repair"


# ====================================================================== entry point
def check_library(
    path: str | Path, repair: bool = False, thumbnails: ThumbnailRepair | None = None
) -> CheckReport:
    """Check the library at ``path``; with ``repair``, rebuild what is derived and check again.

    ``thumbnails`` draws missing thumbnails (the front layer passes the pipeline's backfill;
    without it missing thumbnails are reported, not repaired).
    """
    root = Path(path).expanduser().absolute()
    first = _run_checks(root)
    report = CheckReport(library=str(root), repair=repair, checked=first.checked)
    if not repair or not any(p.repairable for p in first.problems):
        report.problems = first.problems
        return report
    _repair(root, first, thumbnails)
    after = _run_checks(root)
    left = {(p.code, p.path) for p in after.problems}
    report.problems = [
        CheckProblem(**{**asdict(p), "repaired": (p.code, p.path) not in left}) for p in first.problems
    ]
    seen = {(p.code, p.path) for p in first.problems}
    report.problems += [p for p in after.problems if (p.code, p.path) not in seen]
    return report


def _run_checks(root: Path) -> _Findings:
    found = _Findings(root)
    if not _check_catalog(root, found):
        return found
    try:
        store = LibraryStore.open(root, create=False, damaged_ok=True)
    except MmrecError as exc:
        found.add("catalog-unusable", "catalog", root / CATALOG, str(exc), _RESTORE_CATALOG, False)
        return found
    try:
        manifest = _check_manifest(store, found)
        _check_vectors(store, manifest, found)
        _check_fusion(store, manifest, found)
        _check_index(store, found)
        _check_thumbnails(store, found)
        _check_lexical(store, found)
        _check_events(store, found)
    finally:
        store.close()
    return found


_RESTORE_CATALOG = (
    "restore catalog.sqlite from a backup; it is the source of the library's records and cannot be "
    "derived (re-encoding the media into a new library, `mmrec encode DIR --library NEW`, rebuilds one)"
)


# ====================================================================== catalog
def _check_catalog(root: Path, found: _Findings) -> bool:
    db = root / CATALOG
    found.checked.append("catalog")
    if not db.is_file():
        found.add("catalog-missing", "catalog", db, "missing", _RESTORE_CATALOG, False)
        return False
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30.0)
        try:
            rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        found.add(
            "catalog-corrupt",
            "catalog",
            db,
            f"not a readable SQLite database ({exc})",
            _RESTORE_CATALOG,
            False,
        )
        return False
    if rows != ["ok"]:
        found.add(
            "catalog-corrupt",
            "catalog",
            db,
            "integrity_check: " + "; ".join(rows[:5]),
            _RESTORE_CATALOG,
            False,
        )
        return False
    if not {"meta", "items", "slots"} <= tables:
        found.add(
            "catalog-corrupt", "catalog", db, "not an mmrec catalog (tables missing)", _RESTORE_CATALOG, False
        )
        return False
    return True


# ====================================================================== manifest
def _check_manifest(store: LibraryStore, found: _Findings) -> dict:
    """The manifest (or its catalog copy when the file is gone, so the other checks still run)."""
    path = store.path / MANIFEST
    found.checked.append("manifest")
    copy = store.manifest_copy()
    fix_copy = found.cmd(REPAIR) + " (restores it from the catalog's copy)"
    fix_none = (
        found.cmd(REPAIR) + " --models PROFILE (rebuilds it from the models the library was encoded with)"
    )
    try:
        manifest = store.manifest()
    except LibraryError as exc:
        code = "manifest-missing" if not path.exists() else "manifest-corrupt"
        found.add(code, "manifest", path, exc.reason.split(";")[0], fix_copy if copy else fix_none, True)
        return copy or {}
    models = manifest.get("models") or {}
    if not models and store.count_items(status=None):
        found.add(
            "manifest-no-models",
            "manifest",
            path,
            "records no models although the library holds items (the model guard is off)",
            fix_copy if copy and copy.get("models") else fix_none,
            True,
        )
    version = _catalog_fusion(store)
    named = manifest.get("fusion_version")
    if version is not None and named != version:
        found.add(
            "manifest-fusion-mismatch",
            "manifest",
            path,
            f"names fusion {named!r} but the catalog's items were fused with {version!r}",
            found.cmd(REPAIR),
            True,
        )
    return manifest


def _catalog_fusion(store: LibraryStore) -> str | None:
    from mmrec.store import catalog as cat
    from mmrec.store.library import META_FUSION

    return cat.get_meta(store._db, META_FUSION)


def _model_dims(manifest: dict) -> dict[str, int]:
    return block_dims(manifest.get("models") or {})


# ====================================================================== vector files
def _check_vectors(store: LibraryStore, manifest: dict, found: _Findings) -> None:
    conn = store._db
    slot_modalities = [r[0] for r in conn.execute("SELECT DISTINCT modality FROM slots")]
    files = sorted({p.stem for p in store.vectors_dir.glob("*.json")} | set(slot_modalities))
    expected = _model_dims(manifest)
    for m in files:
        found.checked.append(f"vectors/{m}")
        fused = m == FUSED
        fix = (
            found.cmd(REPAIR) + " (re-fuses every item from its modality vectors)"
            if fused
            else (
                found.cmd(REPAIR)
                + " (marks the items for re-encoding), then `mmrec encode DIR --library {lib}`"
            ).format(lib=found.library)
        )
        meta = store.vectors_dir / f"{m}.json"
        try:
            vf = VectorFile.open(store.vectors_dir, m)
        except LibraryError as exc:
            found.add("vectors-meta-corrupt", "vectors", meta, exc.reason, fix, True)
            continue
        if vf is None:
            found.add(
                "vectors-meta-missing",
                "vectors",
                meta,
                "missing (the file's dimension is unknown)",
                fix,
                True,
            )
            continue
        if m in expected and vf.dim != expected[m]:
            found.add(
                "vectors-dim-mismatch",
                "vectors",
                meta,
                f"dimension {vf.dim} but the manifest's model gives {expected[m]}",
                "encode into a new library with the right models",
                False,
            )
            continue
        slots = conn.execute(
            "SELECT key, row_start, n_rows FROM slots WHERE modality=? ORDER BY row_start", (m,)
        ).fetchall()
        need = max((s + n for _, s, n in slots), default=0)
        have = vf.n_rows() if vf.path.exists() else -1
        if have < 0:
            found.add(
                "vectors-missing",
                "vectors",
                vf.path,
                f"missing; the catalog assigns {need} rows in it",
                fix,
                True,
            )
            continue
        if have < need:
            found.add(
                "vectors-truncated",
                "vectors",
                vf.path,
                f"holds {have} rows but the catalog assigns rows up to {need}",
                fix,
                True,
            )
        bad = _bad_rows(vf, [(k, s, n) for k, s, n in slots if s + n <= have])
        bad.update(k for k, s, n in slots if s + n > have)
        if bad:
            found.add(
                "vectors-damaged",
                "vectors",
                vf.path,
                f"{len(bad)} items' rows are not finite unit vectors (e.g. key {min(bad)})",
                fix,
                True,
            )


def _bad_rows(vf: VectorFile, slots: list[tuple[int, int, int]], batch: int = 16384) -> set[int]:
    """Keys whose rows are not finite unit vectors (every stored row is L2-normalised)."""
    bad: set[int] = set()
    for i in range(0, len(slots), batch):
        part = slots[i : i + batch]
        rows = np.concatenate([np.arange(s, s + n, dtype=np.int64) for _, s, n in part])
        owners = np.concatenate([np.full(n, k, dtype=np.int64) for k, _, n in part])
        try:
            vecs = vf.stream(rows)
        except (LibraryError, OSError):
            bad.update(int(k) for k, _, _ in part)
            continue
        with np.errstate(all="ignore"):
            norms = np.linalg.norm(vecs.astype(np.float64), axis=1)
        wrong = ~np.isfinite(norms) | (np.abs(norms - 1.0) > NORM_TOLERANCE)
        bad.update(int(k) for k in np.unique(owners[wrong]))
    return bad


# ====================================================================== fusion
def _check_fusion(store: LibraryStore, manifest: dict, found: _Findings) -> None:
    from mmrec.fusion import DEFAULT_VERSION, Fusion
    from mmrec.fusion.library_training import fuse_keys, load_checkpoint

    found.checked.append("fusion")
    version = _catalog_fusion(store) or manifest.get("fusion_version") or DEFAULT_VERSION
    folder = store.path / "fusion"
    fusion: Fusion | None = None
    if version != DEFAULT_VERSION:
        path = folder / f"{version}.pt"
        fix = (
            found.cmd(REPAIR)
            + " (re-fuses every item with the default fusion), or `mmrec train-fusion` again"
        )
        try:
            fusion = load_checkpoint(path, version, device="cpu")
        except FileNotFoundError:
            found.add(
                "fusion-missing", "fusion", path, "missing: the library's items were fused with it", fix, True
            )
        except LibraryError as exc:
            found.add("fusion-corrupt", "fusion", path, exc.reason.split("; run")[0], fix, True)
    else:
        dims = _model_dims(manifest)
        fusion = Fusion(dims, device="cpu") if dims else None
    keep = f"{version}.pt"
    orphans = sorted(p.name for p in folder.glob("*.pt") if p.name != keep) if folder.is_dir() else []
    if orphans:
        found.add(
            "fusion-orphans",
            "fusion",
            folder,
            f"{len(orphans)} checkpoints the library does not use ({', '.join(orphans[:3])})",
            found.cmd(REPAIR) + " (removes them)",
            True,
        )
    others = store._db.execute(
        "SELECT COUNT(*) FROM items WHERE status='ok' AND COALESCE(fusion_version, '') != ?", (version,)
    ).fetchone()[0]
    if int(others):
        found.add(
            "fusion-mixed",
            "fusion",
            store.path / CATALOG,
            f"{others} items were fused with another fusion than {version!r}",
            found.cmd(REPAIR) + " (re-fuses them)",
            True,
        )
    if fusion is None or found.has(
        "vectors-missing", "vectors-truncated", "vectors-damaged", "vectors-meta-missing"
    ):
        return
    keys = [
        int(r[0]) for r in store._db.execute("SELECT key FROM slots WHERE modality=? ORDER BY key", (FUSED,))
    ]
    sample = keys[:: max(1, len(keys) // SAMPLE)][:SAMPLE]
    if not sample:
        return
    try:
        want, _ = fuse_keys(store, fusion, sample)
        have = store.fused(sample)
    except MmrecError:
        return  # a vector problem, already reported
    if want.shape != have.shape or not np.allclose(want, have, atol=1e-4):
        found.add(
            "fused-stale",
            "vectors",
            store.vectors_dir / f"{FUSED}.f32",
            f"stored fused vectors differ from what fusion {version!r} gives their modality vectors",
            found.cmd(REPAIR) + " (re-fuses every item)",
            True,
        )


# ====================================================================== index
def _check_index(store: LibraryStore, found: _Findings) -> None:
    from mmrec.index.library_index import INDEX_FOLDER, LibraryIndex, load_index
    from mmrec.index.vector_index import VectorIndexError

    found.checked.append("index")
    folder = store.path / INDEX_FOLDER
    fix = f"mmrec reindex --library {found.library}"
    keys = np.asarray(
        [
            int(r[0])
            for r in store._db.execute("SELECT key FROM slots WHERE modality=? ORDER BY key", (FUSED,))
        ],
        dtype=np.int64,
    )
    try:
        index = load_index(folder, verify="full")  # big-index: every checksum block (loads sample them)
    except VectorIndexError as exc:
        if len(keys):
            found.add("index-unreadable", "index", folder, str(exc).split(": ", 1)[-1][:300], fix, True)
        return
    if found.has("vectors-missing", "vectors-truncated", "vectors-meta-missing") or _fused_bad(found):
        return  # compared after the fused vectors are repaired
    lib_index = LibraryIndex(store, index, index.meta.get("factory_override"))
    try:
        lib_index.catch_up()  # in memory: an index that lags the catalog is normal, readers catch up
    except (MmrecError, VectorIndexError) as exc:
        found.add("index-stale", "index", folder, f"cannot catch up with the catalog ({exc})", fix, True)
        return
    ids = np.unique(np.asarray(index.ids(), dtype=np.int64))
    if len(index) != len(keys) or not np.array_equal(ids, keys):
        found.add(
            "index-mismatch",
            "index",
            folder,
            f"holds {len(index)} vectors, the catalog {len(keys)} items with a fused vector",
            fix,
            True,
        )
        return
    sample = keys[:: max(1, len(keys) // SAMPLE)][:SAMPLE]
    if not len(sample):
        return
    vecs = store.fused(sample)
    exact = "Flat" in index.factory and "IVF" not in index.factory and "PQ" not in index.factory
    tol = 1e-3 if exact else 0.05
    for key, vec in zip(sample, vecs, strict=True):
        scores, got = index.search(vec[None, :], 1, allowed=np.asarray([key]))
        if int(got[0, 0]) != int(key) or abs(float(scores[0, 0]) - float(vec @ vec)) > tol:
            found.add(
                "index-vectors",
                "index",
                folder,
                f"the index's vector for key {int(key)} differs from the stored fused vector",
                fix,
                True,
            )
            return


def _fused_bad(found: _Findings) -> bool:
    return any(p.part == "vectors" and p.path.endswith(f"{FUSED}.f32") for p in found.problems)


# ====================================================================== thumbnails
def _check_thumbnails(store: LibraryStore, found: _Findings) -> None:
    found.checked.append("thumbnails")
    have = store.thumbnail_keys()
    missing = 0
    for rec in store.items(status="ok"):
        if rec.kind not in MEDIA_KINDS or not rec.path or rec.key in have:
            continue
        warnings = " ".join(str(w) for w in (rec.metadata or {}).get("warnings", []))
        if "thumbnail" in warnings:
            continue  # the encode could not draw one and said so
        missing += 1
    if missing:
        found.add(
            "thumbnails-missing",
            "thumbnails",
            store.path / CATALOG,
            f"{missing} media items have no thumbnail",
            f"mmrec thumbnails --library {found.library}",
            True,
        )


# ====================================================================== full-text (lexical) index
def _check_lexical(store: LibraryStore, found: _Findings) -> None:
    """The FTS rows must be exactly the ok items' words (derived data: ``--repair`` rebuilds them)."""
    found.checked.append("lexical")
    diff = store.lexical_diff()
    fix = found.cmd(REPAIR) + " (rebuilds the full-text index from the catalog)"
    where = store.path / CATALOG
    if not diff.table_present:
        found.add(
            "lexical-missing",
            "lexical",
            where,
            "no full-text index (a library made before it): lexical search is unavailable and hybrid "
            "search uses the dense side only",
            fix,
            True,
        )
    elif diff.damaged:
        found.add(
            "lexical-damaged", "lexical", where, f"the full-text index is damaged ({diff.damaged})", fix, True
        )
    elif not diff.ok:
        parts = [
            f"{len(keys)} {what} (e.g. key {keys[0]})"
            for what, keys in (
                ("ok items without a row", diff.missing),
                ("rows of items that are gone or failed", diff.extra),
                ("rows whose words differ from the item's", diff.stale),
            )
            if keys
        ]
        found.add(
            "lexical-mismatch",
            "lexical",
            where,
            "full-text rows disagree with the catalog: " + "; ".join(parts),
            fix,
            True,
        )


# ====================================================================== events and profiles
def _check_events(store: LibraryStore, found: _Findings) -> None:
    from mmrec.events.store import FILENAME, EventStore
    from mmrec.profiles.model import UserProfile

    db = store.path / FILENAME
    if not db.exists():
        return
    found.checked.append("events")
    fix_db = "restore events.sqlite from a backup (events are source data)"
    damaged: list[str] = []
    ahead: list[str] = []
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30.0)  # a reader never writes
        try:
            rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if rows == ["ok"] and {"events", "comments", "profiles"} <= tables:
                counts = EventStore.counts_by_user(conn)  # events + comments, as profiles count them
                for user, blob in conn.execute("SELECT user_id, data FROM profiles"):
                    try:
                        prof = UserProfile.from_bytes(bytes(blob))
                    except Exception:  # any decoding failure of the blob means damage
                        damaged.append(str(user))
                        continue
                    # folded from rows that are not there: events lost, or a foreign profile (a profile
                    # folded from fewer rows, an ingest killed before its fold, is rebuilt on read)
                    if prof.n_events > int(counts.get(user, 0)):
                        ahead.append(str(user))
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        found.add("events-corrupt", "events", db, f"not a readable SQLite database ({exc})", fix_db, False)
        return
    if rows != ["ok"]:
        found.add("events-corrupt", "events", db, "integrity_check: " + "; ".join(rows[:5]), fix_db, False)
        return
    fix = found.cmd(REPAIR) + " (rebuilds them from the events)"
    if damaged:
        found.add(
            "profiles-damaged",
            "profiles",
            db,
            f"{len(damaged)} users' stored profiles cannot be read (e.g. {damaged[0]!r})",
            fix,
            True,
        )
    if ahead:
        found.add(
            "profiles-ahead",
            "profiles",
            db,
            f"{len(ahead)} users' profiles count more events than are stored (e.g. {ahead[0]!r})",
            fix,
            True,
        )


# ====================================================================== repair
def _repair(root: Path, found: _Findings, thumbnails: ThumbnailRepair | None) -> None:
    codes = {p.code for p in found.problems if p.repairable}
    store = LibraryStore.open(root, create=False, damaged_ok=True)
    try:
        if codes & {"manifest-missing", "manifest-corrupt", "manifest-no-models", "manifest-fusion-mismatch"}:
            _repair_manifest(store)
        if codes & {"vectors-meta-missing", "vectors-meta-corrupt"}:
            _repair_vector_meta(store)
        damaged = [p for p in found.problems if p.code.startswith("vectors-") and p.repairable]
        modality_damage = [
            p for p in damaged if not p.path.endswith(f"{FUSED}.f32") and not p.path.endswith(f"{FUSED}.json")
        ]
        if modality_damage:
            _repair_modalities(store, {Path(p.path).stem for p in modality_damage})
        if codes & {"fusion-missing", "fusion-corrupt", "fusion-mixed", "fused-stale"} or any(
            p not in modality_damage for p in damaged
        ):
            _refuse(store, default=bool(codes & {"fusion-missing", "fusion-corrupt"}))
        if "fusion-orphans" in codes:
            with store.writing():
                store.clean_fusion_folder()
        if (
            codes & {"index-unreadable", "index-mismatch", "index-vectors", "index-stale"}
            or damaged
            or (codes & {"fusion-missing", "fusion-corrupt", "fusion-mixed", "fused-stale"})
        ):
            from mmrec.index.library_index import LibraryIndex

            LibraryIndex.open(store).rebuild()
        if codes & {"lexical-missing", "lexical-damaged", "lexical-mismatch"}:
            store.rebuild_lexical()
        if codes & {"profiles-damaged", "profiles-ahead"}:
            _repair_profiles(store)
        if "thumbnails-missing" in codes and thumbnails is not None:
            thumbnails(store)
    finally:
        store.close()


def _repair_manifest(store: LibraryStore) -> None:
    import time

    from mmrec.store import catalog as cat

    copy = store.manifest_copy()
    try:
        current = store.manifest()
    except LibraryError:
        current = None
    data = dict(current or copy or {})
    if copy and not data.get("models"):
        data["models"] = copy.get("models") or {}
    if not data.get("models"):
        raise LibraryError(
            str(store.path / MANIFEST),
            "cannot be rebuilt: the catalog holds no copy (a library from before mmrec kept one); "
            "pass --models with the profile the library was encoded with",
        )
    data.setdefault("schema_version", cat.SCHEMA_VERSION)
    data.setdefault("created", time.time())
    version = _catalog_fusion(store)
    if version is not None:
        data["fusion_version"] = version
    with store.writing():
        store._write_manifest(data)


def restore_manifest_models(store: LibraryStore, described: dict[str, dict], profile: str) -> None:
    """Give a library without a manifest (and without the catalog's copy) one from a model profile,
    after checking its widths match the stored vector files (``mmrec check --repair --models``)."""
    import time

    from mmrec.store import catalog as cat

    dims = _model_dims({"models": described})
    for m, dim in dims.items():
        vf = VectorFile.open(store.vectors_dir, m) if (store.vectors_dir / f"{m}.json").exists() else None
        if vf is not None and vf.dim != dim:
            raise LibraryError(
                str(vf.path),
                f"dimension {vf.dim} does not match profile {profile!r} ({dim}); try another --models",
            )
    try:
        data = store.manifest()
    except LibraryError:
        data = {"schema_version": cat.SCHEMA_VERSION, "created": time.time()}
    data["models"] = {role: dict(info) for role, info in described.items() if info}
    data["models_profile"] = profile
    version = _catalog_fusion(store)
    if version is not None:
        data["fusion_version"] = version
    with store.writing():
        store._write_manifest(data)


def _repair_vector_meta(store: LibraryStore) -> None:
    manifest = store.manifest()
    dims = _model_dims(manifest)
    with store.writing():
        for f32 in store.vectors_dir.glob("*.f32"):
            m = f32.stem
            meta = store.vectors_dir / f"{m}.json"
            try:
                if VectorFile.open(store.vectors_dir, m) is not None:
                    continue
            except LibraryError:
                pass
            if m in dims:
                meta.unlink(missing_ok=True)
                VectorFile.create(store.vectors_dir, m, dims[m])
            elif m == FUSED:
                meta.unlink(missing_ok=True)  # re-fusing writes the fused file and its description anew


def _repair_modalities(store: LibraryStore, modalities: set[str]) -> None:
    """Modality rows are encoder output: pad a short file back to the catalog's length (so appends
    never reuse assigned rows) and mark the items whose rows are damaged for re-encoding."""
    conn = store._db
    keys: set[int] = set()
    with store.writing():
        for m in modalities:
            vf = VectorFile.open(store.vectors_dir, m)
            if vf is None:
                continue
            slots = conn.execute("SELECT key, row_start, n_rows FROM slots WHERE modality=?", (m,)).fetchall()
            need = max((s + n for _, s, n in slots), default=0)
            have = vf.n_rows()
            if have < need:
                with open(vf.path, "ab") as fh:
                    fh.truncate(have * vf.row_bytes)
                    fh.write(b"\0" * ((need - have) * vf.row_bytes))
                vf.drop_map()
            keys |= _bad_rows(vf, slots)
    store.mark_for_reencode(sorted(keys))  # takes the writer lock itself


def _refuse(store: LibraryStore, default: bool) -> None:
    from mmrec.fusion import Fusion
    from mmrec.fusion.library_training import load_checkpoint, publish_fusion

    manifest = store.manifest()
    version = _catalog_fusion(store) or manifest.get("fusion_version")
    fusion = None
    if version and version != "default" and not default:
        fusion = load_checkpoint(store.path / "fusion" / f"{version}.pt", version, device="cpu")
    if fusion is None:
        fusion = Fusion(_model_dims(manifest), device="cpu")
    publish_fusion(store, fusion, save_checkpoint=False)


def _repair_profiles(store: LibraryStore) -> None:
    """Rebuild the profiles that cannot be read or count more events than are stored. An unreadable
    blob is replaced (its self-description, if any, is lost with it: said in the report's message)."""
    from mmrec.events.store import EventStore
    from mmrec.profiles.build import rebuild_profile, resolve_config
    from mmrec.profiles.model import UserProfile
    from mmrec.profiles.store import ProfileStore
    from mmrec.profiles.update import ProfileConfig

    events = EventStore.open(store.path, create=False)
    try:
        config = resolve_config(store, ProfileConfig())
        redo = []
        for user in events.users():
            blob = events.get_profile_blob(user)
            if blob is None:
                continue
            try:
                prof = UserProfile.from_bytes(blob)
            except Exception:  # unreadable: start from an empty profile
                events.put_profile_blob(user, UserProfile(user_id=user).to_bytes(), 0.0)
                redo.append(user)
                continue
            if prof.n_events > events.count_for_user(user):
                redo.append(user)
        ProfileStore(events).put_many([rebuild_profile(u, events, store, config) for u in redo])
    finally:
        events.close()


def format_report(report: CheckReport) -> str:
    """Plain text for the CLI: one line per problem with its fix."""
    lines = [f"checked {', '.join(report.checked)}"]
    for p in report.problems:
        state = "repaired" if p.repaired else "PROBLEM"
        lines.append(f"{state} [{p.code}] {p.path}: {p.message}")
        if not p.repaired:
            lines.append(f"  fix: {p.fix}")
    lines.append("ok" if report.ok else f"{len(report.remaining)} problem(s) remain")
    return "\n".join(lines)


__all__ = ["CheckProblem", "CheckReport", "check_library", "format_report", "restore_manifest_models"]
