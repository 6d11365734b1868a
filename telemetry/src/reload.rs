//! What a SIGHUP made of each configuration key, for both daemons' logs: an operator sees what
//! changed and applied, what did not change, and what waits for a restart.

/// What becomes of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The same in the running configuration and the new one.
    Unchanged,
    /// Changed, and the running daemon takes the change (the text says how).
    Applied(String),
    /// Changed, but only a restart applies it: the running value stays.
    NeedsRestart,
}

/// One key of a reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub key: &'static str,
    pub outcome: Outcome,
}

impl Item {
    /// `Applied(how(new))` when `old != new`, else `Unchanged`.
    pub fn applied<T: PartialEq>(
        key: &'static str,
        old: &T,
        new: &T,
        how: impl FnOnce(&T) -> String,
    ) -> Self {
        let outcome = if old == new {
            Outcome::Unchanged
        } else {
            Outcome::Applied(how(new))
        };
        Self { key, outcome }
    }

    /// `NeedsRestart` when `old != new`, else `Unchanged`.
    pub fn restart<T: PartialEq>(key: &'static str, old: &T, new: &T) -> Self {
        let outcome = if old == new {
            Outcome::Unchanged
        } else {
            Outcome::NeedsRestart
        };
        Self { key, outcome }
    }

    pub fn is_applied(&self) -> bool {
        matches!(self.outcome, Outcome::Applied(_))
    }
}

impl std::fmt::Display for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.outcome {
            Outcome::Unchanged => write!(f, "{}: unchanged", self.key),
            Outcome::Applied(what) => write!(f, "{}: applied ({what})", self.key),
            Outcome::NeedsRestart => {
                write!(f, "{}: changed, not applied: it takes a restart", self.key)
            }
        }
    }
}

/// Whether `key` is applied in `items`.
pub fn applied(items: &[Item], key: &str) -> bool {
    items
        .iter()
        .any(|item| item.key == key && item.is_applied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_say_what_became_of_each_key() {
        let same = Item::applied("a", &1, &1, |_| String::new());
        assert_eq!(same.to_string(), "a: unchanged");
        let changed = Item::applied("a", &1, &2, |new| format!("now {new}"));
        assert_eq!(changed.to_string(), "a: applied (now 2)");
        let restart = Item::restart("b", &"x", &"y");
        assert_eq!(
            restart.to_string(),
            "b: changed, not applied: it takes a restart"
        );
        assert!(applied(&[same, changed.clone()], "a"));
        assert!(!applied(&[restart], "b"));
    }
}
