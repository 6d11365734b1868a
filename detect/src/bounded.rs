//! State with a ceiling: every table a detector keeps is one of these, its capacity a named
//! constant, and what it had to forget is counted.

use std::{
    cmp::{Ordering, Reverse},
    collections::{BinaryHeap, VecDeque},
    hash::Hash,
};

use hashbrown::{Equivalent, HashMap, hash_map};

use crate::time::Millis;

/// When a touch happened: (activity time, touch sequence); the sequence orders touches of the
/// same millisecond.
type Touched = (Millis, u64);

/// A map that forgets its least recently touched entry when full.
///
/// A touch of an existing entry is one hash lookup: the eviction order is a min-heap of
/// (touched, key) records updated lazily. Each entry has exactly one record, never later than
/// its last touch; a record popped that is older than its entry's last touch is pushed back at
/// that touch (the key moves, nothing is copied), so the record popped that matches its
/// entry is the least recently touched entry, as a fully ordered map would give it. Records of
/// removed entries are dropped when they surface, and the heap is rebuilt when they pile up.
#[derive(Debug)]
pub struct BoundedMap<K, V> {
    capacity: usize,
    entries: HashMap<K, Entry<V>>,
    order: BinaryHeap<Reverse<Record<K>>>,
    sequence: u64,
    evicted: u64,
    /// Changes of the set of keys (an entry made, removed, expired or evicted), for what caches
    /// an answer that depends on which keys are present.
    generation: u64,
}

/// A key at a touch, ordered by the touch alone (the sequence makes touches unique).
#[derive(Debug)]
struct Record<K> {
    touched: Touched,
    key: K,
}

impl<K> PartialEq for Record<K> {
    fn eq(&self, other: &Self) -> bool {
        self.touched == other.touched
    }
}

impl<K> Eq for Record<K> {}

impl<K> PartialOrd for Record<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<K> Ord for Record<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.touched.cmp(&other.touched)
    }
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    touched: Touched,
    /// The touch its record in `order` carries.
    recorded: Touched,
}

/// A new entry, its key recorded in the eviction order at its first touch. Cold: most touches
/// find their entry, and out of line the new entry's code (the heap's sift and `make`) stays
/// out of the path every touch runs, which the instruction cache holds between activities.
#[cold]
fn first_touch<K, V>(
    order: &mut BinaryHeap<Reverse<Record<K>>>,
    key: K,
    value: V,
    touched: Touched,
) -> Entry<V> {
    order.push(Reverse(Record { touched, key }));
    Entry {
        value,
        touched,
        recorded: touched,
    }
}

/// Marks an existing entry touched (its record in the order is brought up to date lazily).
fn retouch<V>(entry: &mut Entry<V>, now: Millis, sequence: u64) -> &mut V {
    entry.touched = (entry.touched.0.max(now), sequence);
    &mut entry.value
}

