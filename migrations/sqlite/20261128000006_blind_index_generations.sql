-- Issue #8, blind-index key rotation (SQLite dialect; see the PostgreSQL file).
--
-- Blind indexes (contact.phone_index, app_user.email_index, app_user.oidc_subject_index) are
-- HMACs under index keys. `drawbridge keys reindex` adds a generation of fresh keys (stored
-- wrapped with the purpose keys in keyring.purpose_keys_wrapped) and re-keys every stored index to
-- it (see src/vault/index.rs and src/keys/index.rs). Generation 1, the keys every database starts
-- with, has no row here: no row means generation 1.
--
--   cursor         the last contact_id a committed batch of the re-index reached (resumable);
--   reindexed_at   set once no row is indexed under an older generation;
--   contacts, users  rows re-keyed so far.
create table blind_index_generation (
    generation    integer  primary key,
    created_at    text    not null,
    cursor        text    not null default '',
    contacts      integer  not null default 0,
    users         integer  not null default 0,
    reindexed_at  text
);

-- The generation each row's indexes are under. New rows are written under the newest only.
alter table contact add column index_generation integer not null default 1;
alter table app_user add column index_generation integer not null default 1;

-- The one-row key lock: the first statement of every transaction that changes the keyring or moves
-- rows between key versions or index generations (`crate::keys::lock`). It serializes them (a
-- re-index adding a generation and a start registering a master key version must not each wrap
-- a different set), and on SQLite it takes the write lock up front.
create table key_lock (
    lock_id     integer primary key check (lock_id = 1),
    touched_at  text
);
insert into key_lock (lock_id) values (1);
