-- Issue #8 (SQLite dialect; migrations/postgres/ holds the same change for PostgreSQL): audit
-- pruning leaves a signed checkpoint. See the PostgreSQL file for what each column is for.

create table audit_checkpoint (
    checkpoint_id  integer primary key check (checkpoint_id = 1),
    last_seq       integer not null,
    last_hash      blob    not null,
    pruned         integer not null,
    pruned_before  text    not null,
    at             text    not null,
    key_version    integer not null,
    mac            blob    not null
);

-- Reports group audit events by action and day (e.g. outbound.dlp_refused).
create index audit_event_by_action on audit_event (action, at);

-- Content-free record of messages held by quiet hours (the outbox clears its mark when it sends).
create table quiet_hold (
    hold_id     text primary key,
    message_id  text not null,
    at          text not null,
    held_until  text not null
);
create index quiet_hold_by_at on quiet_hold (at);
