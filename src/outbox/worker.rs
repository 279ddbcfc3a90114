//! The outbox worker: claims due rows, sends them, records what happened. What it guarantees is
//! described in [`super`].
//!
//! Structure: one claiming loop, and one lane per configured sender. The loop claims up to
//! `batch` rows at a time (renewing its claims at a third of the lease) and hands each to its
//! sender's lane; a lane sends its rows one after another, each only when the sender's
//! [`governor`] limiter allows (the sender's throughput divided by the number of instances).
//! Shutdown stops claiming, lets every lane finish the call it is making, and releases the rows it
//! had not started so another instance (or this one, restarted) takes them at once.

use super::Extras;
use crate::carriers::{profile::Resend, Candidate, LookupQuery, OutboundMessage, SendResult};
use crate::config::{Account, OutboxSettings, Settings};
use crate::phone::{BusinessAddress, E164};
use crate::pipeline::Channel;
use crate::store::{self, messages, outbox, Backend};
use crate::vault::{self, Aad};
use crate::web::AppState;
use actix_web::web::Data;
use chrono::Utc;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;
use zeroize::Zeroizing;

/// How far back a lookup looks before the uncertain attempt began, for clock differences between
/// us and the carrier.
const LOOKUP_SKEW: Duration = Duration::from_secs(300);

/// The worker's doorbell, held in [`AppState`]: whoever queues a message rings it after
/// committing, so the local worker does not wait for its next poll.
#[derive(Debug, Default)]
pub struct OutboxHandle {
    notify: Notify,
}

impl OutboxHandle {
    /// Wakes the local worker.
    pub fn wake(&self) {
        self.notify.notify_one();
    }
}

/// A running worker.
#[derive(Debug)]
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl WorkerHandle {
    /// Stops claiming, waits for the calls in progress to finish, releases unstarted rows.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

struct Shared {
    state: Data<AppState>,
    settings: OutboxSettings,
    /// This process's identity in `claimed_by`: random, new at each start.
    instance: String,
    /// Rows claimed and not yet finished.
    held: AtomicUsize,
    stopping: watch::Receiver<bool>,
}

/// Starts the worker on the current runtime.
#[must_use]
pub fn spawn(state: Data<AppState>, settings: &Settings) -> WorkerHandle {
    let (stop, stopping) = watch::channel(false);
    let shared = Arc::new(Shared {
        state,
        settings: settings.outbox.clone(),
        instance: format!("drawbridge-{}", store::new_id()),
        held: AtomicUsize::new(0),
        stopping,
    });
    let lanes: Vec<(String, f64)> = settings
        .numbers
        .iter()
        .filter_map(|number| {
            let account = settings
                .accounts
                .iter()
                .find(|a| a.name == number.account)?;
            Some((
                number.address.key(),
                number.messages_per_second(account.carrier.carrier()),
            ))
        })
        .collect();
    let task = tokio::spawn(run(shared, lanes));
    WorkerHandle { stop, task }
}

fn limiter(per_second: f64, instances: u32) -> DefaultDirectRateLimiter {
    let rate = (per_second / f64::from(instances.max(1))).max(0.001);
    let period = Duration::from_secs_f64(1.0 / rate);
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::MIN);
    RateLimiter::direct(quota)
}

