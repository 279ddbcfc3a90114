-- Issue #4 (SQLite dialect; migrations/postgres/ holds the same change for PostgreSQL): every
-- carrier in and out. See the PostgreSQL file for what each table is for.

-- An outbound message is stored when it is queued, before the carrier accepts it and names it.
-- SQLite cannot drop a NOT NULL constraint, so the table is rebuilt (nothing references it yet).
create table message_new (
    message_id          text    primary key,
    conversation_id     text    not null references conversation (conversation_id),
    direction           text    not null check (direction in ('inbound', 'outbound')),
    channel             text    not null check (channel in ('sms', 'mms', 'rcs')),
    carrier             text    not null,
    carrier_message_id  text,              -- null until the carrier accepts an outbound message
    body_sealed         blob    not null,
    media_sealed        blob,              -- media of messages stored before this migration
    media_count         integer not null default 0,
    findings            text    not null default '{}',
    status              text    not null check (status in ('received', 'queued', 'sent', 'delivered', 'undelivered', 'failed', 'read')),
    status_error_code   text,
    status_updated_at   text    not null,
    created_at          text    not null,
    unique (carrier, carrier_message_id)
);
insert into message_new select message_id, conversation_id, direction, channel, carrier, carrier_message_id,
    body_sealed, media_sealed, media_count, findings, status, status_error_code, status_updated_at, created_at
    from message;
drop table message;
alter table message_new rename to message;
create index message_by_conversation on message (conversation_id, created_at);
-- A reply goes on the channel of the customer's last message: one seek, however many replies the
-- conversation holds.
create index message_by_conversation_direction on message (conversation_id, direction, created_at);

create table message_media (
    message_id    text    not null references message (message_id),
    position      integer not null,
    content_type  text,
    size_bytes    integer,
    url_sealed    blob    not null,
    name_sealed   blob,
    primary key (message_id, position)
);

create table outbox (
    outbox_id           text    primary key,
    message_id          text    not null unique references message (message_id),
    kind                text    not null check (kind in ('reply', 'keyword_confirmation', 'secure_link', 'notification')),
    business_number     text    not null,
    contact_id          text    not null references contact (contact_id),
    carrier             text    not null,
    extras_sealed       blob,
    state               text    not null check (state in ('pending', 'in_flight', 'accepted', 'failed', 'unconfirmed')),
    uncertain           integer not null default 0,
    attempts            integer not null default 0,
    next_attempt_at     text    not null,
    claimed_by          text,
    claimed_until       text,
    attempt_started_at  text,
    carrier_message_id  text,
    error_class         text,
    error_code          text,
    created_at          text    not null,
    updated_at          text    not null,
    accepted_at         text
);
create index outbox_due on outbox (state, next_attempt_at);
create index outbox_by_carrier_id on outbox (carrier, carrier_message_id);
create index outbox_by_route on outbox (business_number, contact_id);

create table carrier_event (
    carrier_event_id  text primary key,
    carrier           text not null,
    event_key         text not null,
    kind              text not null check (kind in ('opt_out', 'opt_in')),
    contact_id        text not null references contact (contact_id),
    business_number   text not null,
    received_at       text not null,
    unique (carrier, event_key)
);

create table webhook_nonce (
    carrier        text not null,
    nonce_key      text not null,
    body_sha256    blob not null,
    first_seen_at  text not null,
    primary key (carrier, nonce_key)
);
