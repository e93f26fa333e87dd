"""The catalog's one schema, as versioned migrations for its two engines: the node's own SQLite file
(:mod:`sessions.catalog_db`) and the fleet's shared PostgreSQL database (:mod:`sessions.catalog_pg`).

Both hold the same tables with the same columns — ``sessions`` keyed by (node_id, session_id),
``uploads``, ``scans``, ``nodes`` (the heartbeats) and ``schema_version`` — and an index for each
filter of ``GET /sessions`` (sessions.catalog_filters), so a page costs the same on either. Where the
engines differ the DDL differs: SQLite matches ``camera`` through a bit mask and ``q`` through an FTS5
trigram table; PostgreSQL through a ``text[]`` with a GIN index and ``pg_trgm``.

A migration is applied once, in order, each in its own transaction, and recorded in
``schema_version`` (version, applied_at). A store opened by a newer program (a version above
:data:`LATEST`) is not touched: the SQLite file is only a cache and is made again; PostgreSQL refuses
with :class:`SchemaTooNew`. Version 1 is the schema of issue 26 (the catalog before it kept a
``meta`` key instead, and its file is simply rebuilt).
"""

from __future__ import annotations

from dataclasses import dataclass


class SchemaTooNew(Exception):
    """The store's schema is newer than this program knows: another node runs a newer rigcapture."""


@dataclass(frozen=True)
class Migration:
    version: int
    what: str
    sqlite: str
    postgres: str


SCHEMA_VERSION_TABLE = {
    "sqlite": (
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
    ),
    "postgres": (
        "CREATE TABLE IF NOT EXISTS schema_version "
        "(version integer PRIMARY KEY, applied_at double precision NOT NULL)"
    ),
}

_SQLITE_V1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    node_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    folder TEXT NOT NULL,
    sort_key TEXT NOT NULL,
    status TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'recording',
    job_id TEXT,
    settled_at REAL,
    started_at REAL,
    finished_at REAL,
    cameras TEXT NOT NULL,
    camera_mask INTEGER NOT NULL DEFAULT 0,
    scan_id TEXT,
    pose_index INTEGER,
    pan_x100 INTEGER,
    tilt_x100 INTEGER,
    label TEXT,
    frame_count INTEGER,
    bytes INTEGER,
    format_version INTEGER,
    manifest_mtime_ns INTEGER,
    manifest_size INTEGER,
    indexed_at REAL NOT NULL,
    PRIMARY KEY (node_id, session_id)
);
CREATE INDEX IF NOT EXISTS sessions_sort ON sessions (sort_key, node_id);
CREATE INDEX IF NOT EXISTS sessions_scan ON sessions (scan_id, sort_key, node_id);
CREATE INDEX IF NOT EXISTS sessions_node ON sessions (node_id, sort_key);
-- Covering indexes: a filtered total counts index entries, never reads the wide rows.
CREATE INDEX IF NOT EXISTS sessions_by_time ON sessions
    (started_at, pan_x100, tilt_x100, camera_mask, status, kind, node_id, scan_id, session_id, label);
CREATE INDEX IF NOT EXISTS sessions_by_status ON sessions
    (status, sort_key, node_id, started_at, pan_x100, tilt_x100, camera_mask, kind, scan_id);
CREATE INDEX IF NOT EXISTS sessions_by_kind ON sessions
    (kind, sort_key, node_id, started_at, pan_x100, tilt_x100, camera_mask, status, scan_id);
CREATE INDEX IF NOT EXISTS sessions_by_pose ON sessions
    (pan_x100, tilt_x100, started_at, camera_mask, status, kind, node_id, scan_id);
