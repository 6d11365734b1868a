//! Damping's memory of one alert type: the new alerts it raised within the damping window, and
//! how many distinct entities they were about. The count is kept as the window moves: counting
//! it anew for each alert read and sorted the whole window (up to `MAX_DAMPING_WINDOW` keys).

use hashbrown::{HashMap, hash_map::EntryRef};

use crate::{bounded::Window, time::Millis};

/// New alerts of one type remembered for damping (the window holds at most this many).
const MAX_DAMPING_WINDOW: usize = 10_000;

#[derive(Debug)]
pub(crate) struct RecentNew {
    window: Window<String>,
    /// How many of the window's alerts each primary key has.
    keys: HashMap<String, usize>,
}

impl Default for RecentNew {
    fn default() -> Self {
        Self {
            window: Window::new(MAX_DAMPING_WINDOW),
            keys: HashMap::new(),
        }
    }
}

impl RecentNew {
    /// Notes a new alert about `key` at `time`, forgetting those older than `span`; returns how
    /// many other entities the window's alerts are about.
    pub(crate) fn note(&mut self, time: Millis, key: &str, span: Millis) -> usize {
        let keys = &mut self.keys;
        *keys.entry_ref(key).or_insert(0) += 1;
        self.window
            .push_forgetting(time, key.to_owned(), span, |forgotten| {
                if let EntryRef::Occupied(mut count) = keys.entry_ref(forgotten.as_str()) {
                    *count.get_mut() -= 1;
                    if *count.get() == 0 {
                        count.remove();
                    }
                }
            });
        keys.len() - usize::from(keys.contains_key(key))
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_DAMPING_WINDOW, RecentNew};

    #[test]
    fn others_are_the_distinct_entities_still_in_the_window() {
        let mut recent = RecentNew::default();
        let span = 100;
        assert_eq!(recent.note(0, "a", span), 0);
        assert_eq!(recent.note(10, "b", span), 1);
        assert_eq!(recent.note(20, "b", span), 1, "b once, however often");
        assert_eq!(recent.note(30, "c", span), 2);
        assert_eq!(recent.note(40, "a", span), 2, "a itself is not another");
        // At 115, the alerts at 0 (a) and 10 (b) are out; b's at 20 and a's at 40 are not.
        assert_eq!(recent.note(115, "d", span), 3);
        // At 135, b (10, 20) and c (30) are out: a (40) and d (115) remain.
        assert_eq!(recent.note(135, "e", span), 2);
        // Out of order: an alert at 50 arriving after 135 still counts while in the window.
        assert_eq!(recent.note(50, "f", span), 3);
        // At 151, a (40) and f (50) are out: d (115) and e (135) remain.
        assert_eq!(recent.note(151, "g", span), 2);
    }

    #[test]
    fn a_full_window_forgets_its_oldest_alert() {
        let mut recent = RecentNew::default();
        for n in 0..MAX_DAMPING_WINDOW {
            recent.note(0, &n.to_string(), 1_000);
        }
        assert_eq!(recent.note(1, "new", 1_000), MAX_DAMPING_WINDOW - 1);
    }
}
