//! The one place "now" is read: the wall clock in the server, a fixed time in tests. The
//! engine's entry points still take `now` as an argument; only the evaluation loop
//! ([`crate::evaluator`]) and the HTTP face hold a [`Clock`] to read it from.

use std::fmt;
use std::sync::Arc;

use modelwatch_core::Timestamp;

/// Reads "now"; cheap to clone.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> Timestamp + Send + Sync>);

impl Clock {
    pub fn new(now: impl Fn() -> Timestamp + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(now))
    }

    pub fn now(&self) -> Timestamp {
        (self.0)()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}
