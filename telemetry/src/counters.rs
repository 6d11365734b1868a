//! Counters declared once: one declaration gives the struct, the stats file's `name: value`
//! pairs, and the Prometheus metric with its help text (the field's doc comment).
//!
//! ```
//! dcwatch_telemetry::counters! {
//!     /// What the example counts.
//!     #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
//!     pub struct ExampleCounters {
//!         /// Frames seen.
//!         counter frames: u64,
//!         /// Bytes held right now.
//!         gauge held_bytes: u64,
//!     }
//! }
//! use dcwatch_telemetry::CounterSet as _;
//! let counters = ExampleCounters { frames: 3, held_bytes: 10 };
//! assert_eq!(counters.pairs(), [("frames", 3), ("held_bytes", 10)]);
//! assert_eq!(ExampleCounters::METRICS[0].help, "Frames seen.");
//! ```
//!
//! Fields may be `u64` or `AtomicU64` (read with `Relaxed`), whatever implements [`Value`].

use std::{
    borrow::Cow,
    sync::atomic::{AtomicU64, Ordering},
};

/// Whether a value only grows (a Prometheus counter, `_total`) or goes up and down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One declared value: its stats-file name, kind and help.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metric {
    /// The stats file's key; the Prometheus name is derived from it
    /// ([`crate::prometheus::metric_name`]).
    pub name: &'static str,
    pub kind: Kind,
    /// The field's doc comment, on one line.
    pub help: &'static str,
}

/// Values read at one moment, in order: what the stats file, the backend's `Counters` message
/// and `/metrics` all show, so they cannot disagree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    entries: Vec<Entry>,
}

/// One value of a [`Snapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The stats file's key.
    pub name: Cow<'static, str>,
    pub kind: Kind,
    pub help: &'static str,
    pub value: u64,
}

impl Snapshot {
    /// Every field of `set` under its own name.
    pub fn add<S: CounterSet + ?Sized>(&mut self, set: &S) {
        self.add_prefixed("", set);
    }

    /// Every field of `set`, named `PREFIX{name}` (`flow_` for the flow table's counters).
    pub fn add_prefixed<S: CounterSet + ?Sized>(&mut self, prefix: &str, set: &S) {
        for (metric, value) in S::METRICS.iter().zip(set.values()) {
            let name = if prefix.is_empty() {
                Cow::Borrowed(metric.name)
            } else {
                Cow::Owned(format!("{prefix}{}", metric.name))
            };
            self.entries.push(Entry {
                name,
                kind: metric.kind,
                help: metric.help,
                value,
            });
        }
    }

    /// One value declared elsewhere (the kernel's counters, a library's pairs).
    pub fn push(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        kind: Kind,
        help: &'static str,
        value: u64,
    ) {
        self.entries.push(Entry {
            name: name.into(),
            kind,
            help,
            value,
        });
    }

    pub fn extend(&mut self, other: Self) {
        self.entries.extend(other.entries);
    }

    /// Takes `newer`'s values: those already here are replaced in place, the others appended.
    pub fn update(&mut self, newer: Self) {
        for entry in newer.entries {
            match self.entries.iter_mut().find(|old| old.name == entry.name) {
                Some(old) => *old = entry,
                None => self.entries.push(entry),
            }
        }
    }

    /// Adds `other`'s values to those of the same name, appending the others: the sum of the
    /// shards of one table (the workers' flow tables).
    pub fn accumulate(&mut self, other: Self) {
        for entry in other.entries {
            match self.entries.iter_mut().find(|old| old.name == entry.name) {
                Some(old) => old.value += entry.value,
                None => self.entries.push(entry),
            }
        }
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// `(name, value)`, for the stats file.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, u64)> {
        self.entries
            .iter()
            .map(|entry| (entry.name.as_ref(), entry.value))
    }

    /// The value named `name`, if any.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.entries
            .iter()
            .find(|entry| entry.name == name)
            .map(|entry| entry.value)
    }
}

