use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Budget accounting is in KiB so that a 5 GiB part still fits a semaphore's `u32` request.
const UNIT: u64 = 1024;

/// The node-wide bound on bytes held in part buffers. Every upload reserves a whole part before
/// it fills one, so a node never holds more than the budget however many uploads arrive; a PATCH
/// that finds the budget spent waits (and stops reading its socket) until a part is sent.
#[derive(Debug, Clone)]
pub struct BufferBudget {
    semaphore: Arc<Semaphore>,
    units: u64,
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

    /// Reserve room for `bytes`, waiting for it. `None` only if `bytes` exceeds the whole budget
    /// (refused at start-up, so never in a running server).
    pub(crate) async fn reserve(&self, bytes: u64) -> Option<Reservation> {
        let units = bytes.div_ceil(UNIT);
        if units > self.units {
            return None;
        }
        let started = Instant::now();
        let permit = self
            .semaphore
            .clone()
            .acquire_many_owned(u32::try_from(units).ok()?)
            .await
            .ok()?;
        let metrics = tusk_metrics::metrics();
        metrics
            .part_buffer_wait
            .observe(started.elapsed().as_secs_f64());
        let bytes = gauge_value(units * UNIT);
        metrics.part_buffer_reserved.add(bytes);
        Some(Reservation {
            _permit: permit,
            bytes,
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
    _permit: OwnedSemaphorePermit,
    bytes: i64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        tusk_metrics::metrics().part_buffer_reserved.sub(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_wait_for_room_and_give_it_back() {
        let budget = BufferBudget::new(10 * 1024);
        let a = budget.reserve(6 * 1024).await;
        assert!(a.is_some());
        assert_eq!(budget.available(), 4 * 1024);
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(6 * 1024).await.is_some() }
        });
        drop(a);
        assert!(waiting.await.unwrap_or(false));
        assert!(budget.reserve(11 * 1024).await.is_none());
    }
}
