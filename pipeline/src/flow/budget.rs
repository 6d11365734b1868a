//! One cap on the bytes that reassembly holds, shared by everything that holds them.

use std::{cell::Cell, fmt, rc::Rc};

/// Shared accounting of buffered bytes: the flow table charges its out-of-order buffers to it,
/// the fragment table its fragments, and the caller (which buffers partial PDUs per stream)
/// charges its own, so one total cap covers all of them.
///
/// Cloning gives another handle on the same account. Single-threaded by design: one budget per
/// shard, like the tables that use it.
#[derive(Clone)]
pub struct MemoryBudget(Rc<Account>);

struct Account {
    limit: usize,
    in_use: Cell<usize>,
    peak: Cell<usize>,
}

impl MemoryBudget {
    /// A budget of `limit` bytes, none in use.
    pub fn new(limit: usize) -> Self {
        Self(Rc::new(Account {
            limit,
            in_use: Cell::new(0),
            peak: Cell::new(0),
        }))
    }

    /// Reserves `bytes` if that keeps the total within the limit; `false` (and nothing reserved)
    /// otherwise. A refusal is the caller's cue to give something up, never to retry in a loop.
    pub fn try_reserve(&self, bytes: usize) -> bool {
        let account = &self.0;
        match account.in_use.get().checked_add(bytes) {
            Some(total) if total <= account.limit => {
                account.in_use.set(total);
                if total > account.peak.get() {
                    account.peak.set(total);
                }
                true
            }
            _ => false,
        }
    }

    /// Gives back `bytes` reserved earlier. Saturates at zero: releasing more than was reserved
    /// is a bug of the caller, which must not turn into a wrapped-around "everything in use".
    pub fn release(&self, bytes: usize) {
        let account = &self.0;
        account
            .in_use
            .set(account.in_use.get().saturating_sub(bytes));
    }

    /// Bytes currently reserved.
    pub fn in_use(&self) -> usize {
        self.0.in_use.get()
    }

    /// The most bytes ever reserved at once (never above [`limit`](Self::limit)).
    pub fn peak(&self) -> usize {
        self.0.peak.get()
    }

    /// The cap given to [`new`](Self::new).
    pub fn limit(&self) -> usize {
        self.0.limit
    }
}

impl fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBudget")
            .field("limit", &self.limit())
            .field("in_use", &self.in_use())
            .field("peak", &self.peak())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_up_to_the_limit_and_tracks_peak() {
        let budget = MemoryBudget::new(100);
        let other = budget.clone();
        assert!(budget.try_reserve(60));
        assert!(!other.try_reserve(41), "the clone shares the account");
        assert!(other.try_reserve(40));
        assert_eq!(budget.in_use(), 100);
        budget.release(70);
        assert_eq!(other.in_use(), 30);
        assert_eq!(other.peak(), 100);
        assert!(!budget.try_reserve(usize::MAX), "overflow is a refusal");
        budget.release(1000);
        assert_eq!(budget.in_use(), 0);
        assert_eq!(budget.limit(), 100);
    }
}
