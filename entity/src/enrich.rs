//! Account enrichment: an activity's account and computers matched to the directory's objects,
//! with their SIDs and tags. It runs where the directory is: the backend on ingest, and a replay
//! given a snapshot (`dcwatch-sensor replay --directory FILE`).

use dcwatch_proto::v1::{Account, Activity, Computer, ResolutionMethod, Tag};

use crate::{Directory, Object, ObjectKind};

/// What [`activity`] matched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Enriched {
    pub account: bool,
    pub source_computer: bool,
    pub destination_computer: bool,
}

/// Fills the SID and tags of the activity's account and of its resolved computers, where the
/// directory knows them; leaves the rest as it is (an existing SID is kept when the directory
/// has none).
pub fn activity(directory: &Directory, activity: &mut Activity) -> Enriched {
    Enriched {
        account: activity
            .account
            .as_mut()
            .is_some_and(|account| enrich_account(directory, account)),
        source_computer: activity
            .source_computer
            .as_mut()
            .is_some_and(|computer| enrich_computer(directory, computer)),
        destination_computer: activity
            .destination_computer
            .as_mut()
            .is_some_and(|computer| enrich_computer(directory, computer)),
    }
}

/// The account an activity's `Account` designates: `name` in whatever form the protocol gave
/// it, in `domain` (a NetBIOS name, a realm) when the name does not carry its own.
pub fn account_object<'a>(directory: &'a Directory, account: &Account) -> Option<&'a Object> {
    let name = account.name.trim();
    if name.is_empty() {
        return None;
    }
    if name.contains(['\\', '@', '/']) || account.domain.is_empty() {
        return directory.account(name);
    }
    directory.account_in(name, Some(&account.domain))
}

/// The computer object a resolved name designates: a DNS name, or a NetBIOS-style host name
/// (the account `NAME$`). A RADIUS resolution names a user, never a computer object.
pub fn computer_object<'a>(directory: &'a Directory, computer: &Computer) -> Option<&'a Object> {
    if computer.method() == ResolutionMethod::Radius {
        return None;
    }
    directory
        .by_dns_name(&computer.name)
        .filter(|object| object.kind == ObjectKind::Computer)
}

fn enrich_account(directory: &Directory, account: &mut Account) -> bool {
    let Some(object) = account_object(directory, account) else {
        return false;
    };
    account.sid.clone_from(&object.sid);
    account.tags = tags(directory, object);
    true
}

fn enrich_computer(directory: &Directory, computer: &mut Computer) -> bool {
    let Some(object) = computer_object(directory, computer) else {
        return false;
    };
    computer.sid.clone_from(&object.sid);
    computer.tags = tags(directory, object);
    true
}

fn tags(directory: &Directory, object: &Object) -> Vec<Tag> {
    directory
        .tags(object)
        .iter()
        .map(|tag| Tag {
            name: tag.name.as_str().to_owned(),
            reason: tag.reason.clone(),
        })
        .collect()
}