impl<K: Hash + Eq + Clone, V> BoundedMap<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: BinaryHeap::new(),
            sequence: 0,
            evicted: 0,
            generation: 0,
        }
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.get_ref(key)
    }

    /// [`Self::get`] by a borrowed key (a `&str` for a `String` key).
    pub fn get_ref<Q>(&self, key: &Q) -> Option<&V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.entries.get(key).map(|entry| &entry.value)
    }

    /// The entry for `key`, made with `make` when absent, marked touched at `now` (or later,
    /// when an earlier touch was later: activities may arrive slightly out of order).
    pub fn touch(&mut self, key: K, now: Millis, make: impl FnOnce() -> V) -> &mut V {
        let sequence = self.make_room_for(&key);
        match self.entries.entry(key) {
            hash_map::Entry::Occupied(occupied) => retouch(occupied.into_mut(), now, sequence),
            hash_map::Entry::Vacant(vacant) => {
                self.generation += 1;
                let key = vacant.key().clone();
                let entry = first_touch(&mut self.order, key, make(), (now, sequence));
                &mut vacant.insert(entry).value
            }
        }
    }

    /// [`Self::touch`] by a borrowed key (a `&str` for a `String` key): the key is copied only
    /// for a new entry, not on every touch of an existing one.
    pub fn touch_ref<Q>(&mut self, key: &Q, now: Millis, make: impl FnOnce() -> V) -> &mut V
    where
        Q: Hash + Equivalent<K> + ToOwned<Owned = K> + ?Sized,
    {
        self.touch_with(key, Q::to_owned, now, make)
    }

    /// [`Self::touch_ref`] by any borrowed form of the key that hashes as the key does (a
    /// tuple of borrowed parts): `own` makes the key of a new entry.
    pub fn touch_with<Q>(
        &mut self,
        key: &Q,
        own: impl FnOnce(&Q) -> K,
        now: Millis,
        make: impl FnOnce() -> V,
    ) -> &mut V
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let sequence = self.make_room_for(key);
        match self.entries.entry_ref(key) {
            hash_map::EntryRef::Occupied(occupied) => retouch(occupied.into_mut(), now, sequence),
            hash_map::EntryRef::Vacant(vacant) => {
                self.generation += 1;
                let owned = own(key);
                let entry = first_touch(&mut self.order, owned.clone(), make(), (now, sequence));
                &mut vacant.insert_with_key(owned, entry).value
            }
        }
    }

    /// The next touch's sequence, after evicting the least recently touched entry when the map
    /// is full and `key` is not in it.
    fn make_room_for<Q>(&mut self, key: &Q) -> u64
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.sequence += 1;
        if self.entries.len() >= self.capacity && !self.entries.contains_key(key) {
            self.evict_one();
        }
        self.sequence
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let entry = self.entries.remove(key)?;
        self.generation += 1;
        if self.order.len() > 2 * self.entries.len() + 64 {
            self.rebuild_order();
        }
        Some(entry.value)
    }

    /// Forgets what was last touched before `before` (expiry, not eviction: not counted).
    pub fn expire(&mut self, before: Millis) {
        while self
            .order
            .peek()
            .is_some_and(|Reverse(record)| record.touched.0 < before)
        {
            if let Some(key) = self.pop_oldest() {
                self.entries.remove(&key);
                self.generation += 1;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Changes so far of which keys the map holds: equal generations, the same keys.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Entries forgotten because the map was full.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(key, entry)| (key, &entry.value))
    }

    /// Cold: only a full map evicts, and out of line its loop stays out of every touch's code.
    #[cold]
    fn evict_one(&mut self) {
        while !self.order.is_empty() {
            if let Some(key) = self.pop_oldest() {
                self.entries.remove(&key);
                self.evicted += 1;
                self.generation += 1;
                return;
            }
        }
    }

    /// Pops the oldest record: its key when it is its entry's last touch; `None` when it was
    /// stale (pushed back at the entry's last touch) or its entry is gone (dropped).
    fn pop_oldest(&mut self) -> Option<K> {
        let Reverse(Record { touched, key }) = self.order.pop()?;
        let entry = self.entries.get_mut(&key)?;
        if entry.recorded != touched {
            return None;
        }
        if entry.touched == touched {
            return Some(key);
        }
        entry.recorded = entry.touched;
        self.order.push(Reverse(Record {
            touched: entry.touched,
            key,
        }));
        None
    }

    /// One record per entry, at its last touch.
    fn rebuild_order(&mut self) {
        self.order = self
            .entries
            .iter_mut()
            .map(|(key, entry)| {
                entry.recorded = entry.touched;
                Reverse(Record {
                    touched: entry.touched,
                    key: key.clone(),
                })
            })
            .collect();
    }
}

/// Timed items of one key within a sliding span, at most `cap` of them (the oldest go first,
/// counted).
#[derive(Debug)]
pub struct Window<T> {
    items: VecDeque<(Millis, T)>,
    cap: usize,
    dropped: u64,
    /// Whether the items are in time order (they were pushed in order): then the old ones are
    /// at the front, and forgetting them does not read the whole window.
    in_order: bool,
}

impl<T> Window<T> {
    pub fn new(cap: usize) -> Self {
        Self {
            items: VecDeque::new(),
            cap: cap.max(1),
            dropped: 0,
            in_order: true,
        }
    }

    /// Adds an item at `time` and forgets those older than `time - span`.
    pub fn push(&mut self, time: Millis, item: T, span: Millis) {
        self.push_forgetting(time, item, span, drop);
    }

