use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::tail_cache::TailCache;

/// Budget accounting is in KiB so that a 5 GiB part still fits a semaphore's `u32` request.
const UNIT: u64 = 1024;

/// The node-wide bound on bytes held in part buffers. A PATCH reserves room as its bytes
/// arrive (a step at a time, up to a part), so a node never holds more than the budget however
/// many uploads arrive, and a client that sends little holds little. A PATCH that finds the
/// budget spent waits (and stops reading its socket), but only for a bounded time and never
/// past a stop request (see [`BufferBudget::reserve_within`]).
#[derive(Debug, Clone)]
pub struct BufferBudget {
    semaphore: Arc<Semaphore>,
    units: u64,
    /// Copies of tails held in the budget, given back whenever a reservation finds it short.
    tails: TailCache,
}

/// Why a bounded reservation came back without room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoRoom {
    /// More than the whole budget was asked for (refused at start-up; a bug here).
    TooLarge,
    /// The wait bound passed.
    TimedOut,
    /// The request was told to stop (release requested, lock lost, shutdown).
    Stopped,
}

impl BufferBudget {
    /// A budget of `bytes` (at least one KiB). Its size is what `tusk_part_buffer_limit_bytes`
    /// reports: a node has one.
    pub fn new(bytes: u64) -> Self {
        let units = (bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS as u64);
        tusk_metrics::metrics()
            .part_buffer_limit
            .set(gauge_value(units * UNIT));
        Self {
            semaphore: Arc::new(Semaphore::new(units as usize)),
            units,
            tails: TailCache::default(),
        }
    }

    /// The whole budget in bytes.
    pub fn bytes(&self) -> u64 {
        self.units * UNIT
    }

    /// Bytes not reserved right now.
    pub fn available(&self) -> u64 {
        self.semaphore.available_permits() as u64 * UNIT
    }

    /// The copies of tails this node keeps in the budget.
    pub(crate) fn tails(&self) -> &TailCache {
        &self.tails
    }

    /// `units` now, if there is room, after giving back the room of kept tail copies if need be:
    /// bytes on their way to object storage come before copies that only save a read.
    fn try_acquire(&self, units: u32) -> Option<OwnedSemaphorePermit> {
        let semaphore = &self.semaphore;
        semaphore
            .clone()
            .try_acquire_many_owned(units)
            .ok()
            .or_else(|| {
                self.tails
                    .clear()
                    .then(|| semaphore.clone().try_acquire_many_owned(units).ok())
                    .flatten()
            })
    }

    /// Reserve room for `bytes` if there is room right now (waiters queued before get freed
    /// room first).
    pub(crate) fn try_reserve(&self, bytes: u64) -> Option<Reservation> {
        let units = u32::try_from(bytes.div_ceil(UNIT)).ok()?;
        let permit = self.try_acquire(units)?;
        // Counted as a wait of zero: the histogram's quantiles are over all reservations.
        tusk_metrics::metrics().part_buffer_wait.observe(0.0);
        Some(Reservation::new(permit, units))
    }

    /// Reserve room for `bytes` only if it is free without giving back kept tail copies: for
    /// memory that only saves time.
    pub(crate) fn try_reserve_spare(&self, bytes: u64) -> Option<Reservation> {
        let units = u32::try_from(bytes.div_ceil(UNIT)).ok()?;
        let permit = self.semaphore.clone().try_acquire_many_owned(units).ok()?;
        Some(Reservation::new(permit, units))
    }

    /// Reserve room for `bytes`, waiting at most `wait`, and no longer than until `stop`
    /// completes. Waiters are served in order, so a large reservation is not starved by small
    /// ones.
    pub(crate) async fn reserve_within(
        &self,
        bytes: u64,
        wait: Duration,
        stop: impl Future<Output = ()>,
    ) -> Result<Reservation, NoRoom> {
        let units = bytes.div_ceil(UNIT);
        if units > self.units {
            return Err(NoRoom::TooLarge);
        }
        let units = u32::try_from(units).map_err(|_| NoRoom::TooLarge)?;
        let metrics = tusk_metrics::metrics();
        // Without a wait when there is room: the common case costs no timer.
        let permit = match self.try_acquire(units) {
            Some(permit) => {
                metrics.part_buffer_wait.observe(0.0);
                permit
            }
            None => {
                let started = Instant::now();
                // No tail copies from here until the wait is over.
                let _waiting = self.tails.waiting();
                metrics.part_buffer_waiting.inc();
                let waited = tokio::select! {
                    permit = tokio::time::timeout(
                        wait,
                        self.semaphore.clone().acquire_many_owned(units),
                    ) => match permit {
                        Ok(Ok(permit)) => Ok(permit),
                        // The semaphore is never closed.
                        Ok(Err(_)) => Err(NoRoom::Stopped),
                        Err(_) => Err(NoRoom::TimedOut),
                    },
                    () = stop => Err(NoRoom::Stopped),
                };
                metrics.part_buffer_waiting.dec();
                metrics
                    .part_buffer_wait
                    .observe(started.elapsed().as_secs_f64());
                if matches!(waited, Err(NoRoom::TimedOut)) {
                    metrics.part_buffer_wait_timeouts.inc();
                }
                waited?
            }
        };
        Ok(Reservation::new(permit, units))
    }

