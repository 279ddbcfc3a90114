-- Issue #8, keys (PostgreSQL dialect; migrations/sqlite/ holds the same for SQLite).
--
-- Master key rotation. A keyring row per master key version ('master', N):
--   purpose_keys_wrapped  the database's purpose keys (blind indexes, audit chain, staff seal,
--                         session, secure link) wrapped under version N's KEK, so that they survive
--                         the retirement of the master key they were first derived from;
--   retired_at            set by `drawbridge keys rotate` once no data key is wrapped under
--                         version N any more: the service no longer needs that key.
alter table keyring add column purpose_keys_wrapped bytea;
alter table keyring add column retired_at text;

-- Long-running key jobs, resumable: `rotate` re-wraps every contact's data key under master key
-- version `target_version`. `cursor` is the last contact_id a committed batch reached; running the
-- job again continues after it. `done` counts the keys re-wrapped so far.
create table key_job (
    job             text    not null check (job in ('rotate')),
    target_version  bigint  not null,
    started_at      text    not null,
    cursor          text    not null default '',
    done            bigint  not null default 0,
    finished_at     text,
    primary key (job, target_version)
);
