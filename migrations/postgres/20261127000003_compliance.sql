-- Issue #5 (PostgreSQL dialect; migrations/sqlite/ holds the same change): messaging compliance.

-- The consent ledger: append-only, one row per consent event of a contact towards one business
-- number. The current state is derived from it (the latest opt_in or opt_out). It outlives message
-- content: message_id is a plain reference, not a foreign key, so deleting or shredding messages
-- never touches consent. `keyword` is the keyword matched (`STOP`), the phrase rule's id, or the
-- carrier's error code: never the customer's text.
create table consent_event (
    consent_event_id  text primary key,  -- UUIDv7: time-ordered, the tie-breaker for equal times
    contact_id        text not null references contact (contact_id),
    business_number   text not null,
    kind              text not null check (kind in ('opt_in', 'opt_out', 'help', 'opt_out_request')),
    source            text not null check (source in ('keyword', 'free_text', 'carrier_report', 'agent', 'api', 'import')),
    keyword           text,
    message_id        text,
    actor             text,              -- who, for agent, API and import events
    at                text not null
);
-- The current state is the newest opt-in/opt-out, ordered by (at, consent_event_id): one index
-- per opt-out scope, each ending in both sort keys so the newest is read without sorting.
create index consent_event_by_number on consent_event (contact_id, business_number, at, consent_event_id);
create index consent_event_by_contact on consent_event (contact_id, at, consent_event_id);

-- The contact's time zone, when someone has recorded it (quiet hours use it before the area code).
alter table contact add column time_zone text;

-- When the contact last flooded a conversation (over the per-minute limit): shown to agents.
alter table conversation add column flooded_at text;

-- Quiet hours: a supervisor may release one held message (audited).
alter table outbox add column quiet_override bigint not null default 0;

-- API bearer tokens: only the SHA-256 of a token is kept; the token is shown once at creation.
create table api_token (
    api_token_id  text primary key,
    name          text  not null,
    role          text  not null check (role in ('agent', 'supervisor', 'compliance', 'admin')),
    token_sha256  bytea not null unique,
    created_at    text  not null,
    revoked_at    text
);