/// A struct declared with [`counters!`](crate::counters).
pub trait CounterSet {
    /// The fields, in declaration order.
    const METRICS: &'static [Metric];

    /// The fields' values, in the order of [`Self::METRICS`].
    fn values(&self) -> Vec<u64>;

    /// `(name, value)` for each field: the stats file's pairs.
    fn pairs(&self) -> Vec<(&'static str, u64)> {
        Self::METRICS
            .iter()
            .zip(self.values())
            .map(|(metric, value)| (metric.name, value))
            .collect()
    }
}

/// What a counter field can be.
pub trait Value {
    fn read(&self) -> u64;
}

impl Value for u64 {
    fn read(&self) -> u64 {
        *self
    }
}

impl Value for AtomicU64 {
    fn read(&self) -> u64 {
        self.load(Ordering::Relaxed)
    }
}

/// Declares a struct of counters and gauges (see the [module](self)): each field is
/// `/// help` then `counter NAME: TYPE` or `gauge NAME: TYPE`; every field is `pub`.
#[macro_export]
macro_rules! counters {
    (
        $(#[$attribute:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $kind:ident $field:ident : $type:ty
            ),* $(,)?
        }
    ) => {
        $(#[$attribute])*
        $vis struct $name {
            $(
                $(#[doc = $doc])*
                pub $field: $type,
            )*
        }

        impl $crate::CounterSet for $name {
            const METRICS: &'static [$crate::Metric] = &[
                $(
                    $crate::Metric {
                        name: stringify!($field),
                        kind: $crate::counters!(@kind $kind),
                        help: $crate::counters::trim_help(concat!($($doc),*)),
                    },
                )*
            ];

            fn values(&self) -> Vec<u64> {
                vec![$($crate::Value::read(&self.$field)),*]
            }
        }
    };
    (@kind counter) => { $crate::Kind::Counter };
    (@kind gauge) => { $crate::Kind::Gauge };
}

/// A doc comment joined from its lines keeps the space each line starts with: drop the first.
#[doc(hidden)]
pub const fn trim_help(help: &'static str) -> &'static str {
    match help.as_bytes() {
        [b' ', ..] => match help.split_at_checked(1) {
            Some((_, rest)) => rest,
            None => help,
        },
        _ => help,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use crate::{CounterSet, Kind, Snapshot};

    crate::counters! {
        /// Atomics, as shared between threads.
        #[derive(Debug, Default)]
        pub(super) struct Shared {
            /// Batches sent
            /// to the backend.
            counter batches: AtomicU64,
            gauge queued: AtomicU64,
        }
    }

    #[test]
    fn declaration_gives_names_kinds_help_and_values() {
        let shared = Shared::default();
        shared
            .batches
            .fetch_add(4, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(shared.pairs(), [("batches", 4), ("queued", 0)]);
        let metrics = Shared::METRICS;
        assert_eq!(metrics[0].help, "Batches sent to the backend.");
        assert_eq!(metrics[0].kind, Kind::Counter);
        assert_eq!(metrics[1].kind, Kind::Gauge);
        assert_eq!(metrics[1].help, "", "no doc comment, no help");
        let mut snapshot = Snapshot::default();
        snapshot.add(&shared);
        snapshot.add_prefixed("spool_", &shared);
        let pairs: Vec<_> = snapshot.pairs().collect();
        assert_eq!(
            pairs,
            [
                ("batches", 4),
                ("queued", 0),
                ("spool_batches", 4),
                ("spool_queued", 0)
            ]
        );
        assert_eq!(snapshot.entries()[2].help, "Batches sent to the backend.");
        assert_eq!(snapshot.get("spool_batches"), Some(4));
        let mut newer = Snapshot::default();
        newer.push("queued", Kind::Gauge, "", 9);
        newer.push("added", Kind::Counter, "", 1);
        snapshot.update(newer);
        assert_eq!(snapshot.get("queued"), Some(9));
        assert_eq!(snapshot.entries()[1].name, "queued", "in place");
        assert_eq!(snapshot.get("added"), Some(1));
    }
}
