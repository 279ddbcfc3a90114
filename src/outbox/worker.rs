//! The outbox worker: claims due rows, sends them, records what happened. What it guarantees is
//! described in [`super`].
//!
//! # Structure
//!
//! One lane per configured sender, each with its own [`governor`] limiter (the sender's
//! throughput divided by the number of instances) and its own capacity (`batch` rows claimed at a
//! time), so a backlog on one number never holds up another. A claiming loop asks which senders
//! have due rows and claims for those lanes that have room; it claims only rows of senders this
//! instance has a lane for, so an instance with an older configuration leaves a new number's
//! rows to the instances that know it.
//!
//! Each claimed row is in the instance's *held* set until its lane is done with it. The heartbeat
//! renews the claims of held rows only: a row whose processing failed half-way (a database error)
//! leaves the set, its claim expires, and it is taken over — and resolved, if it was in flight.
//! Each row is processed in its own task, so a panic costs that row's processing, never the lane.
//!
//! After a call, every write to the row is guarded by the claim (the instance, the state it left
//! the row in and the attempt number): an instance whose claim expired mid-call cannot overwrite
//! the row another instance has taken over. An acceptance is the exception — it is a fact — and
//! is recorded whoever holds the row.
//!
//! A throttled answer pauses the whole lane for the carrier's `Retry-After` (or the backoff), not
//! only the row that got it.
//!
//! Shutdown stops claiming, lets every lane finish the call it is making while the heartbeat keeps
//! their claims alive, then releases the rows not started so another instance (or this one,
//! restarted) takes them at once.

use super::Extras;
use crate::carriers::profile::{LookupMatch, Resend};
use crate::carriers::{Candidate, ErrorClass, LookupQuery, OutboundMessage, SendResult};
use crate::config::{Account, OutboxSettings, Settings};
use crate::phone::{BusinessAddress, E164};
use crate::pipeline::Channel;
use crate::store::{self, outbox, Backend};
use crate::vault::{self, Aad};
use crate::web::AppState;
use actix_web::web::Data;
use chrono::{DateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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
    /// Rows claimed and not yet done with: the only ones the heartbeat renews.
    held: Mutex<HashSet<String>>,
    stopping: watch::Receiver<bool>,
}

impl Shared {
    fn hold(&self, outbox_id: &str) {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(outbox_id.to_owned());
    }

    fn release(&self, outbox_id: &str) {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(outbox_id);
    }

    fn held(&self) -> Vec<String> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }
}

/// One sender's queue: the rows claimed for it and not yet finished.
struct Lane {
    rows: mpsc::UnboundedSender<String>,
    queued: Arc<AtomicUsize>,
}