-- ?q=: the session id and label, indexed by trigrams (a substring of 3 or more characters is an index
-- lookup); rowid = the session's rowid in sessions.
CREATE VIRTUAL TABLE IF NOT EXISTS sessions_text USING fts5 (text, tokenize = 'trigram');
CREATE TABLE IF NOT EXISTS camera_bits (camera_id TEXT PRIMARY KEY, bit INTEGER NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS scans (
    scan_id TEXT PRIMARY KEY,
    label TEXT,
    status TEXT,
    created_at REAL,
    finished_at REAL,
    poses INTEGER,
    path TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS uploads (
    node_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT,
    location TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (node_id, session_id)
);
CREATE TABLE IF NOT EXISTS nodes (
    node_id TEXT PRIMARY KEY,
    url TEXT,
    version TEXT,
    heartbeat_s REAL NOT NULL,
    started_at REAL,
    last_seen REAL NOT NULL,
    state TEXT NOT NULL
);
-- The outbox to the shared catalog (sessions.outbox): the sessions whose row changed since it was
-- last sent, each once; seq orders them and tells a change made while a batch was in flight.
CREATE TABLE IF NOT EXISTS outbox
    (session_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, queued_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_order ON outbox (seq);
"""

# The shared catalog holds every node's rows with their upload state inline (a node reads another's
# rows, never its upload queue). ``search`` is the lower-cased id and label ?q= looks in.
_POSTGRES_V1 = """
CREATE TABLE IF NOT EXISTS catalog_meta (key text PRIMARY KEY, value text NOT NULL);
INSERT INTO catalog_meta (key, value) VALUES ('catalog_id', md5(random()::text || clock_timestamp()::text))
    ON CONFLICT (key) DO NOTHING;
CREATE TABLE IF NOT EXISTS sessions (
    node_id text NOT NULL,
    session_id text NOT NULL,
    sort_key text COLLATE "C" NOT NULL,
    status text NOT NULL,
    kind text NOT NULL DEFAULT 'recording',
    job_id text,
    settled_at double precision,
    started_at double precision,
    finished_at double precision,
    cameras text[] NOT NULL DEFAULT '{}',
    scan_id text,
    pose_index integer,
    pan_x100 integer,
    tilt_x100 integer,
    label text,
    frame_count integer,
    bytes bigint,
    format_version integer,
    upload_state text,
    upload_detail jsonb,
    location text,
    search text NOT NULL,
    updated_at double precision NOT NULL,
    PRIMARY KEY (node_id, session_id)
);
CREATE INDEX IF NOT EXISTS sessions_sort ON sessions (sort_key DESC, node_id DESC);
CREATE INDEX IF NOT EXISTS sessions_node ON sessions (node_id, sort_key DESC);
CREATE INDEX IF NOT EXISTS sessions_status ON sessions (status, sort_key DESC, node_id DESC);
CREATE INDEX IF NOT EXISTS sessions_kind ON sessions (kind, sort_key DESC, node_id DESC);
CREATE INDEX IF NOT EXISTS sessions_scan ON sessions (scan_id, sort_key DESC, node_id DESC);
CREATE INDEX IF NOT EXISTS sessions_started ON sessions (started_at);
CREATE INDEX IF NOT EXISTS sessions_pose ON sessions (pan_x100, tilt_x100);
CREATE INDEX IF NOT EXISTS sessions_cameras ON sessions USING gin (cameras);
CREATE TABLE IF NOT EXISTS nodes (
    node_id text PRIMARY KEY,
    url text,
    version text,
    heartbeat_s double precision NOT NULL,
    started_at double precision,
    last_seen double precision NOT NULL,
    state jsonb NOT NULL
);
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "sessions, uploads, scans, nodes, outbox; an index per filter", _SQLITE_V1, _POSTGRES_V1),
)
LATEST = MIGRATIONS[-1].version

# ?q= on PostgreSQL: a trigram index (pg_trgm, shipped with PostgreSQL's contrib) makes a substring
# an index lookup. Made after the migrations, and only if the extension can be had: without it ?q=
# still works, row by row.
PG_TRIGRAM = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS sessions_search ON sessions USING gin (search gin_trgm_ops)",
)


def pending(applied: int) -> list[Migration]:
    """The migrations after version ``applied``, in order; SchemaTooNew past :data:`LATEST`."""
    if applied > LATEST:
        raise SchemaTooNew(f"the catalog's schema is version {applied}; this rigcapture knows up to {LATEST}")
    return [m for m in MIGRATIONS if m.version > applied]


__all__ = [
    "LATEST",
    "MIGRATIONS",
    "PG_TRIGRAM",
    "SCHEMA_VERSION_TABLE",
    "Migration",
    "SchemaTooNew",
    "pending",
]
