//! A domain as the directory sync has read it so far: objects by objectGUID and group
//! membership from the groups' `member`, with the objects whose view changed since the last
//! delta. Pure: the sync daemon feeds it entries and sends what [`Replica::take_changes`] gives.
//!
//! Why membership comes from `member`: adding a user to a group changes the group (its `member`
//! and uSNChanged), not the user's uSNChanged, so an incremental sync sees only the group. Why
//! objects are keyed by GUID: a rename or move changes the DN, and groups name members by DN
//! without their own uSNChanged moving.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::{
    ldap::{self, MapError, RawEntry},
    model::{Domain, Object},
};

/// Objects one domain may hold in the replica; beyond it new objects are dropped and counted.
pub const MAX_OBJECTS: usize = 2_000_000;

#[derive(Debug, Default)]
pub struct Replica {
    domain: Domain,
    objects: HashMap<String, Object>,
    /// Lowercase DN → GUID of the object that has it now.
    by_dn: HashMap<String, String>,
    /// Group GUID → its members' lowercase DNs.
    members: HashMap<String, HashSet<String>>,
    /// Member's lowercase DN → GUIDs of the groups listing it.
    member_of: HashMap<String, BTreeSet<String>>,
    dirty: BTreeSet<String>,
    /// GUIDs read since `begin_full`, while a full sync runs.
    seen: Option<HashSet<String>>,
    pub dropped: u64,
}

fn key(dn: &str) -> String {
    dn.to_lowercase()
}

