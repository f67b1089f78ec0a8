//! How many callers are at work right now, as the server counts its requests.
//!
//! The embedded store's writer gathers the writes waiting and lingers up to 3 ms for more, so a
//! burst commits once. A lingering write waits for company, and company can only come from
//! another caller at work: when the server counts its requests and only one is being served, the
//! writer commits at once. Nobody counting (the CLI, tests driving the store directly) keeps the
//! linger, as before.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct AtWork {
    counted: AtomicBool,
    count: AtomicUsize,
}

impl AtWork {
    /// Counts one caller at work until the guard drops.
    pub fn enter(self: &Arc<Self>) -> AtWorkGuard {
        self.counted.store(true, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        AtWorkGuard(Arc::clone(self))
    }

    /// Callers at work now.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Whether another write may come soon: more than one caller at work, or nobody counting.
    pub fn company_likely(&self) -> bool {
        !self.counted.load(Ordering::Relaxed) || self.count() > 1
    }
}

/// One caller at work; dropping it (however the request ends) counts it out.
#[derive(Debug)]
pub struct AtWorkGuard(Arc<AtWork>);

impl Drop for AtWorkGuard {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn company_is_likely_unless_a_counted_caller_is_alone() {
        let at_work = Arc::new(AtWork::default());
        assert!(
            at_work.company_likely(),
            "nobody counting: linger as always"
        );
        let first = at_work.enter();
        assert!(
            !at_work.company_likely(),
            "one request alone: commit at once"
        );
        let second = at_work.enter();
        assert!(at_work.company_likely());
        drop(first);
        assert!(!at_work.company_likely());
        drop(second);
        assert_eq!(at_work.count(), 0);
        assert!(!at_work.company_likely(), "counting, nobody at work");
    }
}
