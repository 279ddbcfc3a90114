-- Issue #8: the compliance workspace's redaction rules (PostgreSQL dialect; the SQLite file is the
-- same schema).
--
-- A rule set is the whole list of packs, stored as JSON text. Rules are configuration written by
-- compliance staff (patterns, keyword lists and their synthetic examples), never customer data:
-- the texts pasted into the test panel and the corpora uploaded for a dry run are processed in
-- memory and never stored.

-- Published rule sets. Immutable: a publish or a rollback adds a row; nothing updates or deletes
-- one. `version` is the counter every instance watches to pick up a new set without a restart.
create table rule_set_version (
    version          bigint  primary key,
    packs            text    not null,
    digest           text    not null,  -- hex SHA-256 of `packs`
    source           text    not null check (source in ('draft', 'rollback')),
    rule_draft_id    text,              -- the draft published (source = 'draft')
    restores         bigint ,           -- the version whose rules a rollback restores; 0 = the shipped packs
    published_by     text    not null,  -- 'user:<id>' or 'api_token:<id>'
    approved_by      text,              -- the second person, when the two-person rule applied
    published_at     text    not null
);

-- Work in progress on a rule set, made from the published set it is based on.
create table rule_draft (
    rule_draft_id      text    primary key,
    based_on           bigint  not null,  -- the published version it was made from; 0 = the shipped packs
    packs              text    not null,
    revision           bigint  not null default 1,  -- +1 on every change; an approval names the revision it saw
    status             text    not null check (status in ('draft', 'published', 'discarded')),
    created_by         text    not null,
    editors            text    not null,  -- JSON list of every principal that changed it
    approved_by        text,
    approved_revision  bigint ,
    created_at         text    not null,
    updated_at         text    not null,
    published_version  bigint 
);
create index rule_draft_by_status on rule_draft (status, created_at);

-- Rule hit counts per UTC day: how often each rule matched a stored message. Counted in memory
-- by each instance and added here every few seconds.
create table rule_hit (
    day      text    not null,  -- YYYY-MM-DD
    rule_id  text    not null,
    hits     bigint  not null,
    primary key (day, rule_id)
);
