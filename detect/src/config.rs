//! What an operator tunes: thresholds per detection (MDI's high, medium, low), exclusions per
//! detection and global, and the facts the traffic cannot tell (DC and DNS-server addresses,
//! NAT/VPN/VDI subnets, honeytokens). The backend reads it as its `[detect]` section.

use std::{collections::BTreeMap, fmt, net::IpAddr, str::FromStr};

use serde::{Deserialize, Deserializer, de};

use crate::{
    catalogue,
    time::{MINUTE, Millis},
};

/// MDI's alert thresholds: `high` (the default) waits for learning periods and holds; `medium`
/// and `low` skip learning; `low` also skips holds (the pass-the-ticket hold) and is what a
/// capture's replay uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Threshold {
    #[default]
    High,
    Medium,
    Low,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The threshold of every detection without one in `thresholds`.
    pub threshold: Threshold,
    /// By alert type (`brute_force = "low"`).
    pub thresholds: BTreeMap<String, Threshold>,
    /// Excluded from every detection.
    pub exclusions: Exclusions,
    /// Excluded from one detection, by alert type.
    pub exclude: BTreeMap<String, Exclusions>,
    /// Domain controllers' addresses, for when the directory is not synced.
    pub dc_addresses: Vec<IpAddr>,
    /// DNS servers that may transfer zones (DCs always may).
    pub dns_servers: Vec<IpAddr>,
    /// NAT, VPN and VDI subnets: one address there is many computers, so pass-the-ticket does
    /// not fire on them.
    pub nat_subnets: Vec<Subnet>,
    /// Accounts and computers that no one should use.
    pub honeytokens: Vec<String>,
    /// DNS suffixes of the forest (queries inside it are never "suspicious communication");
    /// the directory's domains are added.
    pub forest_domains: Vec<String>,
    /// How long a pass-the-ticket alert is held before it is raised (MDI: 2 hours), at
    /// thresholds high and medium.
    pub pass_the_ticket_hold_minutes: Option<u32>,
    /// Damping of alerts of one type repeating across many entities.
    pub damping: Damping,
}

/// MDI: "an increase of alerts of the exact same type typically reduces the importance of the
/// alert". A new alert of a type that already opened alerts for `entities` other entities
/// within `window_hours` is lowered one severity step (high to medium, else low) and to low
/// confidence, with a `damped` detail saying why (*ours*: MDI does not give its figures).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Damping {
    /// 0 switches damping off.
    pub entities: u32,
    pub window_hours: u32,
}

/// Damping's defaults (*ours*): 20 other entities within a day.
const DEFAULT_DAMPING_ENTITIES: u32 = 20;
const DEFAULT_DAMPING_WINDOW_HOURS: u32 = 24;

impl Default for Damping {
    fn default() -> Self {
        Self {
            entities: DEFAULT_DAMPING_ENTITIES,
            window_hours: DEFAULT_DAMPING_WINDOW_HOURS,
        }
    }
}

/// Who is excluded: accounts in any name form, computers by name, and subnets of source
/// addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Exclusions {
    pub accounts: Vec<String>,
    pub computers: Vec<String>,
    pub subnets: Vec<Subnet>,
}

impl Exclusions {
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty() && self.computers.is_empty() && self.subnets.is_empty()
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// MDI's default pass-the-ticket hold.
const DEFAULT_PASS_THE_TICKET_HOLD_MINUTES: u32 = 120;

impl Config {
    /// What a replay of a capture uses: every threshold low, nothing held.
    pub fn test_mode() -> Self {
        Self {
            threshold: Threshold::Low,
            ..Self::default()
        }
    }

    /// Refuses alert types the catalogue does not know (a typo would silently tune nothing).
    pub fn check(&self) -> Result<(), ConfigError> {
        for name in self.thresholds.keys().chain(self.exclude.keys()) {
            if !catalogue::is_type(name) {
                return Err(ConfigError(format!(
                    "detect: no alert type {name:?} (the types are listed in the README's detection table)"
                )));
            }
        }
        Ok(())
    }

    pub fn threshold(&self, type_name: &str) -> Threshold {
        self.thresholds
            .get(type_name)
            .copied()
            .unwrap_or(self.threshold)
    }

    pub fn pass_the_ticket_hold(&self) -> Millis {
        if self.threshold("pass_the_ticket") == Threshold::Low {
            return 0;
        }
        let minutes = self
            .pass_the_ticket_hold_minutes
            .unwrap_or(DEFAULT_PASS_THE_TICKET_HOLD_MINUTES);
        Millis::from(minutes) * MINUTE
    }
}

/// An IPv4 or IPv6 prefix, `10.0.0.0/8` (a bare address is a /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subnet {
    network: IpAddr,
    prefix: u8,
}

impl Subnet {
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Subnet {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (address, prefix) = text.split_once('/').unwrap_or((text, ""));
        let network: IpAddr = address
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not an address or a prefix (10.0.0.0/8)"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|prefix| *prefix <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?
        };
        Ok(Self { network, prefix })
    }
}

impl<'de> Deserialize<'de> for Subnet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn subnets_contain_their_addresses_only() {
        let lan: Subnet = "10.1.0.0/16".parse().expect("a prefix");
        assert!(lan.contains(address("10.1.200.3")));
        assert!(!lan.contains(address("10.2.0.1")));
        assert!(!lan.contains(address("fd00::1")));
        let host: Subnet = "fd00::5".parse().expect("an address");
        assert!(host.contains(address("fd00::5")) && !host.contains(address("fd00::6")));
        let all: Subnet = "0.0.0.0/0".parse().expect("a prefix");
        assert!(all.contains(address("192.0.2.1")));
        assert!("10.0.0.0/33".parse::<Subnet>().is_err());
        assert!("ten/8".parse::<Subnet>().is_err());
    }

    #[test]
    fn unknown_alert_types_are_refused_by_name() {
        let mut config = Config::default();
        config
            .thresholds
            .insert("brute_forse".into(), Threshold::Low);
        assert!(
            config
                .check()
                .is_err_and(|error| error.to_string().contains("brute_forse"))
        );
        config.thresholds.clear();
        config
            .thresholds
            .insert("brute_force".into(), Threshold::Low);
        assert_eq!(config.check(), Ok(()));
        assert_eq!(config.threshold("brute_force"), Threshold::Low);
        assert_eq!(config.threshold("dcsync"), Threshold::High);
    }

    #[test]
    fn the_hold_is_two_hours_unless_low() {
        assert_eq!(Config::default().pass_the_ticket_hold(), 120 * MINUTE);
        assert_eq!(Config::test_mode().pass_the_ticket_hold(), 0);
    }
}