impl Replica {
    pub fn new(domain: Domain) -> Self {
        Self {
            domain,
            ..Self::default()
        }
    }

    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    pub fn domain_mut(&mut self) -> &mut Domain {
        &mut self.domain
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// A full sync starts: objects it does not read again are deleted at [`Self::end_full`].
    pub fn begin_full(&mut self) {
        self.seen = Some(HashSet::new());
    }

    /// A full sync ended: objects it did not read are gone from the directory (deleted, and
    /// their tombstones out of reach or already collected). Returns how many.
    pub fn end_full(&mut self) -> usize {
        let Some(seen) = self.seen.take() else {
            return 0;
        };
        let gone: Vec<String> = self
            .objects
            .iter()
            .filter(|(guid, object)| !object.deleted && !seen.contains(*guid))
            .map(|(guid, _)| guid.clone())
            .collect();
        for guid in &gone {
            self.mark_deleted(guid);
        }
        gone.len()
    }

    /// Reads one search entry (new, changed, renamed or deleted object). A group's `member`
    /// must be complete (ranges fetched) before it comes here.
    pub fn apply(
        &mut self,
        entry: &RawEntry,
        members: Option<Vec<String>>,
    ) -> Result<(), MapError> {
        let mut object = ldap::object(entry, &self.domain.name)?;
        let guid = object.guid.clone();
        if let Some(seen) = &mut self.seen {
            seen.insert(guid.clone());
        }
        if !self.objects.contains_key(&guid) && self.objects.len() >= MAX_OBJECTS {
            self.dropped += 1;
            return Ok(());
        }
        let old_dn = self.objects.get(&guid).map(|old| old.dn.clone());
        if let Some(old_dn) = old_dn.filter(|old| !old.eq_ignore_ascii_case(&object.dn)) {
            self.rename(&guid, &old_dn, &object.dn);
        }
        self.by_dn.insert(key(&object.dn), guid.clone());
        if object.deleted {
            // A tombstone has lost its memberships and, if a group, its members.
            self.set_members(&guid, Vec::new());
            self.forget_memberships(&object.dn);
        } else if let Some(members) = members {
            self.set_members(&guid, members);
        }
        object.member_of = Vec::new();
        let changed = self.objects.get(&guid) != Some(&object);
        self.objects.insert(guid.clone(), object);
        if changed {
            self.dirty.insert(guid);
        }
        Ok(())
    }

    fn rename(&mut self, guid: &str, old_dn: &str, new_dn: &str) {
        let (old, new) = (key(old_dn), key(new_dn));
        if self.by_dn.get(&old).is_some_and(|owner| owner == guid) {
            self.by_dn.remove(&old);
        }
        if let Some(groups) = self.member_of.remove(&old) {
            for group in &groups {
                if let Some(members) = self.members.get_mut(group) {
                    members.remove(&old);
                    members.insert(new.clone());
                }
            }
            self.member_of.insert(new, groups);
        }
        // A renamed group: its members' member_of name it by its new DN.
        if let Some(members) = self.members.get(guid) {
            for member in members {
                if let Some(member_guid) = self.by_dn.get(member) {
                    self.dirty.insert(member_guid.clone());
                }
            }
        }
    }

    fn set_members(&mut self, group: &str, members: Vec<String>) {
        let new: HashSet<String> = members.iter().map(|dn| key(dn)).collect();
        let old = self.members.remove(group).unwrap_or_default();
        for removed in old.difference(&new) {
            if let Some(groups) = self.member_of.get_mut(removed) {
                groups.remove(group);
                if groups.is_empty() {
                    self.member_of.remove(removed);
                }
            }
            self.touch(removed);
        }
        for added in new.difference(&old) {
            self.member_of
                .entry(added.clone())
                .or_default()
                .insert(group.to_owned());
            self.touch(added);
        }
        if !new.is_empty() {
            self.members.insert(group.to_owned(), new);
        }
    }

    fn forget_memberships(&mut self, dn: &str) {
        if let Some(groups) = self.member_of.remove(&key(dn)) {
            for group in groups {
                if let Some(members) = self.members.get_mut(&group) {
                    members.remove(&key(dn));
                }
            }
        }
    }

    fn touch(&mut self, member_dn: &str) {
        if let Some(guid) = self.by_dn.get(member_dn) {
            self.dirty.insert(guid.clone());
        }
    }

    fn mark_deleted(&mut self, guid: &str) {
        let Some(dn) = self.objects.get(guid).map(|object| object.dn.clone()) else {
            return;
        };
        self.set_members(guid, Vec::new());
        self.forget_memberships(&dn);
        if let Some(object) = self.objects.get_mut(guid) {
            object.deleted = true;
        }
        self.dirty.insert(guid.to_owned());
    }

    /// An object with its direct groups filled in (their DNs as they are now).
    fn resolved(&self, object: &Object) -> Object {
        let mut object = object.clone();
        object.member_of = self
            .member_of
            .get(&key(&object.dn))
            .into_iter()
            .flatten()
            .filter_map(|group| self.objects.get(group))
            .map(|group| group.dn.clone())
            .collect();
        object
    }

    /// The objects whose view changed since the last call, membership resolved.
    pub fn take_changes(&mut self) -> Vec<Object> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty
            .iter()
            .filter_map(|guid| self.objects.get(guid))
            .map(|object| self.resolved(object))
            .collect()
    }

    /// Every object, membership resolved (for a snapshot).
    pub fn objects(&self) -> Vec<Object> {
        let mut objects: Vec<Object> = self
            .objects
            .values()
            .map(|object| self.resolved(object))
            .collect();
        objects.sort_by(|a, b| a.dn.cmp(&b.dn));
        objects
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Directory, TagConfig, TagName};

    const BASE: &str = "DC=lab,DC=example";
    /// A domain SID, 21 then three sub-authorities, then the RID, in the binary layout.
    fn sid(rid: u32) -> Vec<u8> {
        let mut bytes = vec![1, 5, 0, 0, 0, 0, 0, 5];
        for sub in [21_u32, 1, 2, 3, rid] {
            bytes.extend_from_slice(&sub.to_le_bytes());
        }
        bytes
    }

    fn entry(cn: &str, class: &str, id: u8, rid: u32) -> RawEntry {
        let mut guid = vec![0; 16];
        guid[0] = id;
        RawEntry::new(format!("CN={cn},CN=Users,{BASE}"))
            .with("objectClass", ["top", class])
            .with("objectGUID", [guid])
            .with("objectSid", [sid(rid)])
            .with("sAMAccountName", [cn])
    }

