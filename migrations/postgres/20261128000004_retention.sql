-- Issue #8 items 3 and 4 (PostgreSQL dialect; migrations/sqlite/ holds the same change): retention,
-- legal holds and data subject erasure.

-- Legal holds: a contact (every conversation of it) or one conversation, kept from retention
-- deletion and erasure until released. `conversation_id` is null for a hold on the whole contact.
-- No foreign key to conversation: a released hold's row outlives an erased conversation.
-- The reason is a short code from a fixed list; any free text about it is sealed under the
-- vault's staff key (it may name people or cases), bound to this row.
create table legal_hold (
    legal_hold_id     text primary key,
    contact_id        text not null references contact (contact_id),
    conversation_id   text,
    reason            text not null check (reason in ('litigation', 'regulatory_inquiry', 'investigation', 'subpoena', 'other')),
    note_sealed       bytea,
    placed_by         text not null,  -- user:<id>, api_token:<id> or cli:<operator>
    placed_at         text not null,
    released_by       text,
    released_at       text
);
create index legal_hold_active on legal_hold (contact_id, released_at);

-- One row per retention run: when, where, and how many rows of each class it removed.
create table retention_run (
    retention_run_id  text primary key,
    started_at        text not null,
    finished_at       text,
    trigger_kind      text not null check (trigger_kind in ('worker', 'cli')),
    counts            text not null default '{}',  -- {"message_content": 12, …}: counts only
    error             text                          -- a short reason when the run stopped early
);
create index retention_run_by_start on retention_run (started_at);

-- Serializes placing a hold against retention batches and erasures (see src/retention): each
-- takes this one row's write lock first, so a hold is either seen or placed after the deletion.
create table retention_lock (
    lock_id     bigint primary key check (lock_id = 1),
    touched_at  text
);
insert into retention_lock (lock_id, touched_at) values (1, null);

-- Set when the contact was erased (data subject request): its data key was replaced by a fresh
-- one (the old one is gone, so every earlier ciphertext is unreadable), its phone number's
-- ciphertext emptied, and its conversations deleted. The blind index stays, so an opted-out
-- number stays opted out. Cleared when the number texts again (it is re-sealed under the new key).
alter table contact add column erased_at text;
