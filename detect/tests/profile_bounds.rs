//! Bounds of the profiles at scale (issue #14): 100,000 users and 50,000 computers, each with a
//! typical profile (a user: three computers, a VPN device and location, five connections; a
//! computer: eight learned items), held in memory under `MAX_RESIDENT_MIB` and encoded for the
//! store under `MAX_ENCODED_BYTES_PER_ENTITY` each. Its own test binary, so the process's
//! resident memory is this test's alone. Slow in a loaded CI: run by `cargo xtask test --full`.

use dcwatch_detect::{profiles::Profiles, profiling, time::DAY};

const USERS: usize = 100_000;
const COMPUTERS: usize = 50_000;
/// The stated memory bound for the 150,000 profiles (the README's figure).
const MAX_RESIDENT_MIB: f64 = 128.0;
/// The stated store bound per entity, before SQLite's own row overhead.
const MAX_ENCODED_BYTES_PER_ENTITY: usize = 160;

fn resident_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .expect("resident pages");
    pages * 4096.0 / (1024.0 * 1024.0)
}

#[test]
#[ignore = "150,000 profiles: run by cargo xtask test --full"]
fn a_hundred_thousand_users_and_fifty_thousand_computers_stay_within_bounds() {
    let before = resident_mib();
    let mut profiles = Profiles::default();
    for user in 0..USERS {
        let key = profiling::user_key(&format!("user{user}"));
        for day in 0..5 {
            let time = day * DAY + user as i64;
            profiles.learn(
                &key,
                time,
                profiling::LOGON,
                &format!("10.1.{}.{}", user % 250, day % 3),
            );
            profiles.vpn_connected(&key, time);
        }
        profiles.learn(&key, 0, profiling::VPN_DEVICE, &format!("dev-{user}"));
        profiles.learn(&key, 0, profiling::VPN_LOCATION, "198.51.100.0/24");
    }
    for computer in 0..COMPUTERS {
        let key = format!("computer:10.2.{}.{}", computer / 250, computer % 250);
        for item in 0..8 {
            profiles.learn(&key, item, "ldap_recon", &format!("category {item}"));
        }
    }
    let changes = profiles.take_changes();
    let resident = resident_mib() - before;
    let encoded: usize = changes
        .upserts
        .iter()
        .map(|(key, bytes)| key.len() + bytes.len())
        .sum();
    let per_entity = encoded / (USERS + COMPUTERS);
    assert_eq!(profiles.len(), USERS + COMPUTERS);
    assert_eq!(profiles.counters()[0].1, 0, "nothing evicted under the cap");
    assert!(resident < MAX_RESIDENT_MIB, "{resident:.1} MiB");
    assert!(
        per_entity < MAX_ENCODED_BYTES_PER_ENTITY,
        "{per_entity} bytes"
    );
}
