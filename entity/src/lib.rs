//! Who is who in Active Directory, for dcwatch's detectors and enrichment: the directory's
//! domains and objects (`model`), indexed with their transitive groups and tags (`directory`),
//! read from and written to snapshot files (`snapshot`). Pure: no I/O beyond the readers and
//! writers it is handed.

pub mod directory;
pub mod ldap;
pub mod model;
pub mod replica;
pub mod sensitive;
pub mod snapshot;
pub mod tag;
pub mod uac;

pub use directory::{Directory, TagConfig};
pub use model::{Domain, Object, ObjectKind};
pub use tag::{Tag, TagName};
pub use uac::Uac;

#[cfg(test)]
mod tests;