    /// [`Self::reserve_within`] for work no request stops (finishing an upload, assembling a
    /// final one), as a store error: 503 once `wait` passes.
    pub(crate) async fn reserve_for(
        &self,
        bytes: u64,
        wait: Duration,
        what: &str,
    ) -> tusk_core::Result<Reservation> {
        self.reserve_within(bytes, wait, std::future::pending())
            .await
            .map_err(|why| match why {
                NoRoom::TooLarge => tusk_core::Error::new(
                    tusk_core::ErrorKind::Backend,
                    format!("{what} is larger than the part buffer budget"),
                ),
                NoRoom::TimedOut | NoRoom::Stopped => tusk_core::Error::new(
                    tusk_core::ErrorKind::Unavailable,
                    "this node's upload buffers are full; retry later",
                ),
            })
    }
}

fn gauge_value(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// Room reserved in a [`BufferBudget`], given back (and taken off
/// `tusk_part_buffer_reserved_bytes`) on drop.
#[derive(Debug)]
pub(crate) struct Reservation {
    /// Always some; taken only when absorbed into another reservation.
    permit: Option<OwnedSemaphorePermit>,
    bytes: i64,
}

impl Reservation {
    fn new(permit: OwnedSemaphorePermit, units: u32) -> Self {
        let bytes = gauge_value(u64::from(units) * UNIT);
        tusk_metrics::metrics().part_buffer_reserved.add(bytes);
        Self {
            permit: Some(permit),
            bytes,
        }
    }

    /// Bytes reserved.
    pub(crate) fn bytes(&self) -> u64 {
        u64::try_from(self.bytes).unwrap_or(0)
    }

    /// Take `more` into this reservation (both from the same budget).
    pub(crate) fn absorb(&mut self, mut more: Reservation) {
        if let (Some(permit), Some(other)) = (&mut self.permit, more.permit.take()) {
            permit.merge(other);
            self.bytes += std::mem::take(&mut more.bytes);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        tusk_metrics::metrics().part_buffer_reserved.sub(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn reservations_wait_for_room_and_give_it_back() {
        let budget = BufferBudget::new(10 * 1024);
        let a = budget
            .reserve_within(6 * 1024, LONG, std::future::pending())
            .await
            .unwrap();
        assert_eq!(budget.available(), 4 * 1024);
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move {
                budget
                    .reserve_within(6 * 1024, LONG, std::future::pending())
                    .await
                    .is_ok()
            }
        });
        drop(a);
        assert!(tokio::time::timeout(LONG, waiting).await.unwrap().unwrap());
        let too_large = budget
            .reserve_within(11 * 1024, LONG, std::future::pending())
            .await;
        assert_eq!(too_large.err(), Some(NoRoom::TooLarge));
    }

    #[tokio::test]
    async fn a_wait_for_room_ends_at_its_bound_or_when_told_to_stop() {
        let budget = BufferBudget::new(4 * 1024);
        let _all = budget
            .reserve_within(4 * 1024, LONG, std::future::pending())
            .await
            .unwrap();
        let timed_out = budget
            .reserve_within(1024, Duration::from_millis(50), std::future::pending())
            .await;
        assert_eq!(timed_out.err(), Some(NoRoom::TimedOut));
        let stop = tokio_util::sync::CancellationToken::new();
        let waiting = tokio::spawn({
            let budget = budget.clone();
            let stop = stop.clone();
            async move {
                budget
                    .reserve_within(1024, LONG, stop.cancelled_owned())
                    .await
                    .err()
            }
        });
        stop.cancel();
        assert_eq!(waiting.await.unwrap(), Some(NoRoom::Stopped));
        assert_eq!(budget.available(), 0);
    }

    #[tokio::test]
    async fn absorbed_reservations_are_given_back_together() {
        let budget = BufferBudget::new(8 * 1024);
        let mut a = budget
            .reserve_within(2 * 1024, LONG, std::future::pending())
            .await
            .unwrap();
        let b = budget
            .reserve_within(3 * 1024, LONG, std::future::pending())
            .await
            .unwrap();
        a.absorb(b);
        assert_eq!(a.bytes(), 5 * 1024);
        assert_eq!(budget.available(), 3 * 1024);
        drop(a);
        assert_eq!(budget.available(), 8 * 1024);
    }

    #[tokio::test]
    async fn no_tail_copy_is_kept_while_a_reservation_waits() {
        use crate::buffer::PartBuffer;
        use crate::tail_cache::CachedTail;
        let budget = BufferBudget::new(8 * 1024);
        let held = budget
            .reserve_within(6 * 1024, LONG, std::future::pending())
            .await
            .unwrap();
        let copy_room = budget.try_reserve(1024).unwrap();
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move {
                budget
                    .reserve_within(4 * 1024, LONG, std::future::pending())
                    .await
                    .is_ok()
            }
        });
        tokio::time::timeout(LONG, async {
            while !budget.tails().waited_on() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the reservation waits");
        // A PATCH ends now and would keep its tail: not while someone waits for room.
        let id = tusk_core::UploadId::generate();
        let copy = CachedTail {
            fence: 1,
            parts: 0,
            buffer: PartBuffer::with_capacity(1024),
            reservation: copy_room,
            ahead: None,
        };
        budget.tails().put(&id, copy);
        assert!(
            budget.tails().take(&id, 1, 0, 0).is_none(),
            "a copy was kept"
        );
        drop(held);
        assert!(tokio::time::timeout(LONG, waiting).await.unwrap().unwrap());
    }
}
