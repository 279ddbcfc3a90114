-- Issue #5 (SQLite dialect; see the PostgreSQL file for what each change is for).

create table consent_event (
    consent_event_id  text primary key,
    contact_id        text not null references contact (contact_id),
    business_number   text not null,
    kind              text not null check (kind in ('opt_in', 'opt_out', 'help', 'opt_out_request')),
    source            text not null check (source in ('keyword', 'free_text', 'carrier_report', 'agent', 'api', 'import')),
    keyword           text,
    message_id        text,
    actor             text,
    at                text not null
);
-- The current state is the newest opt-in/opt-out, ordered by (at, consent_event_id): one index
-- per opt-out scope, each ending in both sort keys so the newest is read without sorting.
create index consent_event_by_number on consent_event (contact_id, business_number, at, consent_event_id);
create index consent_event_by_contact on consent_event (contact_id, at, consent_event_id);

alter table contact add column time_zone text;

alter table conversation add column flooded_at text;

alter table outbox add column quiet_override integer not null default 0;

create table api_token (
    api_token_id  text primary key,
    name          text not null,
    role          text not null check (role in ('agent', 'supervisor', 'compliance', 'admin')),
    token_sha256  blob not null unique,
    created_at    text not null,
    revoked_at    text
);
