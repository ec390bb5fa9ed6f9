//! The expiration extension: unfinished uploads expire a configured time after their last
//! PATCH, finished ones after an optional retention; expired uploads answer 410 and a reaper
//! removes them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tusk_core::{ErrorKind, Expiration, UploadId, UploadInfo};

use crate::message::TusResponse;
use crate::{Engine, TusError};

/// The lock that makes one reaper pass run at a time across the cluster. Not a possible
/// generated id (those are 32 hex digits).
const REAPER_LOCK: &str = "_tusk-reaper";

/// The wall clock expiry reads: the system's, or one a test moves by hand.
pub trait Clock: Send + Sync {
    /// The time now.
    fn now(&self) -> SystemTime;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that stands still until it is moved: expiration tests advance it instead of
/// waiting real seconds.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<SystemTime>>);

impl ManualClock {
    /// A clock set to the system's time now.
    pub fn new() -> Self {
        Self(Arc::new(Mutex::new(SystemTime::now())))
    }

    /// Move the clock `by` forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += by;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Unix time in seconds of `clock`, rounded down (for "has it expired yet?").
fn unix_secs(clock: &dyn Clock) -> u64 {
    clock
        .now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Unix time in seconds of `clock`, rounded up: expiries count from here, so an upload never
/// expires before its full period has passed.
fn unix_secs_rounded_up(clock: &dyn Clock) -> u64 {
    clock
        .now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

/// What one reaper pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReapReport {
    /// Uploads the index named as due.
    pub examined: usize,
    /// Uploads removed (terminated).
    pub removed: usize,
    /// Uploads that could not be examined or removed (tried again next pass).
    pub failed: usize,
}

impl Engine {
    /// The engine's time now, in Unix seconds.
    pub(crate) fn now_secs(&self) -> u64 {
        unix_secs(self.clock())
    }

    /// When an unfinished upload created at `created_at` and touched now expires, if uploads
    /// expire at all (and the store keeps expiry times): a period after this touch, but never
    /// past its maximum age.
    pub(crate) fn unfinished_expiry(&self, created_at: Option<u64>) -> Option<u64> {
        self.expiration()?;
        let sliding = self
            .config()
            .expire_after
            .map(|d| unix_secs_rounded_up(self.clock()).saturating_add(d.as_secs()));
        match (sliding, self.age_limit(created_at)) {
            (Some(sliding), Some(limit)) => Some(sliding.min(limit)),
            (sliding, limit) => sliding.or(limit),
        }
    }

    /// When an upload created at `created_at` reaches the maximum age of an unfinished upload
    /// (`max_upload_age`): past it, it expires whatever its sliding expiry says. Uploads
    /// recorded before tusk kept creation times have none.
    fn age_limit(&self, created_at: Option<u64>) -> Option<u64> {
        self.expiration()?;
        let age = self.config().max_upload_age?;
        Some(created_at?.saturating_add(age.as_secs()))
    }

    /// Whether `info`'s time is up at `now`: its expiry has passed, or it is unfinished and
    /// older than the maximum age.
    fn is_due(&self, info: &UploadInfo, now: u64) -> bool {
        info.is_expired(now)
            || (!info.is_complete() && self.age_limit(info.created_at).is_some_and(|at| at <= now))
    }

    /// When a finished upload is removed, if finished uploads are removed at all (and the
    /// store keeps expiry times).
    pub(crate) fn finished_expiry(&self) -> Option<u64> {
        self.expiration()?;
        self.config()
            .finished_retention
            .map(|d| unix_secs_rounded_up(self.clock()).saturating_add(d.as_secs()))
    }

    /// 410 for an upload whose time is up (the reaper may not have removed it yet).
    pub(crate) fn refuse_expired(&self, info: &UploadInfo) -> Result<(), TusError> {
        if self.is_due(info, unix_secs(self.clock())) {
            return Err(TusError::Expired);
        }
        Ok(())
    }

    /// `info` (read under the lock with `fence`), or 410 if its time is up. An unfinished upload
    /// that is due is first checked for having finished after all (its state fell behind its
    /// bytes, as after a Redis failover): a finished file is never answered as gone.
    pub(crate) async fn unexpired(
        &self,
        info: UploadInfo,
        fence: u64,
    ) -> Result<UploadInfo, TusError> {
        if self.refuse_expired(&info).is_ok() {
            return Ok(info);
        }
        if !info.is_complete()
            && let Some(finished) = self.store().recover_finished(&info, fence).await?
        {
            // Its expiry becomes a finished upload's (best effort, as after any PATCH).
            return Ok(self.refresh_expiry(finished, fence).await);
        }
        Err(TusError::Expired)
    }

    /// After a request moved an upload forward: push its expiry to a full period from now (or
    /// to the retention, once finished). An unfinished upload's expiry only moves when it would
    /// move by more than a tenth of the period (at most a minute), so a burst of small PATCHes
    /// does not rewrite it every time.
    pub(crate) async fn refresh_expiry(&self, mut info: UploadInfo, fence: u64) -> UploadInfo {
        let Some(expiration) = self.expiration() else {
            return info;
        };
        let wanted = if info.is_complete() {
            self.finished_expiry()
        } else {
            self.unfinished_expiry(info.created_at)
        };
        let slack = self
            .config()
            .expire_after
            .map_or(0, |d| (d / 10).min(Duration::from_secs(60)).as_secs());
        let close_enough = match (info.expires_at, wanted) {
            (Some(current), Some(wanted)) if !info.is_complete() => {
                wanted.saturating_sub(current) <= slack && wanted >= current
            }
            (current, wanted) => current == wanted,
        };
        if !close_enough {
            // The bytes are committed whatever happens here: a failure only leaves the old
            // expiry in place (and in the Upload-Expires header), it never fails the request.
            match expiration.set_expiry(&info.id, fence, wanted).await {
                Ok(()) => info.expires_at = wanted,
                Err(err) => {
                    tracing::warn!(upload_id = %info.id, error = %err, "could not move the upload's expiry");
                }
            }
        }
        info
    }

    /// One reaper pass over at most `limit` due uploads: each is locked, checked again, and
    /// terminated if its time is really up. `None` if another pass (on any node) is running.
    pub async fn reap(&self, limit: usize) -> Result<Option<ReapReport>, TusError> {
        let reaper = UploadId::parse(REAPER_LOCK).map_err(|_| TusError::UnknownId)?;
        let _turn = match self.locker().lock(&reaper, Duration::ZERO).await {
            Ok(guard) => guard,
            Err(err) if err.kind() == ErrorKind::Locked => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let Some(expiration) = self.expiration() else {
            return Ok(Some(ReapReport::default()));
        };
        let now = unix_secs(self.clock());
        let due = expiration.expired(now.saturating_add(1), limit).await?;
        let mut report = ReapReport {
            examined: due.len(),
            ..ReapReport::default()
        };
        for id in due {
            if self.shutdown_token().is_cancelled() {
                // The rest waits for the next pass, on this node or another.
                break;
            }
            match self.reap_one(expiration, &id, now).await {
                Ok(true) => report.removed += 1,
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(upload_id = %id, error = %err, "could not remove an expired upload");
                    report.failed += 1;
                }
            }
        }
        if report.examined > 0 {
            tracing::info!(
                examined = report.examined,
                removed = report.removed,
                failed = report.failed,
                "expired uploads reaped"
            );
        }
        Ok(Some(report))
    }

    async fn reap_one(
        &self,
        expiration: &dyn Expiration,
        id: &UploadId,
        now: u64,
    ) -> Result<bool, TusError> {
        let guard = self.lock(id).await?;
        let info = match self.store().info_locked(id, guard.fence()).await {
            Ok(info) => info,
            Err(err) if err.kind() == ErrorKind::NotFound => {
                // An index entry without an upload: drop it, or it would come up every pass.
                let _ = expiration.set_expiry(id, guard.fence(), None).await;
                return Ok(false);
            }
            Err(err) => return Err(err.into()),
        };
        if !self.is_due(&info, now) {
            // The index was early (a time stored since, or an update cut short): index the
            // upload's own time, so the entry stops coming up before it is due.
            expiration
                .set_expiry(id, guard.fence(), info.expires_at)
                .await?;
            return Ok(false);
        }
        if !info.is_complete()
            && self
                .store()
                .recover_finished(&info, guard.fence())
                .await?
                .is_some()
        {
            // Finished after all (its state had fallen behind its bytes): never removed as an
            // unfinished upload; it expires as a finished one, if at all.
            let keep_until = self.finished_expiry();
            expiration.set_expiry(id, guard.fence(), keep_until).await?;
            return Ok(false);
        }
        if info.is_complete() && self.config().finished_retention.is_none() {
            // Finished (perhaps by a recovery after its last PATCH) and finished uploads are
            // kept: drop the stale expiry instead.
            expiration.set_expiry(id, guard.fence(), None).await?;
            return Ok(false);
        }
        let Some(termination) = self.termination() else {
            return Err(TusError::Store(tusk_core::Error::new(
                tusk_core::ErrorKind::Backend,
                "the store keeps expiry times but cannot remove uploads",
            )));
        };
        self.remove_upload(termination, id, guard.fence()).await?;
        tusk_metrics::metrics().uploads_expired.inc();
        tracing::info!(upload_id = %id, "expired upload removed");
        Ok(true)
    }
}

/// `Upload-Expires` (an RFC 9110 date) on a response about an unfinished upload that expires.
pub(crate) fn with_expires(resp: TusResponse, info: &UploadInfo) -> TusResponse {
    match info.expires_at {
        Some(at) if !info.is_complete() => {
            let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(at));
            resp.header("Upload-Expires", date)
        }
        _ => resp,
    }
}
