-- Issue #5 (PostgreSQL dialect; migrations/sqlite/ holds the same change for SQLite): the audit
-- trail, an append-only, hash-chained log of who did what (src/audit).
--
-- Each row's `hash` is HMAC-SHA256 under the audit key (derived from the master key, never stored)
-- of the previous row's hash and this row's fields in the canonical encoding documented in
-- src/audit/mod.rs. Editing, deleting, inserting or reordering a row breaks the chain, and
-- `drawbridge audit verify` names the first bad row. No column holds a message body, phone number,
-- e-mail address or matched value: actors and subjects are our own ids, details are validated
-- short scalars (rule ids, keyword words, codes).

create table audit_event (
    seq          bigint primary key,  -- 1, 2, 3, … without gaps: a gap is a deleted row
    at           text   not null,     -- when, UTC RFC 3339 with microseconds
    actor_kind   text   not null check (actor_kind in ('system', 'user', 'api_token', 'cli')),
    actor_id     text   not null,     -- user id, API token id, operator name; '' for the system
    action       text   not null,     -- a dotted word, e.g. consent.opt_out
    subjects     text   not null,     -- JSON array of [kind, id] pairs, e.g. [["contact", "0192…"]]
    details      text   not null,     -- JSON object of short scalar values; never sensitive values
    key_version  bigint not null,     -- version of the audit key the hash was made with
    prev_hash    bytea  not null,     -- the previous row's hash (32 zero bytes before the first row)
    hash         bytea  not null      -- HMAC-SHA256(audit key, canonical encoding of this row)
);

-- One row: the newest event's seq and hash. An append updates it first, in the appending
-- transaction, which takes the row lock and so serializes appends from every instance; and
-- because it records how far the chain reaches, deleting the newest rows is detected too.
-- (Issue #8 adds pruning with a signed checkpoint; the chain's start lives beside it then.)
create table audit_head (
    head_id    bigint primary key check (head_id = 1),
    last_seq   bigint not null,  -- 0 while the trail is empty
    last_hash  bytea  not null   -- 32 zero bytes while the trail is empty
);
insert into audit_head (head_id, last_seq, last_hash) values (1, 0, decode(repeat('00', 32), 'hex'));