async fn run(shared: Arc<Shared>, lanes: Vec<(String, f64)>) {
    let db = shared.state.db.clone();
    if db.backend() == Backend::Sqlite {
        match db.pool().acquire().await {
            Ok(mut conn) => match outbox::expire_all_claims(&mut conn).await {
                Ok(n) if n > 0 => tracing::info!(
                    rows = n,
                    "outbox: took over the claims of a previous process"
                ),
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(error = %error, "outbox: could not expire stale claims")
                }
            },
            Err(error) => tracing::warn!(error = %error, "outbox: database unavailable at start"),
        }
    }
    let mut senders: HashMap<String, mpsc::UnboundedSender<String>> = HashMap::new();
    let mut tasks = JoinSet::new();
    for (key, per_second) in lanes {
        let (tx, rx) = mpsc::unbounded_channel();
        senders.insert(key, tx);
        tasks.spawn(lane(
            Arc::clone(&shared),
            limiter(per_second, shared.settings.instances),
            rx,
        ));
    }
    tracing::info!(instance = %shared.instance, lanes = senders.len(), "outbox worker started");

    let mut stopping = shared.stopping.clone();
    let mut heartbeat = tokio::time::interval(shared.settings.lease / 3);
    loop {
        tokio::select! {
            _ = stopping.changed() => break,
            () = shared.state.outbox.notify.notified() => {}
            () = tokio::time::sleep(shared.settings.poll_interval) => {}
            _ = heartbeat.tick() => renew(&shared).await,
        }
        if *stopping.borrow() {
            break;
        }
        claim(&shared, &senders).await;
    }
    drop(senders);
    while tasks.join_next().await.is_some() {}
    match db.pool().acquire().await {
        Ok(mut conn) => match outbox::release(&mut conn, &shared.instance).await {
            Ok(n) => tracing::info!(released = n, "outbox worker stopped"),
            Err(error) => {
                tracing::warn!(error = %error, "outbox worker stopped; claims expire by themselves")
            }
        },
        Err(error) => {
            tracing::warn!(error = %error, "outbox worker stopped; claims expire by themselves")
        }
    }
}

async fn renew(shared: &Shared) {
    let until = store::timestamp(Utc::now() + shared.settings.lease);
    let result = async {
        let mut conn = shared.state.db.pool().acquire().await?;
        outbox::renew(&mut conn, &shared.instance, &until).await
    }
    .await;
    if let Err(error) = result {
        tracing::warn!(error = %error, "outbox: could not renew claims");
    }
}

async fn claim(shared: &Shared, senders: &HashMap<String, mpsc::UnboundedSender<String>>) {
    let batch = usize::try_from(shared.settings.batch).unwrap_or(usize::MAX);
    let free = batch.saturating_sub(shared.held.load(Ordering::SeqCst));
    if free == 0 {
        return;
    }
    let now = Utc::now();
    let claimed = async {
        let mut conn = shared.state.db.pool().acquire().await?;
        outbox::claim(
            &mut conn,
            shared.state.db.backend(),
            &shared.instance,
            &store::timestamp(now),
            &store::timestamp(now + shared.settings.lease),
            i64::try_from(free).unwrap_or(i64::MAX),
        )
        .await
    }
    .await;
    let claimed = match claimed {
        Ok(claimed) => claimed,
        Err(error) => {
            tracing::warn!(error = %error, "outbox: could not claim rows");
            return;
        }
    };
    for (outbox_id, business_number) in claimed {
        shared.held.fetch_add(1, Ordering::SeqCst);
        let queued = senders
            .get(&business_number)
            .is_some_and(|lane| lane.send(outbox_id.clone()).is_ok());
        if !queued {
            shared.held.fetch_sub(1, Ordering::SeqCst);
            tracing::error!(outbox_id = %outbox_id, "outbox: the row's sender is no longer configured");
            fail(
                shared,
                &outbox_id,
                None,
                "failed",
                "permanent",
                Some("sender_not_configured"),
            )
            .await;
        }
    }
}

