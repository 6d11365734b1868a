//! A profile's key. Its text (`computer:10.0.0.7`, `user:alice`) is what the store, the
//! behaviours and the analysts see; in memory, a key whose text is a subject's prefix and an
//! address in its usual form is held as the `(Subject, IpAddr)` pair it names. Every activity
//! touches one or two address profiles: writing their text and hashing it cost more than the
//! lookup itself (issue #13's detect-cost). Both forms of a key find the same profile: a text
//! is turned into its pair whenever it has one.

use std::{
    cmp::Ordering,
    fmt::{self, Write as _},
    hash::{Hash, Hasher},
    net::IpAddr,
};

use hashbrown::Equivalent;

use super::Subject;

/// A key as the profiles' map holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Key {
    Address(Subject, IpAddr),
    Text(Box<str>),
}

/// A key to look a profile up with, made from its text or its (subject, address) pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRef<'a>(Form<'a>);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form<'a> {
    Address(Subject, IpAddr),
    Text(&'a str),
}

/// An address key is hashed as one number (every activity looks one or two up), a text as its
/// text; the leading byte keeps the forms apart.
impl Hash for Form<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Self::Address(subject, IpAddr::V4(address)) => {
                state.write_u64(u64::from(*subject as u8) << 32 | u64::from(address.to_bits()));
            }
            Self::Address(subject, IpAddr::V6(address)) => {
                state.write_u8(*subject as u8 | 0x80);
                state.write_u128(address.to_bits());
            }
            Self::Text(text) => {
                state.write_u8(0xff);
                text.hash(state);
            }
        }
    }
}

impl<'a> From<&'a str> for KeyRef<'a> {
    fn from(text: &'a str) -> Self {
        if let Some(subject) = Subject::of_key(text)
            && let Some((_, rest)) = text.split_once(':')
            && let Ok(address) = rest.parse::<IpAddr>()
            && Written::of(subject, address).as_str() == text
        {
            return Self(Form::Address(subject, address));
        }
        Self(Form::Text(text))
    }
}

impl<'a> From<&'a String> for KeyRef<'a> {
    fn from(text: &'a String) -> Self {
        Self::from(text.as_str())
    }
}

impl From<(Subject, IpAddr)> for KeyRef<'_> {
    fn from((subject, address): (Subject, IpAddr)) -> Self {
        Self(Form::Address(subject, address))
    }
}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        *self == key.borrowed()
    }
}

impl From<&KeyRef<'_>> for Key {
    fn from(key: &KeyRef<'_>) -> Self {
        match key.0 {
            Form::Address(subject, address) => Self::Address(subject, address),
            Form::Text(text) => Self::Text(text.into()),
        }
    }
}

/// A key hashes as the `KeyRef` that finds it.
impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.borrowed().hash(state);
    }
}

impl fmt::Display for Key {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Address(subject, address) => write!(formatter, "{}:{address}", subject.prefix()),
            Self::Text(text) => formatter.write_str(text),
        }
    }
}

impl Key {
    pub(super) fn borrowed(&self) -> KeyRef<'_> {
        KeyRef(match self {
            Self::Address(subject, address) => Form::Address(*subject, *address),
            Self::Text(text) => Form::Text(text),
        })
    }

    /// Orders keys as their texts are ordered, without writing them on the heap.
    pub(super) fn cmp_text(&self, other: &Self) -> Ordering {
        self.with_text(|mine| other.with_text(|theirs| mine.cmp(theirs)))
    }

    fn with_text<R>(&self, use_text: impl FnOnce(&str) -> R) -> R {
        match self {
            Self::Address(subject, address) => use_text(Written::of(*subject, *address).as_str()),
            Self::Text(text) => use_text(text),
        }
    }
}

/// A key's text written on the stack: the longest is a subject's prefix and an IPv6 address.
struct Written {
    bytes: [u8; 64],
    len: usize,
}

impl Written {
    fn of(subject: Subject, address: IpAddr) -> Self {
        let mut written = Self {
            bytes: [0; 64],
            len: 0,
        };
        // Cannot fail: "computer:" and the longest IPv6 text are 48 bytes.
        let _ = write!(written, "{}:{address}", subject.prefix());
        written
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl fmt::Write for Written {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let end = self.len + text.len();
        let Some(room) = self.bytes.get_mut(self.len..end) else {
            return Err(fmt::Error);
        };
        room.copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::{
        cmp::Ordering,
        hash::{BuildHasher, Hash},
        net::IpAddr,
    };

    use super::{Key, KeyRef, Subject};

    /// A hash by one fixed hasher (foldhash seeds each default builder anew).
    fn hash(key: &impl Hash) -> u64 {
        std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default().hash_one(key)
    }

    #[test]
    fn an_address_text_and_its_pair_are_one_key() {
        for (text, subject, address) in [
            ("computer:10.98.0.7", Subject::Computer, "10.98.0.7"),
            ("dc:0.0.0.0", Subject::Dc, "0.0.0.0"),
            ("user:255.255.255.255", Subject::User, "255.255.255.255"),
            ("computer:fe80::1:ab", Subject::Computer, "fe80::1:ab"),
            ("dc:::ffff:10.0.0.1", Subject::Dc, "::ffff:10.0.0.1"),
        ] {
            let address: IpAddr = address.parse().expect("an address");
            let (from_text, from_pair) = (KeyRef::from(text), KeyRef::from((subject, address)));
            assert_eq!(from_text, from_pair, "{text}");
            let owned = Key::from(&from_text);
            assert!(matches!(owned, Key::Address(..)), "{text}");
            assert_eq!(owned.to_string(), text);
            assert_eq!(hash(&owned), hash(&from_pair), "{text}");
        }
    }

    #[test]
    fn other_texts_stay_text_and_keep_their_exact_form() {
        for text in [
            "user:alice",
            "computer:ws07",
            "network:popular",
            // Not the address's usual text: a key of its own, as it always was.
            "computer:FE80::1",
            "computer:0:0::1",
            "computer:10.0.0.1:445",
            "printer:10.0.0.1",
            "10.0.0.1",
            "",
        ] {
            let key = Key::from(&KeyRef::from(text));
            assert!(matches!(key, Key::Text(_)), "{text}");
            assert_eq!(key.to_string(), text);
            assert_eq!(hash(&key), hash(&KeyRef::from(text)));
        }
        assert_ne!(
            KeyRef::from("computer:FE80::1"),
            KeyRef::from("computer:fe80::1")
        );
    }

    #[test]
    fn keys_order_as_their_texts() {
        let texts = [
            "computer:10.0.0.10",
            "computer:10.0.0.9",
            "computer:9.0.0.1",
            "computer:ws07",
            "computer:fe80::1",
            "dc:10.0.0.1",
            "user:10.0.0.1",
            "user:alice",
            "computer:10.0.0.1",
        ];
        for a in texts {
            for b in texts {
                let (key_a, key_b) = (Key::from(&KeyRef::from(a)), Key::from(&KeyRef::from(b)));
                assert_eq!(key_a.cmp_text(&key_b), a.cmp(b), "{a} against {b}");
            }
        }
        let long = format!("computer:{}", "w".repeat(100));
        let long = Key::from(&KeyRef::from(long.as_str()));
        let address = Key::from(&KeyRef::from("computer:10.0.0.1"));
        assert_eq!(address.cmp_text(&long), Ordering::Less);
        assert_eq!(long.cmp_text(&address), Ordering::Greater);
    }
}
