-- Issue #8 (PostgreSQL dialect; migrations/sqlite/ holds the same change for SQLite): audit
-- pruning leaves a signed checkpoint (src/audit/mod.rs, "Pruning"), so that the remaining chain
-- still verifies from where the pruned rows ended.

create table audit_checkpoint (
    checkpoint_id  bigint primary key check (checkpoint_id = 1),  -- one row: the latest checkpoint
    last_seq       bigint not null,  -- seq of the last pruned event; the trail resumes at last_seq + 1
    last_hash      bytea  not null,  -- that event's hash: the next row's prev_hash
    pruned         bigint not null,  -- events pruned in all, over every prune
    pruned_before  text   not null,  -- the latest prune's cut-off (events before it went)
    at             text   not null,  -- when the latest prune ran
    key_version    bigint not null,  -- audit key version of the mac
    mac            bytea  not null   -- HMAC-SHA256(audit key, canonical encoding of the above)
);

-- Reports group audit events by action and day (e.g. outbound.dlp_refused).
create index audit_event_by_action on audit_event (action, at);

-- Content-free record of messages held by quiet hours (the outbox clears its mark when it sends).
create table quiet_hold (
    hold_id     text primary key,
    message_id  text not null,  -- the held outbound message
    at          text not null,  -- when it was held
    held_until  text not null   -- when it may go
);
create index quiet_hold_by_at on quiet_hold (at);
