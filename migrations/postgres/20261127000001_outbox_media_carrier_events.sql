-- Issue #4 (PostgreSQL dialect; migrations/sqlite/ holds the same change for SQLite): every carrier
-- in and out. Outbound messages exist before a carrier has given them an id; media get one row
-- each with their metadata in clear and their URL sealed; the outbox holds every message waiting
-- to be sent; carrier_event keeps consent changes carriers report.

-- An outbound message is stored when it is queued, before the carrier accepts it and names it.
alter table message alter column carrier_message_id drop not null;
-- message.media_sealed keeps the media of messages stored before this migration; newer messages
-- have their media in message_media.

-- A reply goes on the channel of the customer's last message: one seek, however many replies the
-- conversation holds.
create index message_by_conversation_direction on message (conversation_id, direction, created_at);

-- One row per file of an MMS/RCS message. Not downloaded: the carrier's URL is kept, sealed.
create table message_media (
    message_id    text   not null references message (message_id),
    position      bigint not null,  -- 0-based, in the carrier's order
    content_type  text,             -- e.g. image/jpeg, as the carrier reported it; not personal data
    size_bytes    bigint,           -- as the carrier reported it, when it did
    url_sealed    bytea  not null,  -- the carrier's URL for the file, sealed under the contact's data key
    name_sealed   bytea,            -- the file's name, when the carrier gave one, sealed
    primary key (message_id, position)
);

-- The durable send queue. A row is written in the same transaction as the event that caused it
-- (an agent's reply, a keyword confirmation, a secure link) and then claimed by a worker.
--
-- state: pending (waiting for next_attempt_at) → in_flight (a worker is calling the carrier;
-- marked and committed before the call) → accepted (the carrier took it: carrier_message_id set)
-- or failed (permanently, with error_class and error_code), or unconfirmed (an attempt's outcome
-- is unknown and the carrier offers no way to find out; never sent again automatically).
-- uncertain = 1 when an earlier attempt may have reached the carrier: it is resolved (idempotent
-- resend or lookup) before the row is sent again. claimed_by/claimed_until: the instance holding
-- the row and until when (renewed while it works); an expired claim is taken over.
create table outbox (
    outbox_id           text   primary key,  -- also our client reference and the RBM messageId
    message_id          text   not null unique references message (message_id),
    kind                text   not null check (kind in ('reply', 'keyword_confirmation', 'secure_link', 'notification')),
    business_number     text   not null,     -- the sender: the business number the customer texted
    contact_id          text   not null references contact (contact_id),
    carrier             text   not null,
    extras_sealed       bytea,               -- JSON {media_urls, suggestions}, sealed; null without
    state               text   not null check (state in ('pending', 'in_flight', 'accepted', 'failed', 'unconfirmed')),
    uncertain           bigint not null default 0,
    attempts            bigint not null default 0,
    next_attempt_at     text   not null,
    claimed_by          text,
    claimed_until       text,
    attempt_started_at  text,
    carrier_message_id  text,
    error_class         text,  -- opted_out, throttled, invalid_number, transient, permanent, exhausted, unconfirmed
    error_code          text,  -- the carrier's own code, when it gave one
    created_at          text   not null,
    updated_at          text   not null,
    accepted_at         text
);
create index outbox_due on outbox (state, next_attempt_at);
create index outbox_by_carrier_id on outbox (carrier, carrier_message_id);
create index outbox_by_route on outbox (business_number, contact_id);

-- Consent changes a carrier reported (RBM unsubscribe and resubscribe). Retries dedupe on the
-- carrier's event id. The consent ledger (issue #5) is built on these.
create table carrier_event (
    carrier_event_id  text primary key,
    carrier           text not null,
    event_key         text not null,  -- the carrier's id for the event
    kind              text not null check (kind in ('opt_out', 'opt_in')),
    contact_id        text not null references contact (contact_id),
    business_number   text not null,
    received_at       text not null,
    unique (carrier, event_key)
);

-- Nonces of webhooks whose signature does not cover the body (Plivo V2 signs the URL and a
-- nonce): a nonce seen with one body is refused with any other, so a captured signature cannot
-- carry forged content. A carrier's retry repeats the body and passes. Pruned after 7 days.
create table webhook_nonce (
    carrier        text  not null,
    nonce_key      text  not null,
    body_sha256    bytea not null,
    first_seen_at  text  not null,
    primary key (carrier, nonce_key)
);
