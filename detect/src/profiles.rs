//! What each entity usually does (DETECTIONS.md Part II): a profile per computer, user and
//! domain controller, learned from the activities and from analysts' B-TP closes.
//!
//! A profile is its first and last activity times (learning periods count from the first), the
//! behaviour it was seen with, as 64-bit hashes of `facet\0item` (a SAMR query class, a computer
//! a user logged on from, a VPN device...), and its latest VPN connection times. Hashes keep a
//! profile small and fixed in shape whatever the items' text; an alert quotes the item from the
//! activity, never from the profile.
//!
//! Bounds: `MAX_ITEMS` items per profile (the oldest learned go first) and `MAX_PROFILES`
//! profiles in all (the least recently active go first, in batches); both are counted. The
//! backend persists what changed (`take_changes`) in its store and hands it back at start
//! (`load`): profiles are plain bytes to it (`encode`/`decode`, versioned).

use std::{collections::HashSet, net::IpAddr};

use hashbrown::HashMap;

use self::key::Key;
pub use self::key::KeyRef;
use crate::{bounded::BoundedMap, time::Millis};

mod key;

/// Items one profile keeps.
pub const MAX_ITEMS: usize = 128;
/// Profiles kept in all (computers, users and DCs together).
pub const MAX_PROFILES: usize = 400_000;
/// VPN connection times a user's profile keeps (enough to count MDI's 5 in 30 days).
pub const MAX_VPN_CONNECTIONS: usize = 16;
/// When full, this share of the profiles (the least recently active) goes at once, so eviction
/// costs one sort per `MAX_PROFILES / EVICTION_BATCH_DIVISOR` new entities.
const EVICTION_BATCH_DIVISOR: usize = 64;
/// The encoding's version byte.
const FORMAT: u8 = 1;
/// The key of the record that keeps when dcwatch started watching (the deployment).
pub const META_KEY: &str = "meta:deployment";
/// The network-wide profile: the behaviour many computers show (MDI: "popular queries are
/// filtered"). It is never evicted for inactivity.
pub const POPULAR_KEY: &str = "network:popular";
/// Distinct computers that make one behaviour (an LDAP query class) popular (*ours*: MDI does
/// not give its figure).
pub const POPULAR_SUBJECTS: usize = 5;
/// Behaviours whose computers are being counted toward `POPULAR_SUBJECTS` (the least recently
/// seen go first, counted). The counts live in memory; the verdicts (`POPULAR_KEY`'s items) are
/// stored with the profiles.
pub const MAX_SHARED_BEHAVIOURS: usize = 4_096;

/// Whose profile: a computer (its resolved name, else its address), a user (the account name
/// without domain), a domain controller (its address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    Computer,
    User,
    Dc,
    /// The whole network (`POPULAR_KEY`).
    Network,
}

impl Subject {
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Computer => "computer",
            Self::User => "user",
            Self::Dc => "dc",
            Self::Network => "network",
        }
    }

    /// The profile key of `name` (`computer:ws07`).
    pub fn key(self, name: &str) -> String {
        format!("{}:{}", self.prefix(), name.to_lowercase())
    }

    /// The profile key of the entity at `address`, as `key` gives it for the address's text
    /// (which has no capitals to fold).
    pub fn address_key(self, address: IpAddr) -> String {
        format!("{}:{address}", self.prefix())
    }

    pub fn of_key(key: &str) -> Option<Self> {
        match key.split_once(':')?.0 {
            "computer" => Some(Self::Computer),
            "user" => Some(Self::User),
            "dc" => Some(Self::Dc),
            "network" => Some(Self::Network),
            _ => None,
        }
    }
}

/// A learned item's hash: FNV-1a over `facet\0item` (stable across builds and platforms, so
/// stored profiles stay readable; not a defence against crafted collisions, which would only
/// hide one item behind another).
pub fn item_hash(facet: &str, item: &str) -> u64 {
    let hash = fnv1a(OFFSET_BASIS, facet.bytes().chain(std::iter::once(0)));
    // Asked for every item a detector checks: an ASCII item (nearly all) is folded as it is
    // hashed, the same bytes `to_lowercase` gives it, without a copy.
    if item.is_ascii() {
        fnv1a(hash, item.bytes().map(|byte| byte.to_ascii_lowercase()))
    } else {
        fnv1a(hash, item.to_lowercase().bytes())
    }
}

