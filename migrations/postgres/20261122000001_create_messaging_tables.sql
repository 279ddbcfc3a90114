-- Foundation schema (PostgreSQL dialect). migrations/sqlite/ holds the same schema for SQLite;
-- change both together, and never edit a migration that has been applied anywhere.
--
-- Conventions: singular table names, `<table>_id` keys holding UUIDv7 text, timestamps as UTC
-- RFC 3339 text with microseconds (sortable as text; one representation for both backends through
-- sqlx's Any driver). No column holds a message body, phone number or matched value in clear:
-- `*_sealed` columns are AES-256-GCM ciphertext (see src/vault), `*_index` columns are keyed
-- HMAC-SHA256 blind indexes.

-- Proves at start-up that the configured master key is the one the data was written under.
create table keyring (
    purpose      text    not null,  -- 'master'
    key_version  bigint  not null,
    check_value  bytea    not null,  -- HMAC under a key derived from the master key; reveals nothing
    created_at   text    not null,
    primary key (purpose, key_version)
);

-- A person texting one of our numbers, known only by ciphertext and a blind index.
create table contact (
    contact_id        text primary key,
    phone_index       bytea not null unique,  -- HMAC-SHA256 of the E.164 number (look-ups)
    phone_sealed      bytea not null,         -- the E.164 number, sealed under the contact's data key
    data_key_wrapped  bytea not null,         -- the contact's data key, wrapped by the master key (KEK)
    created_at        text not null
);

-- The thread between a contact and one business number. At most one open at a time.
create table conversation (
    conversation_id  text primary key,
    contact_id       text not null references contact (contact_id),
    business_number  text not null,  -- ours, from configuration: not personal data
    status           text not null default 'open' check (status in ('open', 'closed')),
    created_at       text not null,
    last_message_at  text not null
);
create unique index conversation_one_open on conversation (contact_id, business_number) where status = 'open';

create table message (
    message_id          text    primary key,
    conversation_id     text    not null references conversation (conversation_id),
    direction           text    not null check (direction in ('inbound', 'outbound')),
    channel             text    not null check (channel in ('sms', 'mms', 'rcs')),
    carrier             text    not null,
    carrier_message_id  text    not null,  -- the carrier's id (Twilio MessageSid); retries dedupe on it
    body_sealed         bytea    not null,  -- the redacted body, sealed under the contact's data key
    media_sealed        bytea,              -- JSON list of {url, content_type}, sealed; null without media
    media_count         bigint  not null default 0,
    findings            text    not null default '{}',  -- {"CARD_NUMBER": 1}: types and counts, never values
    status              text    not null check (status in ('received', 'queued', 'sent', 'delivered', 'undelivered', 'failed', 'read')),
    status_error_code   text,              -- the carrier's error code with the latest status, if any
    status_updated_at   text    not null,
    created_at          text    not null,
    unique (carrier, carrier_message_id)
);
create index message_by_conversation on message (conversation_id, created_at);

-- Every status callback as received, matched to a message or not (a callback can arrive before the
-- send that caused it is recorded). Nothing a carrier acknowledged to us is dropped.
create table message_status_event (
    message_status_event_id  text primary key,
    carrier                  text not null,
    carrier_message_id       text not null,
    status                   text not null,  -- ours: queued, sent, delivered, undelivered, failed, read
    carrier_status           text not null,  -- the carrier's own word, e.g. Twilio's 'sending'
    error_code               text,
    received_at              text not null
);
create index message_status_event_by_message on message_status_event (carrier, carrier_message_id);
