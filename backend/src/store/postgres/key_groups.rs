//! Migration 8's index keys: a block's keys in groups, a row a group, not a row a key.
//!
//! A row and its index entry cost PostgreSQL about 80 bytes whatever they hold (a 24-byte
//! tuple header, line pointers, an entry in index pages some 70% full), and nine in ten of
//! the compacted tier's keys are an address in one block with 4 bytes of postings. So a
//! block's keys are grouped by their *bucket*, the key without its last two characters: the
//! bucket is written once, each key's suffix and postings after it, and the B-tree is over
//! the buckets. A key is still found in one index probe (its bucket), reading the rows of
//! the blocks holding a key of its bucket, and checked exactly in SQL (its suffix among the
//! row's); a prefix search still reads a range of the index, a LIMIT bounding it.

use std::collections::BTreeMap;

use crate::store::blocks;

/// Opens each suffix in a group's `keys` column: never in a suffix, so that
/// `SEPARATOR suffix SEPARATOR` is found in `keys || SEPARATOR` only where it is one of them.
/// (Keys are PostgreSQL text, which holds no NUL.)
pub(super) const SEPARATOR: char = '\u{1}';
/// The characters of a key's kind (`a:`, `i:`, `p:`), always in its bucket.
const KIND_CHARS: usize = 2;
/// The characters a suffix takes at most from the end of its key.
const SUFFIX_CHARS: usize = 2;

/// The blocks holding the key, given as [`key_value`]: those whose group of its bucket has its
/// suffix. The value's last [`SEPARATOR`] splits it; computed in Rust, not SQL, so that the
/// split never depends on the server's encoding.
pub(super) const HOLDING_KEY: &str = r"id IN (SELECT block_id FROM activity_key_groups
     WHERE bucket = left(?::TEXT, -length(substring(?::TEXT FROM '\x01[^\x01]*$')))
     AND strpos(keys || chr(1), substring(?::TEXT FROM '\x01[^\x01]*$') || chr(1)) > 0)";

/// `key` as its bucket and its suffix: its last two characters or fewer, none of its kind's
/// nor a [`SEPARATOR`].
pub(super) fn split(key: &str) -> (&str, &str) {
    let kind_end = key
        .char_indices()
        .nth(KIND_CHARS)
        .map_or(key.len(), |(at, _)| at);
    let mut start = key.len();
    for (at, character) in key[kind_end..].char_indices().rev().take(SUFFIX_CHARS) {
        if character == SEPARATOR {
            break;
        }
        start = kind_end + at;
    }
    key.split_at(start)
}

/// `key`'s bucket, a [`SEPARATOR`] and its suffix: the one value [`HOLDING_KEY`] takes.
pub(super) fn key_value(key: &str) -> String {
    let (bucket, suffix) = split(key);
    format!("{bucket}{SEPARATOR}{suffix}")
}

/// What `strpos` finds in a group's `keys || SEPARATOR` if it holds `suffix`.
pub(super) fn needle(suffix: &str) -> String {
    format!("{SEPARATOR}{suffix}{SEPARATOR}")
}

/// The buckets of the keys matching the LIKE `pattern`: a key starts with the pattern's
/// literal start (up to its first wildcard), and its bucket is at most two characters shorter
/// than it, its kind's kept. So its bucket matches the first (a LIKE pattern of the buckets as
/// long as that start or longer) or is one of the two others (that start cut by one or two).
pub(super) fn buckets_matching(pattern: &str) -> (String, [String; 2]) {
    let mut literal = String::new();
    let mut characters = pattern.chars();
    while let Some(character) = characters.next() {
        match character {
            '%' | '_' => break,
            '\\' => match characters.next() {
                Some(escaped) => literal.push(escaped),
                None => break,
            },
            _ => literal.push(character),
        }
    }
    let count = literal.chars().count();
    let cut = |by: usize| -> String {
        let keep = count.saturating_sub(by).max(KIND_CHARS.min(count));
        literal.chars().take(keep).collect()
    };
    (
        format!("{}%", crate::store::alerts::like_escaped(&literal)),
        [cut(SUFFIX_CHARS), cut(1)],
    )
}

/// A row of `activity_key_groups` (without its block).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Group {
    pub(super) bucket: String,
    /// Each key's suffix after a [`SEPARATOR`], in the keys' order.
    pub(super) keys: String,
    /// Each key's postings in the same order, a varint of its length plus one before it
    /// (0: the key names no frames, as a format 1 block's keys).
    pub(super) postings: Vec<u8>,
}

/// A block's `keys` and their postings grouped by bucket, in bucket order.
pub(super) fn groups<'k>(
    keys: impl IntoIterator<Item = (&'k str, Option<&'k [u8]>)>,
) -> Vec<Group> {
    let mut by_bucket: BTreeMap<&str, Group> = BTreeMap::new();
    for (key, postings) in keys {
        let (bucket, suffix) = split(key);
        let group = by_bucket.entry(bucket).or_insert_with(|| Group {
            bucket: bucket.to_owned(),
            keys: String::new(),
            postings: Vec::new(),
        });
        group.keys.push(SEPARATOR);
        group.keys.push_str(suffix);
        match postings {
            Some(postings) => {
                blocks::put_varint(&mut group.postings, postings.len() as u64 + 1);
                group.postings.extend_from_slice(postings);
            }
            None => group.postings.push(0),
        }
    }
    by_bucket.into_values().collect()
}