const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a(mut hash: u64, bytes: impl Iterator<Item = u8>) -> u64 {
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Profile {
    pub first_seen: Millis,
    pub last_seen: Millis,
    /// What it learned, out of line and made at its first item or VPN connection: every
    /// activity touches one or two profiles for their times, most of them (the addresses')
    /// learn nothing, and the map's buckets are 56 bytes instead of 104 with the lists inline
    /// (issue #13: the touches' cache misses).
    learned: Option<Box<Learned>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Learned {
    /// Learned items, oldest first.
    items: Vec<u64>,
    /// The latest VPN connections' times, oldest first.
    vpn: Vec<Millis>,
    /// The first VPN connection (MDI's VPN learning counts from it); 0: none yet.
    vpn_first: Millis,
}

impl Profile {
    fn new(time: Millis) -> Self {
        Self {
            first_seen: time,
            last_seen: time,
            learned: None,
        }
    }

    pub fn knows(&self, facet: &str, item: &str) -> bool {
        self.knows_hash(item_hash(facet, item))
    }

    fn knows_hash(&self, hash: u64) -> bool {
        self.items().contains(&hash)
    }

    fn items(&self) -> &[u64] {
        self.learned.as_ref().map_or(&[], |learned| &learned.items)
    }

    fn vpn(&self) -> &[Millis] {
        self.learned.as_ref().map_or(&[], |learned| &learned.vpn)
    }

    pub fn item_count(&self) -> usize {
        self.items().len()
    }

    /// The first VPN connection (MDI's VPN learning counts from it); 0: none yet.
    pub fn vpn_first(&self) -> Millis {
        self.learned.as_ref().map_or(0, |learned| learned.vpn_first)
    }

    /// Adds an item; true when it was new. A full profile forgets its oldest item (counted by
    /// the caller through the returned eviction flag).
    fn learn(&mut self, hash: u64) -> (bool, bool) {
        if self.knows_hash(hash) {
            return (false, false);
        }
        let items = &mut self.learned.get_or_insert_default().items;
        let evicted = items.len() >= MAX_ITEMS;
        if evicted {
            items.remove(0);
        }
        items.push(hash);
        (true, evicted)
    }

    /// VPN connections within `span` before `now`.
    pub fn vpn_connections_since(&self, since: Millis) -> usize {
        self.vpn().iter().filter(|time| **time >= since).count()
    }

    fn vpn_connected(&mut self, time: Millis) {
        let learned = self.learned.get_or_insert_default();
        if learned.vpn_first == 0 {
            learned.vpn_first = time;
        }
        if learned.vpn.len() >= MAX_VPN_CONNECTIONS {
            learned.vpn.remove(0);
        }
        learned.vpn.push(time);
    }

    /// The profile's bytes: version, times, VPN times, items (little-endian).
    pub fn encode(&self) -> Vec<u8> {
        let (vpn, items) = (self.vpn(), self.items());
        let mut bytes = Vec::with_capacity(1 + 8 * (5 + vpn.len() + items.len()));
        bytes.push(FORMAT);
        for value in [self.first_seen, self.last_seen, self.vpn_first()] {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        for list_len in [vpn.len(), items.len()] {
            bytes.extend_from_slice(&(list_len as u32).to_le_bytes());
        }
        for time in vpn {
            bytes.extend_from_slice(&time.to_le_bytes());
        }
        for item in items {
            bytes.extend_from_slice(&item.to_le_bytes());
        }
        bytes
    }

    /// A profile from its bytes; `None` for bytes of another version, short or too long.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (&format, mut rest) = bytes.split_first()?;
        if format != FORMAT {
            return None;
        }
        let mut take8 = || -> Option<[u8; 8]> {
            let (head, tail) = rest.split_first_chunk::<8>()?;
            rest = tail;
            Some(*head)
        };
        let first_seen = i64::from_le_bytes(take8()?);
        let last_seen = i64::from_le_bytes(take8()?);
        let vpn_first = i64::from_le_bytes(take8()?);
        let (vpn_len, tail) = rest.split_first_chunk::<4>()?;
        let (items_len, tail) = tail.split_first_chunk::<4>()?;
        let vpn_len = u32::from_le_bytes(*vpn_len) as usize;
        let items_len = u32::from_le_bytes(*items_len) as usize;
        if vpn_len > MAX_VPN_CONNECTIONS
            || items_len > MAX_ITEMS
            || tail.len() != 8 * (vpn_len + items_len)
        {
            return None;
        }
        let (vpn, items) = tail.split_at(8 * vpn_len);
        let words = |bytes: &[u8]| -> Vec<[u8; 8]> {
            bytes
                .chunks_exact(8)
                .filter_map(|chunk| chunk.try_into().ok())
                .collect()
        };
        let learned = Learned {
            items: words(items).into_iter().map(u64::from_le_bytes).collect(),
            vpn: words(vpn).into_iter().map(i64::from_le_bytes).collect(),
            vpn_first,
        };
        Some(Self {
            first_seen,
            last_seen,
            // As the profile was before it was stored: nothing learned, nothing out of line.
            learned: (learned != Learned::default()).then(|| Box::new(learned)),
        })
    }
}

/// What changed since the last `take_changes`: profiles to write (key, bytes) and keys to delete.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub upserts: Vec<(String, Vec<u8>)>,
    pub removed: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.removed.is_empty()
    }
}