    fn dn(cn: &str) -> String {
        format!("CN={cn},CN=Users,{BASE}")
    }

    fn replica() -> Replica {
        Replica::new(Domain {
            name: "lab.example".into(),
            netbios_name: "LAB".into(),
            sid: "S-1-5-21-1-2-3".into(),
            ..Domain::default()
        })
    }

    fn directory(replica: &Replica) -> Directory {
        Directory::new(
            vec![replica.domain().clone()],
            replica.objects(),
            &TagConfig::default(),
            0,
        )
    }

    #[test]
    fn membership_follows_groups_renames_and_deletions() {
        let mut replica = replica();
        let admins = entry("Domain Admins", "group", 1, 512);
        replica
            .apply(&admins, Some(vec![dn("IT-Admins")]))
            .expect("apply");
        let it = entry("IT-Admins", "group", 2, 1300);
        replica
            .apply(&it, Some(vec![dn("it_admin")]))
            .expect("apply");
        replica
            .apply(&entry("it_admin", "user", 3, 1301), None)
            .expect("apply");
        assert_eq!(replica.take_changes().len(), 3);
        let found = directory(&replica);
        let admin = found.account("it_admin").expect("it_admin");
        assert!(found.has_tag(admin, TagName::Sensitive));
        assert_eq!(
            found.tags(admin)[0].reason,
            "member of Domain Admins via IT-Admins"
        );

        // Rename the user: groups keep naming it (their uSNChanged does not move).
        let mut renamed = entry("it_admin", "user", 3, 1301);
        renamed.dn = dn("it_admin2");
        replica.apply(&renamed, None).expect("apply");
        let changes = replica.take_changes();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].member_of, [dn("IT-Admins")]);

        // Rename the group: its member's direct group DN changes without the member changing.
        let mut group = entry("IT-Admins", "group", 2, 1300);
        group.dn = dn("IT-Ops");
        replica
            .apply(&group, Some(vec![dn("it_admin2")]))
            .expect("apply");
        let changes = replica.take_changes();
        let member = changes
            .iter()
            .find(|object| object.sam_account_name == "it_admin")
            .expect("the member is re-sent");
        assert_eq!(member.member_of, [dn("IT-Ops")]);

        // Take the group out of Domain Admins: the group changes, so does its view.
        replica.apply(&admins, Some(Vec::new())).expect("apply");
        let changes = replica.take_changes();
        assert!(changes.iter().any(|object| object.sam_account_name == "IT-Admins"
            && object.member_of.is_empty()));
        assert!(
            !directory(&replica)
                .account("it_admin")
                .is_some_and(|admin| directory(&replica).has_tag(admin, TagName::Sensitive))
        );

        // A tombstone: deleted, out of its groups.
        let tombstone = entry("it_admin", "user", 3, 1301).with("isDeleted", ["TRUE"]);
        replica.apply(&tombstone, None).expect("apply");
        let changes = replica.take_changes();
        assert!(
            changes
                .iter()
                .any(|object| object.deleted && object.member_of.is_empty())
        );
    }

    #[test]
    fn a_full_sync_deletes_what_it_no_longer_reads() {
        let mut replica = replica();
        replica
            .apply(&entry("alice", "user", 1, 1104), None)
            .expect("apply");
        replica
            .apply(&entry("bob", "user", 2, 1105), None)
            .expect("apply");
        replica.take_changes();
        replica.begin_full();
        replica
            .apply(&entry("alice", "user", 1, 1104), None)
            .expect("apply");
        assert_eq!(replica.end_full(), 1);
        let changes = replica.take_changes();
        assert_eq!(changes.len(), 1, "an unchanged object is not re-sent");
        assert!(changes[0].deleted && changes[0].sam_account_name == "bob");
    }
}