/// The postings of the key whose suffix is `suffix` in a group's `keys` and `postings`;
/// `None` if the group lacks it or it names no frames.
pub(super) fn postings_of<'p>(
    keys: &str,
    mut postings: &'p [u8],
    suffix: &str,
) -> Result<Option<&'p [u8]>, blocks::BlockError> {
    for held in keys.split(SEPARATOR).skip(1) {
        let length = blocks::take_varint(&mut postings)?;
        let bytes = match length.checked_sub(1) {
            Some(length) => {
                let length = usize::try_from(length).map_err(|_| blocks::BlockError::Malformed)?;
                let (bytes, rest) = postings
                    .split_at_checked(length)
                    .ok_or(blocks::BlockError::Malformed)?;
                postings = rest;
                Some(bytes)
            }
            None => None,
        };
        if held == suffix {
            return Ok(bytes);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suffix_is_the_last_two_characters_after_the_kind_without_a_separator() {
        assert_eq!(split("i:10.1.2.34"), ("i:10.1.2.", "34"));
        assert_eq!(split("a:jos\u{e9}"), ("a:jo", "s\u{e9}"));
        assert_eq!(split("a:x"), ("a:", "x"));
        assert_eq!(split("a:"), ("a:", ""));
        assert_eq!(split("a"), ("a", ""));
        assert_eq!(split("a:b\u{1}c"), ("a:b\u{1}", "c"));
        assert_eq!(split("a:bc\u{1}"), ("a:bc\u{1}", ""));
    }

    #[test]
    fn every_key_is_found_in_its_group_with_its_postings_and_no_other() {
        let keys: Vec<(String, Option<Vec<u8>>)> = [
            ("a:alice", Some(vec![1, 2, 3])),
            ("a:alicia", Some(vec![])),
            ("a:ali", None),
            ("a:al", Some(vec![9; 200])),
            ("i:10.0.0.1", Some(vec![4])),
            ("i:10.0.0.12", Some(vec![5, 6])),
            ("a:x\u{1}y", Some(vec![7])),
        ]
        .into_iter()
        .map(|(key, postings)| (key.to_owned(), postings))
        .collect();
        let groups = groups(
            keys.iter()
                .map(|(key, postings)| (key.as_str(), postings.as_deref())),
        );
        for (key, postings) in &keys {
            let (bucket, suffix) = split(key);
            let holding: Vec<_> = groups
                .iter()
                .filter(|group| {
                    group.bucket == bucket
                        && format!("{}{SEPARATOR}", group.keys).contains(&needle(suffix))
                })
                .collect();
            assert_eq!(holding.len(), 1, "{key}");
            let group = holding[0];
            assert_eq!(
                postings_of(&group.keys, &group.postings, suffix).expect("well formed"),
                postings.as_deref(),
                "{key}"
            );
        }
        let group = groups
            .iter()
            .find(|group| group.bucket == "a:ali")
            .expect("alice's bucket");
        assert_eq!(
            postings_of(&group.keys, &group.postings, "zz").expect("well formed"),
            None
        );
    }

    #[test]
    fn cut_postings_are_malformed_not_a_panic() {
        let group = &groups([("a:bob", Some(&[1_u8, 2, 3][..]))])[0];
        let cut = &group.postings[..group.postings.len() - 1];
        assert!(postings_of(&group.keys, cut, "ob").is_err());
        assert!(postings_of(&group.keys, &[], "ob").is_err());
    }

    #[test]
    fn a_key_matching_a_pattern_has_one_of_the_buckets_matching_it() {
        for (pattern, longer, shorter) in [
            ("a:alice%", "a:alice%", ["a:ali", "a:alic"]),
            ("a:al%", "a:al%", ["a:", "a:a"]),
            ("a:%", "a:%", ["a:", "a:"]),
            ("a:o'b_ien%", "a:o'b%", ["a:o", "a:o'"]),
            (r"a:a\_bcd%", r"a:a\_bcd%", ["a:a_b", "a:a_bc"]),
            ("i:10.%", "i:10.%", ["i:1", "i:10"]),
        ] {
            assert_eq!(
                buckets_matching(pattern),
                (longer.to_owned(), shorter.map(str::to_owned)),
                "{pattern}"
            );
        }
        // Each key's bucket, as `split` gives it, is among them.
        for key in ["a:alice", "a:alicia", "a:alic", "a:alice$"] {
            let (bucket, _) = split(key);
            let (longer, shorter) = buckets_matching("a:alic%");
            assert!(
                bucket.starts_with(longer.trim_end_matches('%'))
                    || shorter.contains(&bucket.to_owned()),
                "{key}"
            );
        }
    }
}
