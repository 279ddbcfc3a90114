-- Issue #5 (SQLite dialect; migrations/postgres/ holds the same change for PostgreSQL): the audit
-- trail, an append-only, hash-chained log of who did what (src/audit). See the PostgreSQL file for
-- what each column is for.

create table audit_event (
    seq          integer primary key,  -- 1, 2, 3, … without gaps: a gap is a deleted row
    at           text    not null,
    actor_kind   text    not null check (actor_kind in ('system', 'user', 'api_token', 'cli')),
    actor_id     text    not null,
    action       text    not null,
    subjects     text    not null,
    details      text    not null,
    key_version  integer not null,
    prev_hash    blob    not null,
    hash         blob    not null
);

-- One row: the newest event's seq and hash. An append updates it as its first statement, which
-- makes the appending transaction SQLite's one writer before it reads anything.
create table audit_head (
    head_id    integer primary key check (head_id = 1),
    last_seq   integer not null,
    last_hash  blob    not null
);
insert into audit_head (head_id, last_seq, last_hash) values (1, 0, zeroblob(32));
