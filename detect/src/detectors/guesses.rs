//! The account names one source tried within a sliding window, each with what the answer said
//! of it (exists, unknown, no answer): what account enumeration over Kerberos, NTLM and LDAP
//! pings counts, and what its alert lists.

use std::collections::VecDeque;

use crate::time::Millis;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Answer {
    Exists,
    Unknown,
    /// Not answered, or answered in a way that says neither.
    Unsaid,
}

#[derive(Debug)]
struct Guess {
    time: Millis,
    key: String,
    name: String,
    answer: Answer,
}

/// Distinct names within `span`, at most `cap` of them (the oldest go first, counted).
#[derive(Debug)]
pub(super) struct Guesses {
    items: VecDeque<Guess>,
    cap: usize,
    dropped: u64,
    /// Names already added to the alert's count.
    pub counted: u64,
}

impl Guesses {
    pub(super) fn new(cap: usize) -> Self {
        Self {
            items: VecDeque::new(),
            cap: cap.max(1),
            dropped: 0,
            counted: 0,
        }
    }

    /// Records `name` at `time` and forgets names older than `time - span`. Returns whether the
    /// name is new within the window. A later answer that says more replaces an unsaid one.
    pub(super) fn add(&mut self, time: Millis, name: &str, answer: Answer, span: Millis) -> bool {
        let since = time.saturating_sub(span);
        let newest = self
            .items
            .iter()
            .map(|guess| guess.time)
            .max()
            .unwrap_or(time);
        let since = since.max(newest.saturating_sub(span));
        self.items.retain(|guess| guess.time >= since);
        let key = name.to_lowercase();
        if let Some(known) = self.items.iter_mut().find(|guess| guess.key == key) {
            if answer != Answer::Unsaid {
                known.answer = answer;
            }
            return false;
        }
        if time < since {
            return false;
        }
        if self.items.len() >= self.cap {
            self.items.pop_front();
            self.dropped += 1;
        }
        self.items.push_back(Guess {
            time,
            key,
            name: name.to_owned(),
            answer,
        });
        true
    }

    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    pub(super) fn count(&self, answer: Answer) -> usize {
        self.items
            .iter()
            .filter(|guess| guess.answer == answer)
            .count()
    }

    pub(super) fn names(&self, answer: Answer) -> impl Iterator<Item = &str> {
        self.items
            .iter()
            .filter(move |guess| guess.answer == answer)
            .map(|guess| guess.name.as_str())
    }

    pub(super) fn first_time(&self) -> Option<Millis> {
        self.items.iter().map(|guess| guess.time).min()
    }

    pub(super) fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_case_blind_and_windowed() {
        let mut guesses = Guesses::new(10);
        assert!(guesses.add(0, "alice", Answer::Unsaid, 100));
        assert!(!guesses.add(10, "ALICE", Answer::Exists, 100));
        assert!(guesses.add(20, "bob", Answer::Unknown, 100));
        assert_eq!(
            (
                guesses.count(Answer::Exists),
                guesses.count(Answer::Unknown)
            ),
            (1, 1)
        );
        // A late (out-of-order) name inside the window is kept; one older than it is not.
        assert!(guesses.add(15, "carol", Answer::Unknown, 100));
        assert!(guesses.add(105, "dave", Answer::Unknown, 100));
        assert_eq!(guesses.len(), 3, "alice went out of the window");
        assert!(!guesses.add(2, "erin", Answer::Unknown, 100));
    }

    #[test]
    fn the_cap_drops_the_oldest_and_counts_it() {
        let mut guesses = Guesses::new(2);
        for (time, name) in [(0, "a"), (1, "b"), (2, "c")] {
            guesses.add(time, name, Answer::Unknown, 100);
        }
        assert_eq!((guesses.len(), guesses.dropped()), (2, 1));
        assert_eq!(
            guesses.names(Answer::Unknown).collect::<Vec<_>>(),
            ["b", "c"]
        );
    }
}