async fn lane(
    shared: Arc<Shared>,
    limiter: DefaultDirectRateLimiter,
    mut rows: mpsc::UnboundedReceiver<String>,
) {
    let mut stopping = shared.stopping.clone();
    while let Some(outbox_id) = rows.recv().await {
        if !*stopping.borrow() {
            tokio::select! {
                () = limiter.until_ready() => process(&shared, &outbox_id).await,
                _ = stopping.changed() => {}
            }
        }
        shared.held.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The message a job sends, opened from its sealed parts.
struct Opened {
    body: Zeroizing<String>,
    to: E164,
    extras: Extras,
}

fn open(shared: &Shared, job: &outbox::Job) -> Result<Opened, &'static str> {
    let vault = &shared.state.vault;
    let dek = vault
        .unwrap_data_key(&job.data_key_wrapped, &job.contact_id)
        .map_err(|_| "data_key")?;
    let body = vault::open(
        &dek,
        &job.body_sealed,
        Aad::new("message", "body_sealed", &job.message_id),
    )
    .map_err(|_| "body")?;
    let body = Zeroizing::new(String::from_utf8(body.to_vec()).map_err(|_| "body")?);
    let phone = vault::open(
        &dek,
        &job.phone_sealed,
        Aad::new("contact", "phone_sealed", &job.contact_id),
    )
    .map_err(|_| "phone")?;
    let to = std::str::from_utf8(&phone)
        .ok()
        .and_then(|p| E164::parse(p).ok())
        .ok_or("phone")?;
    let extras = match &job.extras_sealed {
        None => Extras::default(),
        Some(sealed) => {
            let json = vault::open(
                &dek,
                sealed,
                Aad::new("outbox", "extras_sealed", &job.outbox_id),
            )
            .map_err(|_| "extras")?;
            serde_json::from_slice(&json).map_err(|_| "extras")?
        }
    };
    Ok(Opened { body, to, extras })
}

/// Sends (or resolves) one claimed row. Database errors leave the row to its claim's expiry: it is
/// then taken over, and uncertain if it was in flight.
async fn process(shared: &Shared, outbox_id: &str) {
    if let Err(error) = try_process(shared, outbox_id).await {
        tracing::warn!(outbox_id, error = %error, "outbox: database error; the row will be retried when its claim expires");
    }
}

async fn try_process(shared: &Shared, outbox_id: &str) -> Result<(), sqlx::Error> {
    let state = &shared.state;
    let job = {
        let mut conn = state.db.pool().acquire().await?;
        outbox::load(&mut conn, outbox_id).await?
    };
    let Some(job) = job else { return Ok(()) };
    if job.state != "pending" || job.claimed_by.as_deref() != Some(shared.instance.as_str()) {
        return Ok(());
    }
    let Some(account) = BusinessAddress::from_key(&job.business_number)
        .ok()
        .and_then(|address| state.numbers.get(&address))
        .cloned()
    else {
        fail(
            shared,
            outbox_id,
            Some(&job),
            "failed",
            "permanent",
            Some("sender_not_configured"),
        )
        .await;
        return Ok(());
    };
    let carrier = account.carrier.carrier();
    if carrier.name() != job.carrier {
        // The number moved to another carrier since the row was queued. An attempt that may have
        // reached the old carrier cannot be resolved through the new one.
        if job.uncertain {
            fail(
                shared,
                outbox_id,
                Some(&job),
                "unconfirmed",
                "unconfirmed",
                Some("carrier_changed"),
            )
            .await;
            return Ok(());
        }
        let mut tx = state.db.pool().begin().await?;
        for table_sql in [
            "UPDATE outbox SET carrier = $1 WHERE outbox_id = $2",
            "UPDATE message SET carrier = $1 WHERE message_id = $2",
        ] {
            let id = if table_sql.contains("outbox") {
                &job.outbox_id
            } else {
                &job.message_id
            };
            sqlx::query(table_sql)
                .bind(carrier.name())
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    let opened = match open(shared, &job) {
        Ok(opened) => opened,
        Err(part) => {
            tracing::error!(
                outbox_id,
                part,
                "outbox: a sealed part of the row does not open"
            );
            fail(
                shared,
                outbox_id,
                Some(&job),
                "failed",
                "permanent",
                Some("unreadable"),
            )
            .await;
            return Ok(());
        }
    };
    let Ok(from) = BusinessAddress::from_key(&job.business_number) else {
        return Ok(());
    };
    let channel = Channel::parse(&job.channel).unwrap_or(Channel::Sms);
    let callback = format!("{}/webhooks/{}/status", state.public_url, carrier.name());
    let message = OutboundMessage {
        outbox_id: &job.outbox_id,
        from: &from,
        to: &opened.to,
        channel,
        body: &opened.body,
        media_urls: &opened.extras.media_urls,
        suggestions: &opened.extras.suggestions,
        status_callback: &callback,
    };

    if job.uncertain && !resolve(shared, &job, &account, &message).await? {
        return Ok(());
    }

    let started = {
        let mut conn = state.db.pool().acquire().await?;
        outbox::start_attempt(&mut conn, outbox_id, &shared.instance, &store::now()).await?
    };
    if !started {
        return Ok(());
    }
    let attempts = job.attempts + 1;
    let result = state.client.send(&account.carrier, &message).await;
    drop(opened);
    match result {
        SendResult::Accepted {
            carrier_message_id,
            status,
        } => {
            record_accepted(shared, &job, &carrier_message_id, status).await?;
            state.metrics.outbox(carrier.name(), "accepted", "none");
            tracing::info!(
                outbox_id,
                carrier = carrier.name(),
                attempts,
                "outbox: message accepted by the carrier"
            );
        }
        SendResult::Rejected(error)
            if error.class.is_retryable() && attempts < i64::from(shared.settings.max_attempts) =>
        {
            let delay = backoff(&shared.settings, attempts, error.retry_after);
            let next = store::timestamp(Utc::now() + delay);
            let mut conn = state.db.pool().acquire().await?;
            outbox::reschedule(
                &mut conn,
                outbox_id,
                &next,
                false,
                (Some(error.class.as_str()), error.code.as_deref()),
                &store::now(),
            )
            .await?;
            state
                .metrics
                .outbox(carrier.name(), "retry", error.class.as_str());
            tracing::info!(outbox_id, carrier = carrier.name(), class = error.class.as_str(), code = ?error.code, http_status = ?error.http_status, attempts, delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), "outbox: carrier refused for now; will retry");
        }
        SendResult::Rejected(error) => {
            let class = if error.class.is_retryable() {
                "exhausted"
            } else {
                error.class.as_str()
            };
            fail(
                shared,
                outbox_id,
                Some(&job),
                "failed",
                class,
                error.code.as_deref(),
            )
            .await;
            tracing::warn!(outbox_id, carrier = carrier.name(), class, code = ?error.code, http_status = ?error.http_status, attempts, "outbox: message failed");
        }
        SendResult::Uncertain(reason) => {
            let delay = backoff(&shared.settings, attempts, None).max(shared.settings.lookup_delay);
            let next = store::timestamp(Utc::now() + delay);
            let mut conn = state.db.pool().acquire().await?;
            outbox::reschedule(
                &mut conn,
                outbox_id,
                &next,
                true,
                (Some("uncertain"), Some(reason)),
                &store::now(),
            )
            .await?;
            state.metrics.outbox(carrier.name(), "uncertain", "none");
            tracing::warn!(outbox_id, carrier = carrier.name(), reason, attempts, "outbox: the carrier may or may not have taken the message; resolving before any resend");
        }
    }
    Ok(())
}

/// Resolves an uncertain row before it may be sent again. Returns whether to send now.
async fn resolve(
    shared: &Shared,
    job: &outbox::Job,
    account: &Account,
    message: &OutboundMessage<'_>,
) -> Result<bool, sqlx::Error> {
    let state = &shared.state;
    let carrier = account.carrier.carrier();
    match carrier.profile().resend {
        // The carrier deduplicates on the key we send again.
        Resend::Idempotent => Ok(true),
        Resend::None => {
            fail(
                shared,
                &job.outbox_id,
                Some(job),
                "unconfirmed",
                "unconfirmed",
                None,
            )
            .await;
            state.metrics.outbox(carrier.name(), "unconfirmed", "none");
            tracing::warn!(outbox_id = %job.outbox_id, carrier = carrier.name(), "outbox: an attempt's outcome cannot be known for this carrier; the message is unconfirmed and will not be resent");
            Ok(false)
        }
        Resend::Lookup => {
            let began = job
                .attempt_started_at
                .as_deref()
                .and_then(store::parse_timestamp)
                .unwrap_or_else(Utc::now);
            let ready_at = began + shared.settings.lookup_delay;
            if Utc::now() < ready_at {
                // Give the carrier's listing time to catch up.
                let mut conn = state.db.pool().acquire().await?;
                outbox::reschedule(
                    &mut conn,
                    &job.outbox_id,
                    &store::timestamp(ready_at),
                    true,
                    (Some("uncertain"), None),
                    &store::now(),
                )
                .await?;
                return Ok(false);
            }
            let query = LookupQuery {
                outbox_id: &job.outbox_id,
                from: message.from,
                to: message.to,
                since: began - LOOKUP_SKEW,
            };
            match state.client.lookup(&account.carrier, &query).await {
                Ok(Some(candidates)) => {
                    match ours(shared, carrier.name(), &candidates, message).await? {
                        Some(carrier_message_id) => {
                            record_accepted(shared, job, &carrier_message_id, None).await?;
                            state.metrics.outbox(carrier.name(), "found", "none");
                            tracing::info!(outbox_id = %job.outbox_id, carrier = carrier.name(), "outbox: the uncertain message was found at the carrier; not resending");
                            Ok(false)
                        }
                        None => {
                            state.metrics.outbox(carrier.name(), "resent", "none");
                            tracing::info!(outbox_id = %job.outbox_id, carrier = carrier.name(), "outbox: the uncertain message is not at the carrier; sending it");
                            Ok(true)
                        }
                    }
                }
                Ok(None) => {
                    fail(
                        shared,
                        &job.outbox_id,
                        Some(job),
                        "unconfirmed",
                        "unconfirmed",
                        Some("no_lookup"),
                    )
                    .await;
                    Ok(false)
                }
                Err(error) => {
                    let delay = backoff(&shared.settings, job.attempts.max(1), error.retry_after);
                    let mut conn = state.db.pool().acquire().await?;
                    outbox::reschedule(
                        &mut conn,
                        &job.outbox_id,
                        &store::timestamp(Utc::now() + delay),
                        true,
                        (Some("uncertain"), error.code.as_deref()),
                        &store::now(),
                    )
                    .await?;
                    tracing::warn!(outbox_id = %job.outbox_id, carrier = carrier.name(), code = ?error.code, "outbox: lookup failed; will try again");
                    Ok(false)
                }
            }
        }
    }
}

/// Which listed message is ours: one carrying our outbox id; else, among those we have not
/// recorded, one with our exact text; else, when the listing has neither references nor text,
/// the first we have not recorded.
async fn ours(
    shared: &Shared,
    carrier: &str,
    candidates: &[Candidate],
    message: &OutboundMessage<'_>,
) -> Result<Option<String>, sqlx::Error> {
    if let Some(found) = candidates
        .iter()
        .find(|c| c.client_reference.as_deref() == Some(message.outbox_id))
    {
        return Ok(Some(found.carrier_message_id.clone()));
    }
    let mut conn = shared.state.db.pool().acquire().await?;
    let mut unknown = Vec::new();
    for candidate in candidates {
        if !outbox::is_recorded(&mut conn, carrier, &candidate.carrier_message_id).await? {
            unknown.push(candidate);
        }
    }
    let sent_text = message.text_with_fallbacks();
    if let Some(found) = unknown.iter().find(|c| {
        c.body
            .as_deref()
            .is_some_and(|b| b.as_str() == message.body || b.as_str() == sent_text)
    }) {
        return Ok(Some(found.carrier_message_id.clone()));
    }
    let listing_is_blind = unknown
        .iter()
        .all(|c| c.body.is_none() && c.client_reference.is_none());
    Ok(if listing_is_blind {
        unknown.first().map(|c| c.carrier_message_id.clone())
    } else {
        None
    })
}

/// Records the carrier's acceptance in one transaction: the row is done, the message gets its
/// carrier id, and status callbacks that arrived first are applied.
async fn record_accepted(
    shared: &Shared,
    job: &outbox::Job,
    carrier_message_id: &str,
    status: Option<&'static str>,
) -> Result<(), sqlx::Error> {
    let state = &shared.state;
    let carrier = job.carrier.as_str();
    let mut tx = state.db.pool().begin().await?;
    let now = store::now();
    if !outbox::mark_accepted(&mut tx, &job.outbox_id, carrier_message_id, &now).await? {
        tx.rollback().await?;
        return Ok(());
    }
    let named = sqlx::query(
        "UPDATE message SET carrier_message_id = $1, status_updated_at = $2 WHERE message_id = $3 AND carrier_message_id IS NULL",
    )
    .bind(carrier_message_id)
    .bind(&now)
    .bind(&job.message_id)
    .execute(&mut *tx)
    .await;
    if let Err(error) = named {
        // Another message already has this carrier id: the carrier answered something it gave
        // before. Keep the acceptance on the row, flag it, and leave the message unnamed.
        tx.rollback().await?;
        tracing::error!(outbox_id = %job.outbox_id, error = %error, "outbox: the carrier's id is already another message's");
        let mut conn = state.db.pool().acquire().await?;
        outbox::finish(
            &mut conn,
            &job.outbox_id,
            "failed",
            "permanent",
            Some("duplicate_carrier_id"),
            &now,
        )
        .await?;
        return Ok(());
    }
    if let Some(status) = status {
        messages::apply_status(&mut tx, carrier, carrier_message_id, status, None).await?;
    }
    messages::apply_recorded_statuses(&mut tx, carrier, carrier_message_id).await?;
    tx.commit().await
}

/// Ends a row as `failed` or `unconfirmed`; a failed message's status becomes `failed` with the
/// carrier's code.
async fn fail(
    shared: &Shared,
    outbox_id: &str,
    job: Option<&outbox::Job>,
    end: &str,
    class: &'static str,
    code: Option<&str>,
) {
    let state = &shared.state;
    let carrier = job.map_or("unknown", |j| {
        crate::carriers::Carrier::from_name(&j.carrier).map_or("unknown", |c| c.name())
    });
    let result = async {
        let mut tx = state.db.pool().begin().await?;
        let now = store::now();
        let ended = outbox::finish(&mut tx, outbox_id, end, class, code, &now).await?;
        if ended && end == "failed" {
            sqlx::query(
                "UPDATE message SET status = 'failed', status_error_code = COALESCE($1, status_error_code), status_updated_at = $2 \
                 WHERE message_id = (SELECT message_id FROM outbox WHERE outbox_id = $3)",
            )
            .bind(code)
            .bind(&now)
            .bind(outbox_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => {
            if end == "failed" {
                state.metrics.outbox(carrier, "failed", class);
            }
        }
        Err(error) => {
            tracing::warn!(outbox_id, error = %error, "outbox: could not record the failure; the row will be retried when its claim expires")
        }
    }
}

/// Exponential backoff with equal jitter: half the step fixed, half random, the step doubling
/// from `backoff_base` up to `backoff_max`; never sooner than the carrier's `Retry-After`.
#[must_use]
pub fn backoff(
    settings: &OutboxSettings,
    attempts: i64,
    retry_after: Option<Duration>,
) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let step = settings
        .backoff_base
        .saturating_mul(2_u32.saturating_pow(doublings))
        .min(settings.backoff_max);
    let half = step / 2;
    let jitter = rand::thread_rng().gen_range(Duration::ZERO..=half);
    (half + jitter).max(retry_after.unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_honours_retry_after() {
        let settings = OutboxSettings {
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(60),
            ..OutboxSettings::default()
        };
        for _ in 0..100 {
            let first = backoff(&settings, 1, None);
            assert!(
                first >= Duration::from_secs(1) && first <= Duration::from_secs(2),
                "{first:?}"
            );
            let third = backoff(&settings, 3, None);
            assert!(
                third >= Duration::from_secs(4) && third <= Duration::from_secs(8),
                "{third:?}"
            );
            let late = backoff(&settings, 40, None);
            assert!(
                late >= Duration::from_secs(30) && late <= Duration::from_secs(60),
                "{late:?}"
            );
        }
        assert!(backoff(&settings, 1, Some(Duration::from_secs(9))) >= Duration::from_secs(9));
    }

    #[test]
    fn limiters_space_sends_by_the_per_instance_rate() {
        let one = limiter(1.0, 1);
        assert!(one.check().is_ok());
        assert!(
            one.check().is_err(),
            "a long code sends one message per second"
        );
        let fast = limiter(100.0, 2);
        assert!(fast.check().is_ok());
    }

    #[test]
    fn error_classes_retry_as_documented() {
        use crate::carriers::ErrorClass;
        assert!(ErrorClass::Throttled.is_retryable());
        assert!(ErrorClass::Transient.is_retryable());
        assert!(!ErrorClass::OptedOut.is_retryable());
        assert!(!ErrorClass::InvalidNumber.is_retryable());
        assert!(!ErrorClass::Permanent.is_retryable());
    }
}
