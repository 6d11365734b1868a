//! State with a ceiling: every table a detector keeps is one of these, its capacity a named
//! constant, and what it had to forget is counted.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    hash::Hash,
};

use crate::time::Millis;

/// A map that forgets its least recently touched entry when full.
#[derive(Debug)]
pub struct BoundedMap<K, V> {
    capacity: usize,
    entries: HashMap<K, Entry<V>>,
    /// (last touched, insertion sequence) → key: the eviction order.
    order: BTreeMap<(Millis, u64), K>,
    sequence: u64,
    evicted: u64,
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    touched: (Millis, u64),
}

impl<K: Hash + Eq + Clone, V> BoundedMap<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: BTreeMap::new(),
            sequence: 0,
            evicted: 0,
        }
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|entry| &entry.value)
    }

    /// The entry for `key`, made with `make` when absent, marked touched at `now` (or later,
    /// when an earlier touch was later: activities may arrive slightly out of order).
    pub fn touch(&mut self, key: K, now: Millis, make: impl FnOnce() -> V) -> &mut V {
        self.sequence += 1;
        let sequence = self.sequence;
        if !self.entries.contains_key(&key) {
            while self.entries.len() >= self.capacity {
                let Some((_, oldest)) = self.order.pop_first() else {
                    break;
                };
                self.entries.remove(&oldest);
                self.evicted += 1;
            }
            self.entries.insert(
                key.clone(),
                Entry {
                    value: make(),
                    touched: (now, sequence),
                },
            );
            self.order.insert((now, sequence), key.clone());
        }
        let Some(entry) = self.entries.get_mut(&key) else {
            unreachable!("inserted above")
        };
        let touched = (entry.touched.0.max(now), sequence);
        self.order.remove(&entry.touched);
        self.order.insert(touched, key);
        entry.touched = touched;
        &mut entry.value
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let entry = self.entries.remove(key)?;
        self.order.remove(&entry.touched);
        Some(entry.value)
    }

    /// Forgets what was last touched before `before` (expiry, not eviction: not counted).
    pub fn expire(&mut self, before: Millis) {
        while let Some(entry) = self.order.first_entry() {
            if entry.key().0 >= before {
                break;
            }
            let key = entry.remove();
            self.entries.remove(&key);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries forgotten because the map was full.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(key, entry)| (key, &entry.value))
    }
}

/// Timed items of one key within a sliding span, at most `cap` of them (the oldest go first,
/// counted).
#[derive(Debug)]
pub struct Window<T> {
    items: VecDeque<(Millis, T)>,
    cap: usize,
    dropped: u64,
}

impl<T> Window<T> {
    pub fn new(cap: usize) -> Self {
        Self {
            items: VecDeque::new(),
            cap: cap.max(1),
            dropped: 0,
        }
    }

    /// Adds an item at `time` and forgets those older than `time - span`.
    pub fn push(&mut self, time: Millis, item: T, span: Millis) {
        if self.items.len() >= self.cap {
            self.items.pop_front();
            self.dropped += 1;
        }
        self.items.push_back((time, item));
        let since = time.saturating_sub(span);
        self.items.retain(|(at, _)| *at >= since);
    }

    pub fn items(&self) -> impl Iterator<Item = &(Millis, T)> {
        self.items.iter()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn first_time(&self) -> Option<Millis> {
        self.items.iter().map(|(time, _)| *time).min()
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_touched_goes_when_full_and_is_counted() {
        let mut map = BoundedMap::new(2);
        *map.touch("a", 10, || 0) += 1;
        *map.touch("b", 20, || 0) += 1;
        *map.touch("a", 30, || 0) += 1;
        *map.touch("c", 40, || 0) += 1;
        assert_eq!(map.get(&"b"), None);
        assert_eq!(map.get(&"a"), Some(&2));
        assert_eq!((map.len(), map.evicted()), (2, 1));
    }

    #[test]
    fn expiry_forgets_by_time_without_counting() {
        let mut map = BoundedMap::new(10);
        map.touch(1, 100, || ());
        map.touch(2, 200, || ());
        map.expire(150);
        assert!(map.get(&1).is_none() && map.get(&2).is_some());
        assert_eq!(map.evicted(), 0);
    }

    #[test]
    fn an_earlier_touch_after_a_later_one_keeps_the_later_time() {
        let mut map = BoundedMap::new(10);
        map.touch("late", 500, || ());
        map.touch("late", 100, || ());
        map.expire(300);
        assert!(map.get(&"late").is_some());
    }

    #[test]
    fn a_window_keeps_its_span_and_its_cap() {
        let mut window = Window::new(3);
        for time in [0, 10, 20, 30] {
            window.push(time, time, 100);
        }
        assert_eq!(window.len(), 3);
        assert_eq!(window.dropped(), 1);
        window.push(200, 200, 100);
        assert_eq!(
            window.items().map(|(time, _)| *time).collect::<Vec<_>>(),
            [200]
        );
    }
}
