//! Network name resolution: which computer is behind an address, passively, from what the
//! traffic itself says.
//!
//! - `evidence`: what an activity says about an address (a NetBIOS registration, a DNS answer,
//!   a computer account's Kerberos ticket, an NTLM workstation name...);
//! - `table`: that evidence per address, bounded, and the rules that turn it into a name, a
//!   method and a certainty at a given time;
//! - `resolver`: the sensor's side: feeds the table from each activity, learns which addresses
//!   are domain controllers, and sets the activity's `source_computer` and
//!   `destination_computer`;
//! - `watch`: the hourly share of sources named with HIGH certainty, and when it is too low.
//!
//! The rules, in one place (see [`table::EvidenceTable::resolve`] for the details):
//!
//! 1. Only evidence seen at or before the activity's time counts, and the freshest gives the
//!    name and the method.
//! 2. **HIGH** when nothing contradicts it and either the freshest evidence is *strong* and
//!    within the lease, or another method names the same host within the lease.
//! 3. **LOW** otherwise: a single weak method, evidence older than the lease (it may have moved:
//!    DHCP), or a conflict: another name for the same address within the conflict window of
//!    the freshest evidence (NAT, VPN pools, DHCP churn). Conflicts are also counted as they
//!    arrive.
//!
//! Strong methods are the ones a third party vouches for or that cannot be claimed from
//! elsewhere without the account's key: a KDC's ticket for a computer account sent to the
//! address, an SMB session a server accepted for a computer account, a node status answer or an
//! NTLM CHALLENGE (to an active probe) the host itself sent, a NAS's accounting record for the
//! address it assigned. Weak ones are what a client claims about itself (NTLM workstation and
//! RDP client names, NetBIOS registrations, a Kerberos AS-REQ before any answer) or what may be
//! out of date (DNS records, NetBIOS answers).

pub mod evidence;
pub mod resolver;
pub mod table;
pub mod watch;

pub use evidence::{Evidence, host_key};
pub use resolver::{NnrCounters, Resolver};
pub use table::{EvidenceTable, NnrConfig, Resolution};
pub use watch::{CertaintyAlarm, CertaintyWatch};