    /// `push`, handing each item it forgets (for the cap or for age) to `forgotten`.
    pub fn push_forgetting(
        &mut self,
        time: Millis,
        item: T,
        span: Millis,
        mut forgotten: impl FnMut(T),
    ) {
        if self.items.len() >= self.cap
            && let Some((_, oldest)) = self.items.pop_front()
        {
            self.dropped += 1;
            forgotten(oldest);
        }
        if self.items.back().is_some_and(|(last, _)| *last > time) {
            self.in_order = false;
        }
        self.items.push_back((time, item));
        let since = time.saturating_sub(span);
        if self.in_order {
            while self.items.front().is_some_and(|(at, _)| *at < since) {
                if let Some((_, old)) = self.items.pop_front() {
                    forgotten(old);
                }
            }
            return;
        }
        // Each item once round the ring, the kept ones back in their order: no copy of the
        // window per push while it is out of order.
        for _ in 0..self.items.len() {
            if let Some((at, old)) = self.items.pop_front() {
                if at >= since {
                    self.items.push_back((at, old));
                } else {
                    forgotten(old);
                }
            }
        }
        self.in_order = self.items.iter().is_sorted_by_key(|(at, _)| *at);
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
        if self.in_order {
            return self.items.front().map(|(time, _)| *time);
        }
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
    fn the_generation_moves_when_the_keys_change_and_only_then() {
        let mut map = BoundedMap::new(1);
        map.touch("a", 10, || ());
        let made = map.generation();
        map.touch("a", 20, || ());
        assert_eq!(map.generation(), made, "a touch of a present key");
        map.touch("b", 30, || ());
        let evicted = map.generation();
        assert!(evicted > made, "a evicted, b made");
        map.expire(40);
        assert!(map.generation() > evicted, "b expired");
        assert!(map.is_empty());
    }

    #[test]
    fn touches_by_reference_share_entries_and_eviction_with_owned_touches() {
        let mut map: BoundedMap<String, u32> = BoundedMap::new(2);
        *map.touch_ref("a", 10, || 0) += 1;
        *map.touch("b".to_owned(), 20, || 0) += 1;
        *map.touch_ref("a", 30, || 0) += 1;
        *map.touch_ref("c", 40, || 0) += 1;
        assert_eq!(map.get_ref("b"), None, "b was touched least recently");
        assert_eq!(
            map.get_ref("a"),
            Some(&2),
            "both touches of a reached one entry"
        );
        assert_eq!(map.get(&"c".to_owned()), Some(&1));
        assert_eq!((map.len(), map.evicted()), (2, 1));
        map.expire(35);
        assert_eq!(map.get_ref("a"), None, "a's last touch was at 30");
        assert_eq!(map.get_ref("c"), Some(&1));
    }

    #[test]
    fn a_window_forgets_what_is_too_old_wherever_it_arrived() {
        let mut window = Window::new(10);
        let mut forgotten = Vec::new();
        for (time, item) in [(100, 'a'), (200, 'b'), (150, 'c'), (210, 'd')] {
            window.push_forgetting(time, item, 100, |old| forgotten.push(old));
        }
        // At 210 the window starts at 110: a (100) goes, c (150) pushed after b stays.
        assert_eq!(forgotten, ['a']);
        assert_eq!(window.first_time(), Some(150));
        window.push_forgetting(260, 'e', 100, |old| forgotten.push(old));
        assert_eq!(forgotten, ['a', 'c']);
        let left: Vec<char> = window.items().map(|(_, item)| *item).collect();
        assert_eq!(left, ['b', 'd', 'e']);
        assert_eq!(window.first_time(), Some(200));
        // Full: the first pushed goes, counted.
        let mut full = Window::new(2);
        for time in [1, 2, 3] {
            full.push_forgetting(time, time, 100, |old| {
                forgotten.push(char::from(b'0' + old as u8));
            });
        }
        assert_eq!((full.len(), full.dropped()), (2, 1));
        assert_eq!(forgotten.last(), Some(&'1'));
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
    fn a_key_removed_and_made_again_is_ordered_by_its_new_touches() {
        let mut map = BoundedMap::new(2);
        map.touch("a", 10, || 1);
        map.touch("b", 20, || 2);
        assert_eq!(map.remove(&"a"), Some(1));
        map.touch("a", 30, || 3);
        // The record of the first "a" (10) is gone with it: "b" is the oldest now.
        map.touch("c", 40, || 4);
        assert_eq!((map.get(&"a"), map.get(&"b")), (Some(&3), None));
        map.expire(35);
        assert_eq!((map.get(&"a"), map.get(&"c")), (None, Some(&4)));
        assert_eq!(map.evicted(), 1);
    }

    #[test]
    fn eviction_follows_the_last_touches_whatever_the_order_of_making() {
        let mut map = BoundedMap::new(100);
        for key in 0..100 {
            map.touch(key, key, || ());
        }
        // Touched again in reverse: 99 is now the least recently touched.
        for key in (0..100).rev() {
            map.touch(key, 1_000 + 99 - key, || ());
        }
        for (new, gone) in (100..150).zip((50..100).rev()) {
            map.touch(new, 2_000 + new, || ());
            assert!(
                map.get(&gone).is_none(),
                "{gone} should have gone for {new}"
            );
        }
        assert!((0..50).all(|key| map.get(&key).is_some()));
        assert_eq!((map.len(), map.evicted()), (100, 50));
    }

    #[test]
    fn the_order_of_removed_keys_does_not_pile_up() {
        let mut map = BoundedMap::new(10);
        for key in 0..10_000 {
            map.touch(key, key, || ());
            map.remove(&key);
        }
        assert!(map.is_empty());
        assert!(map.order.len() <= 64, "{}", map.order.len());
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