/// A profile and whether it changed since the last `take_changes`.
#[derive(Debug)]
struct Slot {
    profile: Profile,
    dirty: bool,
}

#[derive(Debug)]
pub struct Profiles {
    profiles: HashMap<Key, Slot>,
    capacity: usize,
    /// When the first activity was seen (MDI's "deployment": LDAP recon waits 10 days from it).
    deployed: Option<Millis>,
    /// The latest activity time seen: the profiles' clock.
    clock: Millis,
    /// The keys of the profiles marked dirty since the last `take_changes` (a key evicted and
    /// made again may be listed twice).
    dirty: Vec<Key>,
    removed: HashSet<String>,
    meta_dirty: bool,
    /// Per behaviour hash, the hashes of the distinct subjects that showed it (up to
    /// `POPULAR_SUBJECTS`).
    shared: BoundedMap<u64, Vec<u64>>,
    evicted_profiles: u64,
    evicted_items: u64,
    undecodable: u64,
}

impl Default for Profiles {
    fn default() -> Self {
        Self::with_capacity(MAX_PROFILES)
    }
}

impl Profiles {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            profiles: HashMap::new(),
            capacity: capacity.max(EVICTION_BATCH_DIVISOR),
            deployed: None,
            clock: Millis::MIN,
            dirty: Vec::new(),
            removed: HashSet::new(),
            meta_dirty: false,
            shared: BoundedMap::new(MAX_SHARED_BEHAVIOURS),
            evicted_profiles: 0,
            evicted_items: 0,
            undecodable: 0,
        }
    }

    pub fn get<'a>(&self, key: impl Into<KeyRef<'a>>) -> Option<&Profile> {
        self.profiles.get(&key.into()).map(|slot| &slot.profile)
    }

    /// Every profile with its key's text.
    pub fn iter(&self) -> impl Iterator<Item = (String, &Profile)> {
        self.profiles
            .iter()
            .map(|(key, slot)| (key.to_string(), &slot.profile))
    }

    pub fn len(&self) -> usize {
        self.profiles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty()
    }

    pub fn deployed(&self) -> Option<Millis> {
        self.deployed
    }

    pub fn clock(&self) -> Millis {
        self.clock
    }

    /// Marks `key` active at `time`, making its profile when it has none.
    pub fn touch<'a>(&mut self, key: impl Into<KeyRef<'a>>, time: Millis) -> &mut Profile {
        let key = key.into();
        if self.deployed.is_none_or(|deployed| time < deployed) {
            self.deployed = Some(time);
            self.meta_dirty = true;
        }
        if time > self.clock {
            self.clock = time;
            self.meta_dirty = true;
        }
        if self.profiles.len() >= self.capacity && !self.profiles.contains_key(&key) {
            self.make_room();
        }
        // One lookup; the key is copied for a new profile only (a text one on the heap).
        let slot = match self.profiles.entry_ref(&key) {
            hashbrown::hash_map::EntryRef::Occupied(occupied) => occupied.into_mut(),
            hashbrown::hash_map::EntryRef::Vacant(vacant) => vacant.insert_with_key(
                Key::from(&key),
                Slot {
                    profile: Profile::new(time),
                    dirty: false,
                },
            ),
        };
        if !slot.dirty {
            slot.dirty = true;
            self.dirty.push(Key::from(&key));
        }
        let profile = &mut slot.profile;
        profile.first_seen = profile.first_seen.min(time);
        profile.last_seen = profile.last_seen.max(time);
        profile
    }

    /// Learns `item` of `facet` for `key` at `time`; true when it was new to the profile.
    pub fn learn<'a>(
        &mut self,
        key: impl Into<KeyRef<'a>>,
        time: Millis,
        facet: &str,
        item: &str,
    ) -> bool {
        let (new, evicted) = self.touch(key, time).learn(item_hash(facet, item));
        if evicted {
            self.evicted_items += 1;
        }
        new
    }

    /// Records a VPN connection of the user `key`.
    pub fn vpn_connected(&mut self, key: &str, time: Millis) {
        self.touch(key, time).vpn_connected(time);
    }

    pub fn knows<'a>(&self, key: impl Into<KeyRef<'a>>, facet: &str, item: &str) -> bool {
        self.profiles
            .get(&key.into())
            .is_some_and(|slot| slot.profile.knows(facet, item))
    }

    /// Counts `subject` among those that showed `item` of `facet`; the `POPULAR_SUBJECTS`th
    /// distinct one makes it popular network-wide (learned by `POPULAR_KEY`'s profile).
    pub fn note_shared(&mut self, subject: &str, time: Millis, facet: &str, item: &str) {
        let hash = item_hash(facet, item);
        if self
            .profiles
            .get(&KeyRef::from(POPULAR_KEY))
            .is_some_and(|slot| slot.profile.knows_hash(hash))
        {
            return;
        }
        let who = item_hash("subject", subject);
        let subjects = self.shared.touch(hash, time, Vec::new);
        if subjects.contains(&who) {
            return;
        }
        subjects.push(who);
        if subjects.len() >= POPULAR_SUBJECTS {
            self.shared.remove(&hash);
            self.learn(POPULAR_KEY, time, facet, item);
        }
    }

    /// Whether `POPULAR_SUBJECTS` distinct subjects showed `item` of `facet`.
    pub fn popular(&self, facet: &str, item: &str) -> bool {
        self.knows(POPULAR_KEY, facet, item)
    }

    /// Evictions: (profiles, items, behaviours counted toward popularity), and stored profiles
    /// that did not decode.
    pub fn counters(&self) -> [(&'static str, u64); 4] {
        [
            ("detect_profiles_evicted", self.evicted_profiles),
            ("detect_profile_items_evicted", self.evicted_items),
            ("detect_profiles_undecodable", self.undecodable),
            ("detect_shared_behaviours_evicted", self.shared.evicted()),
        ]
    }

    /// What changed since the last call, for the store.
    pub fn take_changes(&mut self) -> Changes {
        let mut upserts: Vec<(String, Vec<u8>)> = Vec::with_capacity(self.dirty.len());
        for key in std::mem::take(&mut self.dirty) {
            if let Some(slot) = self.profiles.get_mut(&key)
                && slot.dirty
            {
                slot.dirty = false;
                upserts.push((key.to_string(), slot.profile.encode()));
            }
        }
        if std::mem::take(&mut self.meta_dirty) {
            upserts.push((META_KEY.to_owned(), self.meta().encode()));
        }
        upserts.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut removed: Vec<String> = self.removed.drain().collect();
        removed.sort_unstable();
        Changes { upserts, removed }
    }

    /// Takes back what a store kept; records that do not decode are counted and skipped.
    pub fn load(&mut self, records: impl IntoIterator<Item = (String, Vec<u8>)>) {
        for (key, bytes) in records {
            let Some(profile) = Profile::decode(&bytes) else {
                self.undecodable += 1;
                continue;
            };
            if key == META_KEY {
                self.deployed = Some(profile.first_seen);
                self.clock = self.clock.max(profile.last_seen);
                continue;
            }
            if Subject::of_key(&key).is_none() {
                self.undecodable += 1;
                continue;
            }
            let key = Key::from(&KeyRef::from(&key));
            if !self.profiles.contains_key(&key) {
                self.make_room();
            }
            self.clock = self.clock.max(profile.last_seen);
            self.profiles.insert(
                key,
                Slot {
                    profile,
                    dirty: false,
                },
            );
        }
    }

    /// The deployment and the clock, as a profile-shaped record.
    fn meta(&self) -> Profile {
        Profile {
            first_seen: self.deployed.unwrap_or(self.clock),
            last_seen: self.clock,
            learned: None,
        }
    }

    /// Forgets the least recently active profiles when full, a batch at a time.
    fn make_room(&mut self) {
        if self.profiles.len() < self.capacity {
            return;
        }
        let batch = (self.capacity / EVICTION_BATCH_DIVISOR).max(1);
        let popular = KeyRef::from(POPULAR_KEY);
        let mut by_age: Vec<(Millis, &Key)> = self
            .profiles
            .iter()
            .filter(|(key, _)| key.borrowed() != popular)
            .map(|(key, slot)| (slot.profile.last_seen, key))
            .collect();
        if by_age.is_empty() {
            return;
        }
        let batch = batch.min(by_age.len());
        by_age.select_nth_unstable_by(batch - 1, |a, b| {
            a.0.cmp(&b.0).then_with(|| a.1.cmp_text(b.1))
        });
        let gone: Vec<Key> = by_age[..batch]
            .iter()
            .map(|(_, key)| (*key).clone())
            .collect();
        for key in gone {
            self.profiles.remove(&key);
            self.removed.insert(key.to_string());
            self.evicted_profiles += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_touched_by_address_is_the_profile_of_its_text() {
        let mut profiles = Profiles::default();
        let address: IpAddr = [10, 9, 0, 51].into();
        profiles.touch((Subject::Dc, address), 100);
        profiles.touch(Subject::Dc.address_key(address).as_str(), 200);
        profiles.learn("computer:10.9.0.7", 150, "samr", "enumerated all users");
        assert_eq!(profiles.len(), 2);
        assert_eq!(
            profiles
                .get("dc:10.9.0.51")
                .map(|p| (p.first_seen, p.last_seen)),
            Some((100, 200))
        );
        assert!(profiles.knows(
            (Subject::Computer, [10, 9, 0, 7].into()),
            "samr",
            "enumerated all users"
        ));
        assert!(profiles.get((Subject::User, address)).is_none());
        let keys: Vec<String> = profiles
            .take_changes()
            .upserts
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        assert_eq!(keys, ["computer:10.9.0.7", "dc:10.9.0.51", META_KEY]);
        let mut texts: Vec<String> = profiles.iter().map(|(key, _)| key).collect();
        texts.sort();
        assert_eq!(texts, ["computer:10.9.0.7", "dc:10.9.0.51"]);
    }

    #[test]
    fn an_item_hashes_as_fnv1a_of_its_facet_and_its_lower_case_text() {
        // The hash stored profiles were written with: FNV-1a 64 of `facet\0item` lowercased.
        let stored = |facet: &str, item: &str| {
            let text = format!("{facet}\0{}", item.to_lowercase());
            text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
            })
        };
        for (facet, item) in [
            ("logon", "10.0.0.7"),
            ("samr", "Enumerated ALL users"),
            ("vpn_device", "ÉCOLE-ΣΟΦΙΑΣ"),
            ("logon", ""),
        ] {
            assert_eq!(item_hash(facet, item), stored(facet, item), "{item}");
        }
        assert_eq!(item_hash("samr", "ABC"), item_hash("samr", "abc"));
        assert_ne!(item_hash("samr", "abc"), item_hash("sam", "rabc"));
    }

    #[test]
    fn a_profile_round_trips_through_its_bytes_and_bad_bytes_are_refused() {
        let mut profile = Profile::new(1_000);
        profile.last_seen = 9_000;
        profile.learn(item_hash("samr", "enumerated all users"));
        profile.vpn_connected(5_000);
        let bytes = profile.encode();
        assert_eq!(Profile::decode(&bytes), Some(profile));
        assert_eq!(Profile::decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(Profile::decode(&[]), None);
        let mut other_version = bytes.clone();
        other_version[0] = 9;
        assert_eq!(Profile::decode(&other_version), None);
        let mut longer = bytes;
        longer.push(0);
        assert_eq!(Profile::decode(&longer), None);
    }

    #[test]
    fn items_are_bounded_per_profile_and_the_oldest_go_counted() {
        let mut profiles = Profiles::default();
        for index in 0..=MAX_ITEMS {
            assert!(profiles.learn("computer:ws01", 0, "ldap", &format!("query {index}")));
        }
        assert!(!profiles.knows("computer:ws01", "ldap", "query 0"));
        assert!(profiles.knows("computer:ws01", "ldap", &format!("query {MAX_ITEMS}")));
        assert!(!profiles.learn("computer:ws01", 1, "ldap", "query 5"));
        assert_eq!(profiles.counters()[1], ("detect_profile_items_evicted", 1));
    }

    #[test]
    fn profiles_are_bounded_in_all_and_the_least_recently_active_go_counted() {
        let mut profiles = Profiles::with_capacity(128);
        for index in 0..128 {
            profiles.touch(&format!("user:u{index}"), index);
        }
        profiles.touch("user:u0", 1_000);
        profiles.take_changes();
        profiles.touch("user:new", 2_000);
        assert_eq!(profiles.len(), 127);
        assert!(profiles.get("user:u0").is_some(), "touched recently");
        assert!(profiles.get("user:u1").is_none() && profiles.get("user:u2").is_none());
        assert!(profiles.get("user:u3").is_some());
        assert_eq!(profiles.counters()[0], ("detect_profiles_evicted", 2));
        let changes = profiles.take_changes();
        assert_eq!(changes.removed, ["user:u1", "user:u2"]);
    }

    #[test]
    fn a_behaviour_is_popular_from_its_fifth_subject_and_the_counts_are_bounded() {
        let mut profiles = Profiles::default();
        for n in 0..POPULAR_SUBJECTS - 1 {
            profiles.note_shared(
                &format!("computer:10.0.0.{n}"),
                0,
                "ldap_recon",
                "every trust",
            );
            profiles.note_shared("computer:10.0.0.0", 1, "ldap_recon", "every trust");
        }
        assert!(
            !profiles.popular("ldap_recon", "every trust"),
            "one subject counts once"
        );
        profiles.note_shared("computer:10.0.0.99", 2, "ldap_recon", "every trust");
        assert!(profiles.popular("ldap_recon", "every trust"));
        assert!(!profiles.popular("ldap_recon", "every user"));
        for n in 0..MAX_SHARED_BEHAVIOURS {
            profiles.note_shared("computer:10.0.0.1", 3, "ldap_recon", &format!("class {n}"));
        }
        assert_eq!(
            profiles.counters()[3],
            ("detect_shared_behaviours_evicted", 0)
        );
        profiles.note_shared("computer:10.0.0.1", 4, "ldap_recon", "one more");
        assert_eq!(
            profiles.counters()[3],
            ("detect_shared_behaviours_evicted", 1)
        );
        // The network's profile is never evicted for inactivity.
        let mut small = Profiles::with_capacity(64);
        for n in 0..POPULAR_SUBJECTS {
            small.note_shared(&format!("computer:{n}"), 0, "ldap_recon", "every trust");
        }
        for n in 0..200 {
            small.touch(&format!("user:u{n}"), 10 + n);
        }
        assert!(small.popular("ldap_recon", "every trust"));
    }

    #[test]
    fn changes_carry_what_was_touched_and_load_restores_it() {
        let mut profiles = Profiles::default();
        profiles.learn("computer:ws07", 100, "samr", "enumerated all users");
        profiles.touch("dc:10.98.0.1", 50);
        let changes = profiles.take_changes();
        assert_eq!(
            changes
                .upserts
                .iter()
                .map(|(key, _)| key.as_str())
                .collect::<Vec<_>>(),
            ["computer:ws07", "dc:10.98.0.1", META_KEY]
        );
        assert!(profiles.take_changes().is_empty());
        let mut restored = Profiles::default();
        restored.load(changes.upserts.into_iter().chain([
            ("computer:bad".to_owned(), vec![1, 2]),
            ("nonsense".to_owned(), Profile::new(1).encode()),
        ]));
        assert!(restored.knows("computer:ws07", "samr", "enumerated all users"));
        assert_eq!(restored.deployed(), Some(50));
        assert_eq!(restored.clock(), 100);
        assert_eq!(restored.get("dc:10.98.0.1").map(|p| p.first_seen), Some(50));
        assert_eq!(restored.counters()[2], ("detect_profiles_undecodable", 2));
    }
}
