//! Who is who in Active Directory, for dcwatch's detectors and enrichment: the directory's
//! domains and objects (`model`), indexed with their transitive groups and tags (`directory`),
//! read from and written to snapshot files (`snapshot`); which computer is behind an address
//! (`nnr`, network name resolution from the traffic's own evidence); and activities matched to
//! the directory's objects (`enrich`). Pure: no I/O beyond the readers and writers it is handed.

pub mod directory;
pub mod enrich;
pub mod ldap;
pub mod model;
pub mod nnr;
pub mod replica;
pub mod sensitive;
pub mod snapshot;
pub mod tag;
pub mod uac;
pub mod wire;

pub use directory::{Directory, TagConfig};
pub use model::{Domain, Object, ObjectKind};
pub use tag::{Tag, TagName};
pub use uac::Uac;

#[cfg(test)]
mod tests;
