-- Issue #6 (PostgreSQL dialect; migrations/sqlite/ holds the same change): the agent console —
-- staff users and their sessions, assignment, read markers, internal notes, canned replies,
-- secure links and secure-channel messages. Staff e-mail addresses are kept as the contacts'
-- phone numbers are: sealed (under the vault's staff key) with a keyed blind index for look-ups.

create table app_user (
    user_id               text primary key,
    email_index           bytea   not null unique,  -- HMAC of the lower-cased address
    email_sealed          bytea   not null,         -- the address, sealed under the staff key
    role                  text    not null check (role in ('agent', 'supervisor', 'compliance', 'admin')),
    password_hash         text,                     -- argon2id PHC string; null: single sign-on only
    must_change_password  bigint  not null default 0,
    totp_secret_sealed    bytea,                    -- the enrolled one-time-code secret, sealed
    totp_required         bigint  not null default 0,
    totp_last_step        bigint,                   -- the last accepted time step: a code works once
    oidc_subject_index    bytea   unique,           -- HMAC of (issuer, subject) once linked
    disabled_at           text,
    created_at            text    not null,
    updated_at            text    not null
);

-- A signed-in browser. Only the token's SHA-256 is stored. `stage` is how far sign-in has got:
-- only 'signed_in' reaches the console; the others reach only the page that completes them.
create table user_session (
    user_session_id  text primary key,
    token_sha256     bytea not null unique,
    user_id          text  not null references app_user (user_id),
    stage            text  not null check (stage in ('signed_in', 'second_factor', 'change_password', 'enroll_totp')),
    method           text  not null check (method in ('password', 'oidc')),
    created_at       text  not null,
    last_seen_at     text  not null,
    expires_at       text  not null  -- the absolute timeout; the idle timeout runs from last_seen_at
);
create index user_session_by_user on user_session (user_id);

alter table conversation add column assigned_user_id text references app_user (user_id);
-- When the redaction engine (or an agent) decided the conversation should move to the secure link.
alter table conversation add column escalated_at text;
alter table conversation add column closed_at text;
-- Any change an open console should show (new message, assignment, status): the live-update feed
-- reads conversations and messages changed since its last look.
alter table conversation add column updated_at text;
update conversation set updated_at = last_message_at;
create index conversation_by_activity on conversation (status, last_message_at);
create index conversation_by_update on conversation (updated_at);
create index message_by_status_update on message (status_updated_at);

-- Up to when each user has read each conversation: unread counts.
create table conversation_read (
    conversation_id  text not null references conversation (conversation_id),
    user_id          text not null references app_user (user_id),
    read_at          text not null,
    primary key (conversation_id, user_id)
);

-- Internal notes between staff, sealed under the contact's data key (erasing the contact
-- shreds them with the messages).
create table note (
    note_id          text  primary key,
    conversation_id  text  not null references conversation (conversation_id),
    author_user_id   text  not null references app_user (user_id),
    body_sealed      bytea not null,
    created_at       text  not null
);
create index note_by_conversation on note (conversation_id, created_at);

-- Replies supervisors prepare for agents, checked by the outbound DLP when saved.
create table canned_reply (
    canned_reply_id  text  primary key,
    title_sealed     bytea not null,
    body_sealed      bytea not null,
    created_by       text  not null,
    created_at       text  not null,
    updated_at       text  not null,
    deleted_at       text
);

-- A secure link sent to a contact. Only the token's SHA-256 is stored.
create table secure_link (
    secure_link_id   text  primary key,
    conversation_id  text  not null references conversation (conversation_id),
    contact_id       text  not null references contact (contact_id),
    created_by       text  not null,  -- 'system' for an automatic escalation, else user:/api_token:
    created_at       text  not null,
    expires_at       text  not null,
    revoked_at       text,
    revoked_by       text,
    -- Wrong one-time codes over all of the link's codes; the link locks at a limit.
    failed_codes     integer not null default 0,
    locked_at        text,
    verified_at      text,
    -- The last "you have a new secure message" text (at most one per interval).
    notified_at      text
);
create index secure_link_by_conversation on secure_link (conversation_id, created_at);

-- A link's URL tokens: only their SHA-256. A link gets one when it is sent and another with
-- each new-message notification (the service cannot re-send a token it does not keep); all
-- work until the link ends.
create table secure_link_token (
    token_sha256     bytea  primary key,
    secure_link_id   text  not null references secure_link (secure_link_id),
    created_at       text  not null
);
create index secure_link_token_by_link on secure_link_token (secure_link_id);

-- One-time codes texted to the conversation's number: only a keyed MAC of the code.
create table secure_code (
    secure_code_id   text  primary key,
    secure_link_id   text  not null references secure_link (secure_link_id),
    code_mac         bytea  not null,
    attempts         integer not null default 0,
    created_at       text  not null,
    expires_at       text  not null,
    -- Set when the code is used, or superseded by a newer code.
    ended_at         text
);
create index secure_code_by_link on secure_code (secure_link_id, created_at);

-- Customer sessions on the secure page, opened by a verified code.
create table customer_session (
    customer_session_id  text  primary key,
    token_sha256         bytea  not null unique,
    secure_link_id       text  not null references secure_link (secure_link_id),
    created_at           text  not null,
    last_seen_at         text  not null,
    -- The page's live stream renews this while the customer has it open.
    streaming_at         text,
    ended_at             text
);
create index customer_session_by_link on customer_session (secure_link_id);

-- Messages exchanged over the secure link: sealed, not redacted (the channel is secure), and
-- never sent through a carrier. Agents see them only through an audited reveal.
create table secure_message (
    secure_message_id  text  primary key,
    conversation_id    text  not null references conversation (conversation_id),
    direction          text  not null check (direction in ('inbound', 'outbound')),
    body_sealed        bytea not null,
    findings           text  not null default '{}',
    author_user_id     text  references app_user (user_id),
    created_at         text  not null
);
create index secure_message_by_conversation on secure_message (conversation_id, created_at);