/// Starts the worker on the current runtime.
#[must_use]
pub fn spawn(state: Data<AppState>, settings: &Settings) -> WorkerHandle {
    let (stop, stopping) = watch::channel(false);
    let shared = Arc::new(Shared {
        state,
        settings: settings.outbox.clone(),
        instance: format!("drawbridge-{}", store::new_id()),
        held: Mutex::new(HashSet::new()),
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

/// `now + delay` as stored, saturating at a day ahead (delays are bounded well below that).
fn later(now: DateTime<Utc>, delay: Duration) -> String {
    let delay = delay.min(Duration::from_secs(24 * 3600));
    let at = chrono::Duration::from_std(delay)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(now);
    store::timestamp(at)
}

async fn run(shared: Arc<Shared>, lanes: Vec<(String, f64)>) {
    let db = shared.state.db.clone();
    if db.backend() == Backend::Sqlite {
        // One instance serves a SQLite database (startup holds a lock to make sure): claims left
        // by an earlier process of it (killed, not stopped) are stale now.
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
    let mut senders: HashMap<String, Lane> = HashMap::new();
    let mut tasks = JoinSet::new();
    for (key, per_second) in lanes {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        senders.insert(
            key,
            Lane {
                rows: tx,
                queued: Arc::clone(&queued),
            },
        );
        tasks.spawn(lane(
            Arc::clone(&shared),
            limiter(per_second, shared.settings.instances),
            rx,
            queued,
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
    // Let the lanes finish their calls, keeping their claims alive meanwhile.
    drop(senders);
    loop {
        tokio::select! {
            next = tasks.join_next() => if next.is_none() { break },
            _ = heartbeat.tick() => renew(&shared).await,
        }
    }
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
    let held = shared.held();
    if held.is_empty() {
        return;
    }
    let until = later(shared.state.clock.now(), shared.settings.lease);
    let result = async {
        let mut conn = shared.state.db.pool().acquire().await?;
        outbox::renew(&mut conn, &shared.instance, &until, &held).await
    }
    .await;
    if let Err(error) = result {
        tracing::warn!(error = %error, "outbox: could not renew claims");
    }
}

async fn claim(shared: &Shared, senders: &HashMap<String, Lane>) {
    let batch = usize::try_from(shared.settings.batch).unwrap_or(usize::MAX);
    let now = shared.state.clock.now();
    let result = async {
        let mut conn = shared.state.db.pool().acquire().await?;
        let due = outbox::due_senders(&mut conn, &store::timestamp(now)).await?;
        let mut claimed = Vec::new();
        for number in due {
            // Only senders this instance has a lane for; others are left to instances that do.
            let Some(lane) = senders.get(&number) else {
                continue;
            };
            let free = batch.saturating_sub(lane.queued.load(Ordering::SeqCst));
            if free == 0 {
                continue;
            }
            let ids = outbox::claim(
                &mut conn,
                shared.state.db.backend(),
                &shared.instance,
                &store::timestamp(now),
                &later(now, shared.settings.lease),
                i64::try_from(free).unwrap_or(i64::MAX),
                &number,
            )
            .await?;
            claimed.push((number, ids));
        }
        Ok::<_, sqlx::Error>(claimed)
    }
    .await;
    let claimed = match result {
        Ok(claimed) => claimed,
        Err(error) => {
            tracing::warn!(error = %error, "outbox: could not claim rows");
            return;
        }
    };
    for (number, ids) in claimed {
        let Some(lane) = senders.get(&number) else {
            continue;
        };
        for outbox_id in ids {
            shared.hold(&outbox_id);
            lane.queued.fetch_add(1, Ordering::SeqCst);
            if lane.rows.send(outbox_id.clone()).is_err() {
                // The lane is gone (shutting down): give the row back.
                lane.queued.fetch_sub(1, Ordering::SeqCst);
                shared.release(&outbox_id);
                if let Ok(mut conn) = shared.state.db.pool().acquire().await {
                    let _ = outbox::release_one(&mut conn, &outbox_id, &shared.instance).await;
                }
            }
        }
    }
}

/// What a lane should do after a row.
enum Next {
    /// Carry on with the next row.
    Continue,
    /// The carrier throttled this sender: wait before the next row.
    Pause(Duration),
}

async fn lane(
    shared: Arc<Shared>,
    limiter: DefaultDirectRateLimiter,
    mut rows: mpsc::UnboundedReceiver<String>,
    queued: Arc<AtomicUsize>,
) {
    let mut stopping = shared.stopping.clone();
    while let Some(outbox_id) = rows.recv().await {
        if !*stopping.borrow() {
            let ready = tokio::select! {
                () = limiter.until_ready() => true,
                _ = stopping.changed() => false,
            };
            if ready {
                // Its own task: a panic costs this row's processing (its claim then expires and
                // the row is taken over), never the lane.
                let job = tokio::spawn(process(Arc::clone(&shared), outbox_id.clone()));
                match job.await {
                    Ok(Next::Continue) => {}
                    Ok(Next::Pause(pause)) => {
                        tokio::select! {
                            () = tokio::time::sleep(pause) => {}
                            _ = stopping.changed() => {}
                        }
                    }
                    Err(error) => {
                        tracing::error!(outbox_id = %outbox_id, error = %error, "outbox: processing a row panicked; it will be taken over when its claim expires");
                    }
                }
            }
        }
        shared.release(&outbox_id);
        queued.fetch_sub(1, Ordering::SeqCst);
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
    let mut extras: Extras = match &job.extras_sealed {
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
    // A message whose record shows a redacted version sends the text kept in its extras.
    let body = match extras.text.take() {
        Some(text) => Zeroizing::new(text),
        None => body,
    };
    Ok(Opened { body, to, extras })
}

/// Sends (or resolves) one claimed row. A database error leaves the row to its claim's expiry
/// (the row leaves the held set, so its claim is no longer renewed): it is then taken over, and
/// uncertain if it was in flight.
async fn process(shared: Arc<Shared>, outbox_id: String) -> Next {
    match try_process(&shared, &outbox_id).await {
        Ok(next) => next,
        Err(error) => {
            tracing::warn!(outbox_id, error = %error, "outbox: database error; the row is taken over when its claim expires");
            Next::Continue
        }
    }
}

async fn try_process(shared: &Shared, outbox_id: &str) -> Result<Next, sqlx::Error> {
    let state = &shared.state;
    let job = {
        let mut conn = state.db.pool().acquire().await?;
        outbox::load(&mut conn, outbox_id).await?
    };
    let Some(job) = job else {
        return Ok(Next::Continue);
    };
    if job.state != "pending" || job.claimed_by.as_deref() != Some(shared.instance.as_str()) {
        return Ok(Next::Continue);
    }
    let pending = outbox::Guard {
        instance: &shared.instance,
        state: "pending",
        attempts: job.attempts,
    };
    let Some(account) = BusinessAddress::from_key(&job.business_number)
        .ok()
        .and_then(|address| state.numbers.get(&address))
        .cloned()
    else {
        // Claimed only for senders with a lane, so only a configuration mid-change gets here.
        let mut conn = state.db.pool().acquire().await?;
        outbox::release_one(&mut conn, outbox_id, &shared.instance).await?;
        return Ok(Next::Continue);
    };
    let carrier = account.carrier.carrier();
    if carrier.name() != job.carrier {
        // The number moved to another carrier since the row was queued. An attempt that may have
        // reached the old carrier cannot be resolved through the new one.
        if job.uncertain {
            end(
                shared,
                &job,
                pending,
                End::Unconfirmed,
                Some("carrier_changed"),
            )
            .await?;
            return Ok(Next::Continue);
        }
        let mut tx = state.db.pool().begin().await?;
        sqlx::query("UPDATE outbox SET carrier = $1 WHERE outbox_id = $2")
            .bind(carrier.name())
            .bind(&job.outbox_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE message SET carrier = $1 WHERE message_id = $2 AND carrier_message_id IS NULL",
        )
        .bind(carrier.name())
        .bind(&job.message_id)
        .execute(&mut *tx)
        .await?;
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
            end(
                shared,
                &job,
                pending,
                End::Failed("permanent"),
                Some("unreadable"),
            )
            .await?;
            return Ok(Next::Continue);
        }
    };
    let Ok(from) = BusinessAddress::from_key(&job.business_number) else {
        return Ok(Next::Continue);
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

    if job.uncertain && !resolve(shared, &job, pending, &account, &message).await? {
        return Ok(Next::Continue);
    }

    // Compliance, checked again now: an opt-out or the time of day may have changed since the
    // message was queued. A keyword confirmation answers the customer's own keyword: it goes to
    // an opted-out contact (the opt-out confirmation, and HELP answered after an opt-out) and is
    // never held — unless it was queued while the contact was opted in and the contact opted out
    // since, which leaves an opt-in confirmation or a HELP reply still waiting (throttled,
    // retried) unsent. An opt-out confirmation still waiting when a STOP, START, STOP toggle
    // ends opted out is still true and still goes: it may be the only one a flooding contact
    // gets.
    let confirmation = job.kind == super::Kind::KeywordConfirmation.as_str();
    {
        use crate::compliance::consent::{self, State};
        let settings = &state.compliance;
        let mut conn = state.db.pool().acquire().await?;
        let current = consent::current(
            &mut conn,
            &job.contact_id,
            &job.business_number,
            settings.opt_out_scope,
        )
        .await?;
        let opted_out_since_queued = current.state == State::OptedOut
            && current
                .since
                .as_deref()
                .is_some_and(|since| since > job.created_at.as_str())
            && consent::state_at(
                &mut conn,
                &job.contact_id,
                &job.business_number,
                settings.opt_out_scope,
                &job.created_at,
            )
            .await?
                == State::OptedIn;
        drop(conn);
        if current.state == State::OptedOut && (!confirmation || opted_out_since_queued) {
            end(
                shared,
                &job,
                pending,
                End::Failed("opted_out"),
                Some("consent"),
            )
            .await?;
            tracing::info!(
                outbox_id,
                "outbox: the contact has opted out; the message is not sent"
            );
            return Ok(Next::Continue);
        }
        if !job.quiet_override && !confirmation {
            let now = state.clock.now();
            let last_inbound = job.last_inbound.as_deref().and_then(store::parse_timestamp);
            if let Some(until) = crate::compliance::outbound::quiet_hold(
                settings,
                &opened.to,
                job.time_zone.as_deref(),
                last_inbound,
                now,
            ) {
                let mut conn = state.db.pool().acquire().await?;
                outbox::reschedule(
                    &mut conn,
                    outbox_id,
                    pending,
                    &store::timestamp(until),
                    job.uncertain,
                    (Some("quiet_hours"), None),
                    &store::timestamp(now),
                )
                .await?;
                crate::compliance::outbound::record_quiet_hold(
                    &mut conn,
                    &job.message_id,
                    now,
                    until,
                )
                .await?;
                tracing::info!(
                    outbox_id,
                    "outbox: held by quiet hours in the contact's time zone"
                );
                return Ok(Next::Continue);
            }
        }
    }

    let now = state.clock.now();
    let started = {
        let mut conn = state.db.pool().acquire().await?;
        outbox::start_attempt(
            &mut conn,
            outbox_id,
            &shared.instance,
            &store::timestamp(now),
            &later(now, shared.settings.lease),
        )
        .await?
    };
    if !started {
        return Ok(Next::Continue);
    }
    let attempts = job.attempts + 1;
    let in_flight = outbox::Guard {
        instance: &shared.instance,
        state: "in_flight",
        attempts,
    };
    let result = state.client.send(&account.carrier, &message).await;
    drop(opened);
    let max_attempts = i64::from(shared.settings.max_attempts);
    match result {
        SendResult::Accepted {
            carrier_message_id,
            status,
        } => {
            accept(shared, &job, carrier.name(), &carrier_message_id, status).await?;
            tracing::info!(
                outbox_id,
                carrier = carrier.name(),
                attempts,
                "outbox: message accepted by the carrier"
            );
        }
        SendResult::Rejected(error) if error.class.is_retryable() && attempts < max_attempts => {
            let delay = backoff(&shared.settings, attempts, error.retry_after);
            let mut conn = state.db.pool().acquire().await?;
            let kept = outbox::reschedule(
                &mut conn,
                outbox_id,
                in_flight,
                &later(state.clock.now(), delay),
                false,
                (Some(error.class.as_str()), error.code.as_deref()),
                &state.clock.timestamp(),
            )
            .await?;
            lost_claim(outbox_id, kept);
            state
                .metrics
                .outbox(carrier.name(), "retry", error.class.as_str());
            tracing::info!(outbox_id, carrier = carrier.name(), class = error.class.as_str(), code = ?error.code, http_status = ?error.http_status, attempts, delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), "outbox: carrier refused for now; will retry");
            if error.class == ErrorClass::Throttled {
                // The sender is over the carrier's limit: the lane waits, not only this row.
                return Ok(Next::Pause(
                    error
                        .retry_after
                        .unwrap_or(delay)
                        .min(shared.settings.backoff_max),
                ));
            }
        }
        SendResult::Rejected(error) => {
            let class = if error.class.is_retryable() {
                "exhausted"
            } else {
                error.class.as_str()
            };
            end(
                shared,
                &job,
                in_flight,
                End::Failed(class),
                error.code.as_deref(),
            )
            .await?;
            tracing::warn!(outbox_id, carrier = carrier.name(), class, code = ?error.code, http_status = ?error.http_status, attempts, "outbox: message failed");
        }
        SendResult::Uncertain(reason) => {
            // Resolved before anything else happens to the row (see `resolve`), also once the
            // attempts are used up.
            let delay = backoff(&shared.settings, attempts, None).max(shared.settings.lookup_delay);
            let mut conn = state.db.pool().acquire().await?;
            let kept = outbox::reschedule(
                &mut conn,
                outbox_id,
                in_flight,
                &later(state.clock.now(), delay),
                true,
                (Some("uncertain"), Some(reason)),
                &state.clock.timestamp(),
            )
            .await?;
            lost_claim(outbox_id, kept);
            state.metrics.outbox(carrier.name(), "uncertain", "none");
            tracing::warn!(outbox_id, carrier = carrier.name(), reason, attempts, "outbox: the carrier may or may not have taken the message; resolving before any resend");
        }
    }
    Ok(Next::Continue)
}

fn lost_claim(outbox_id: &str, kept: bool) {
    if !kept {
        tracing::warn!(outbox_id, "outbox: the claim on this row expired during the call; the instance that took it over resolves it");
    }
}

/// Resolves an uncertain row before it may be sent again. Returns whether to send now.
async fn resolve(
    shared: &Shared,
    job: &outbox::Job,
    guard: outbox::Guard<'_>,
    account: &Account,
    message: &OutboundMessage<'_>,
) -> Result<bool, sqlx::Error> {
    let state = &shared.state;
    let carrier = account.carrier.carrier();
    let exhausted = job.attempts >= i64::from(shared.settings.max_attempts);
    match carrier.profile().resend {
        Resend::Idempotent if !exhausted => Ok(true),
        // Resending is safe, but the attempts are used up: whether it ever went is unknown.
        Resend::Idempotent | Resend::None => {
            end(shared, job, guard, End::Unconfirmed, None).await?;
            tracing::warn!(outbox_id = %job.outbox_id, carrier = carrier.name(), "outbox: an attempt's outcome cannot be known; the message is unconfirmed and will not be resent");
            Ok(false)
        }
        Resend::Lookup => {
            let began = job
                .attempt_started_at
                .as_deref()
                .and_then(store::parse_timestamp)
                .unwrap_or_else(Utc::now);
            let ready_at = chrono::Duration::from_std(shared.settings.lookup_delay)
                .ok()
                .and_then(|d| began.checked_add_signed(d))
                .unwrap_or(began);
            let now = state.clock.now();
            if now < ready_at {
                // Give the carrier's listing time to catch up.
                let mut conn = state.db.pool().acquire().await?;
                outbox::reschedule(
                    &mut conn,
                    &job.outbox_id,
                    guard,
                    &store::timestamp(ready_at),
                    true,
                    (Some("uncertain"), None),
                    &state.clock.timestamp(),
                )
                .await?;
                return Ok(false);
            }
            let since = chrono::Duration::from_std(LOOKUP_SKEW)
                .ok()
                .and_then(|d| began.checked_sub_signed(d))
                .unwrap_or(began);
            let query = LookupQuery {
                outbox_id: &job.outbox_id,
                from: message.from,
                to: message.to,
                since,
            };
            match state.client.lookup(&account.carrier, &query).await {
                Ok(Some(candidates)) => match ours(shared, carrier, &candidates, message).await? {
                    Some(carrier_message_id) => {
                        accept(shared, job, carrier.name(), &carrier_message_id, None).await?;
                        state.metrics.outbox(carrier.name(), "found", "none");
                        tracing::info!(outbox_id = %job.outbox_id, carrier = carrier.name(), "outbox: the uncertain message was found at the carrier; not resending");
                        Ok(false)
                    }
                    None if exhausted => {
                        // Not at the carrier, and no attempts left.
                        end(
                            shared,
                            job,
                            guard,
                            End::Failed("exhausted"),
                            Some("not_sent"),
                        )
                        .await?;
                        Ok(false)
                    }
                    None => {
                        state.metrics.outbox(carrier.name(), "resent", "none");
                        tracing::info!(outbox_id = %job.outbox_id, carrier = carrier.name(), "outbox: the uncertain message is not at the carrier; sending it");
                        Ok(true)
                    }
                },
                Ok(None) => {
                    end(shared, job, guard, End::Unconfirmed, Some("no_lookup")).await?;
                    Ok(false)
                }
                Err(error) if error.class.is_retryable() => {
                    // The longer since the attempt, the longer the wait: from the base to the max.
                    let elapsed = (now - began).to_std().unwrap_or_default();
                    let delay = elapsed
                        .clamp(shared.settings.backoff_base, shared.settings.backoff_max)
                        .max(error.retry_after.unwrap_or_default());
                    let mut conn = state.db.pool().acquire().await?;
                    outbox::reschedule(
                        &mut conn,
                        &job.outbox_id,
                        guard,
                        &later(now, delay),
                        true,
                        (Some("uncertain"), error.code.as_deref()),
                        &state.clock.timestamp(),
                    )
                    .await?;
                    tracing::warn!(outbox_id = %job.outbox_id, carrier = carrier.name(), code = ?error.code, "outbox: lookup failed; will try again");
                    Ok(false)
                }
                Err(error) => {
                    // The carrier refuses the lookup itself (credentials that cannot list): the
                    // outcome cannot be found out.
                    end(shared, job, guard, End::Unconfirmed, error.code.as_deref()).await?;
                    tracing::warn!(outbox_id = %job.outbox_id, carrier = carrier.name(), code = ?error.code, "outbox: the carrier refused the lookup; the message is unconfirmed");
                    Ok(false)
                }
            }
        }
    }
}

/// Which listed message is ours, as the carrier's profile says a listing can tell
/// ([`LookupMatch`]): one carrying our outbox id; else (`text`) one we have not recorded with our
/// exact, non-empty text; else (`unrecorded`) the first we have not recorded.
async fn ours(
    shared: &Shared,
    carrier: crate::carriers::Carrier,
    candidates: &[Candidate],
    message: &OutboundMessage<'_>,
) -> Result<Option<String>, sqlx::Error> {
    if let Some(found) = candidates
        .iter()
        .find(|c| c.client_reference.as_deref() == Some(message.outbox_id))
    {
        return Ok(Some(found.carrier_message_id.clone()));
    }
    let how = carrier.profile().lookup_match;
    if how == LookupMatch::Reference {
        return Ok(None);
    }
    let mut conn = shared.state.db.pool().acquire().await?;
    let mut unknown = Vec::new();
    for candidate in candidates {
        if !outbox::is_recorded(&mut conn, carrier.name(), &candidate.carrier_message_id).await? {
            unknown.push(candidate);
        }
    }
    match how {
        LookupMatch::Reference => Ok(None),
        LookupMatch::Text => {
            let sent_text = message.text_with_fallbacks();
            Ok(unknown
                .iter()
                .find(|c| {
                    c.body.as_deref().is_some_and(|b| {
                        !b.is_empty() && (b.as_str() == message.body || b.as_str() == sent_text)
                    })
                })
                .map(|c| c.carrier_message_id.clone()))
        }
        LookupMatch::Unrecorded => Ok(unknown.first().map(|c| c.carrier_message_id.clone())),
    }
}

/// Records the carrier's acceptance ([`outbox::accept`]). Acceptance is a fact: it is recorded
/// whoever holds the row.
async fn accept(
    shared: &Shared,
    job: &outbox::Job,
    carrier: &'static str,
    carrier_message_id: &str,
    status: Option<&'static str>,
) -> Result<(), sqlx::Error> {
    let state = &shared.state;
    let mut tx = state.db.pool().begin().await?;
    let outcome = outbox::accept(
        &mut tx,
        job,
        carrier,
        carrier_message_id,
        status,
        &state.clock.timestamp(),
    )
    .await?;
    // Status reports that arrived before we knew the carrier's id were kept and are applied
    // now; one that says the recipient opted out is a consent change too.
    let mut opted_out = false;
    if outcome == outbox::Accepted::Recorded {
        let codes = store::messages::kept_error_codes(&mut tx, carrier, carrier_message_id).await?;
        let profile = crate::carriers::Carrier::from_name(carrier).map(|c| c.profile());
        for code in codes {
            if profile.and_then(|p| p.error_class(&code)) == Some(ErrorClass::OptedOut) {
                let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
                let recorded = crate::pipeline::record_message_opt_out(
                    state,
                    &mut savepoint,
                    &job.message_id,
                    &code,
                )
                .await;
                opted_out |= crate::pipeline::settle_opt_out(recorded, savepoint).await?;
            }
        }
    }
    tx.commit().await?;
    if opted_out {
        state.metrics.consent_recorded(
            crate::compliance::consent::Kind::OptOut,
            crate::compliance::consent::Source::CarrierReport,
        );
    }
    match outcome {
        outbox::Accepted::Recorded => state.metrics.outbox(carrier, "accepted", "none"),
        outbox::Accepted::DuplicateId => {
            state.metrics.outbox(carrier, "accepted", "none");
            tracing::error!(outbox_id = %job.outbox_id, carrier, "outbox: the carrier's id is already another message's; the message is left unnamed");
        }
        outbox::Accepted::AlreadySettled => {
            state.metrics.outbox(carrier, "late_acceptance", "none");
            tracing::error!(outbox_id = %job.outbox_id, carrier, "outbox: the carrier accepted a row that had already ended; it may have been sent twice");
        }
    }
    Ok(())
}

/// How a row ends without an acceptance.
#[derive(Debug, Clone, Copy)]
enum End {
    /// Refused for good (or out of attempts), with our class: the message is `failed`.
    Failed(&'static str),
    /// Its outcome cannot be known: the message keeps its status, with the code `unconfirmed`.
    Unconfirmed,
}

async fn end(
    shared: &Shared,
    job: &outbox::Job,
    guard: outbox::Guard<'_>,
    how: End,
    code: Option<&str>,
) -> Result<(), sqlx::Error> {
    let state = &shared.state;
    let (row_state, class) = match how {
        End::Failed(class) => ("failed", class),
        End::Unconfirmed => ("unconfirmed", "unconfirmed"),
    };
    let mut tx = state.db.pool().begin().await?;
    let now = state.clock.timestamp();
    let ended =
        outbox::finish(&mut tx, &job.outbox_id, guard, row_state, class, code, &now).await?;
    let mut opted_out = false;
    if ended {
        let (status, message_code) = match how {
            End::Failed(_) => ("failed", code),
            End::Unconfirmed => ("queued", Some("unconfirmed")),
        };
        sqlx::query(
            "UPDATE message SET status = $1, status_error_code = COALESCE($2, status_error_code), status_updated_at = $3 \
             WHERE message_id = $4",
        )
        .bind(status)
        .bind(message_code)
        .bind(&now)
        .bind(&job.message_id)
        .execute(&mut *tx)
        .await?;
        // The carrier refused the send because the recipient opted out with it (Twilio 21610,
        // Telnyx 40300 …): that is a consent change to record like any other.
        if matches!(how, End::Failed("opted_out")) && code != Some("consent") {
            let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
            let recorded = crate::pipeline::record_message_opt_out(
                state,
                &mut savepoint,
                &job.message_id,
                code.unwrap_or("opted_out"),
            )
            .await;
            opted_out = crate::pipeline::settle_opt_out(recorded, savepoint).await?;
        }
    }
    tx.commit().await?;
    if ended {
        let carrier =
            crate::carriers::Carrier::from_name(&job.carrier).map_or("unknown", |c| c.name());
        state.metrics.outbox(carrier, row_state, class);
        if opted_out {
            state.metrics.consent_recorded(
                crate::compliance::consent::Kind::OptOut,
                crate::compliance::consent::Source::CarrierReport,
            );
        }
    } else {
        lost_claim(&job.outbox_id, false);
    }
    Ok(())
}

/// Exponential backoff with equal jitter: half the step fixed, half random, the step doubling
/// from `backoff_base` up to `backoff_max`; never sooner than the carrier's `Retry-After`, which
/// is honoured up to `backoff_max` (a carrier's absurd value must not hold a message for days).
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
    (half + jitter).max(
        retry_after
            .unwrap_or(Duration::ZERO)
            .min(settings.backoff_max),
    )
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
        // An absurd Retry-After is held to the maximum backoff.
        assert_eq!(
            backoff(&settings, 1, Some(Duration::from_secs(u64::MAX))),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn later_never_overflows() {
        let now = Utc::now();
        assert!(later(now, Duration::from_secs(u64::MAX)) > store::timestamp(now));
        assert_eq!(later(now, Duration::ZERO), store::timestamp(now));
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
        assert!(ErrorClass::Throttled.is_retryable());
        assert!(ErrorClass::Transient.is_retryable());
        assert!(!ErrorClass::OptedOut.is_retryable());
        assert!(!ErrorClass::InvalidNumber.is_retryable());
        assert!(!ErrorClass::Permanent.is_retryable());
    }
}
