//! The process-wide budget of upstream body bytes in flight ([`BodyBudget`]).

use super::*;

/// Memory for upstream bodies in flight, shared by every request of the
/// process. Cheap to clone (clones share the budget).
#[derive(Debug, Clone)]
pub struct BodyBudget {
    units: Arc<Semaphore>,
    total_bytes: usize,
}

/// The budget is counted in units of this many bytes.
pub(super) const BUDGET_UNIT: usize = 64 * 1024;

impl BodyBudget {
    /// A budget of `bytes` (at least one unit).
    pub fn new(bytes: usize) -> Self {
        let units = bytes.div_ceil(BUDGET_UNIT).clamp(1, Semaphore::MAX_PERMITS);
        BodyBudget {
            units: Arc::new(Semaphore::new(units)),
            total_bytes: units * BUDGET_UNIT,
        }
    }

    /// The whole budget in bytes.
    pub fn total_bytes(&self) -> usize {
        self.total_bytes
    }

    /// Bytes currently free.
    pub fn available_bytes(&self) -> usize {
        self.units.available_permits() * BUDGET_UNIT
    }

    /// An empty reservation, to grow as a body arrives.
    pub fn reserve(&self) -> Reservation {
        Reservation {
            units: self.units.clone(),
            held: None,
            held_units: 0,
        }
    }
}

/// A share of the [`BodyBudget`], given back on drop.
#[derive(Debug)]
pub struct Reservation {
    units: Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
    held_units: usize,
}

impl Reservation {
    /// Grows the share to cover `bytes`; `false` when the budget is spent
    /// (nothing is waited for).
    pub fn cover(&mut self, bytes: usize) -> bool {
        let needed = bytes.div_ceil(BUDGET_UNIT);
        if needed <= self.held_units {
            return true;
        }
        let more = needed - self.held_units;
        let Ok(more_u32) = u32::try_from(more) else {
            return false;
        };
        match self.units.clone().try_acquire_many_owned(more_u32) {
            Ok(permit) => {
                match &mut self.held {
                    Some(held) => held.merge(permit),
                    None => self.held = Some(permit),
                }
                self.held_units = needed;
                true
            }
            Err(_) => false,
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.held_units * BUDGET_UNIT
    }
}
