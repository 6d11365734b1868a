//! userAccountControl (MS-ADTS 2.2.16): an open newtype over the attribute's bits, so a flag
//! dcwatch does not name still round-trips.

use serde::{Deserialize, Serialize};

/// The userAccountControl attribute of an account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Uac(pub u32);

impl Uac {
    pub const ACCOUNTDISABLE: u32 = 0x0000_0002;
    pub const PASSWD_NOTREQD: u32 = 0x0000_0020;
    pub const NORMAL_ACCOUNT: u32 = 0x0000_0200;
    pub const WORKSTATION_TRUST_ACCOUNT: u32 = 0x0000_1000;
    /// A domain controller's computer account.
    pub const SERVER_TRUST_ACCOUNT: u32 = 0x0000_2000;
    pub const DONT_EXPIRE_PASSWORD: u32 = 0x0001_0000;
    pub const TRUSTED_FOR_DELEGATION: u32 = 0x0008_0000;
    pub const USE_DES_KEY_ONLY: u32 = 0x0020_0000;
    /// No Kerberos pre-authentication: AS-REP roastable.
    pub const DONT_REQ_PREAUTH: u32 = 0x0040_0000;
    pub const TRUSTED_TO_AUTH_FOR_DELEGATION: u32 = 0x0100_0000;
    /// A read-only domain controller's computer account.
    pub const PARTIAL_SECRETS_ACCOUNT: u32 = 0x0400_0000;

    /// The flags dcwatch names, by their MS-ADTS names.
    const NAMED: [(u32, &'static str); 11] = [
        (Self::ACCOUNTDISABLE, "ACCOUNTDISABLE"),
        (Self::PASSWD_NOTREQD, "PASSWD_NOTREQD"),
        (Self::NORMAL_ACCOUNT, "NORMAL_ACCOUNT"),
        (Self::WORKSTATION_TRUST_ACCOUNT, "WORKSTATION_TRUST_ACCOUNT"),
        (Self::SERVER_TRUST_ACCOUNT, "SERVER_TRUST_ACCOUNT"),
        (Self::DONT_EXPIRE_PASSWORD, "DONT_EXPIRE_PASSWORD"),
        (Self::TRUSTED_FOR_DELEGATION, "TRUSTED_FOR_DELEGATION"),
        (Self::USE_DES_KEY_ONLY, "USE_DES_KEY_ONLY"),
        (Self::DONT_REQ_PREAUTH, "DONT_REQ_PREAUTH"),
        (
            Self::TRUSTED_TO_AUTH_FOR_DELEGATION,
            "TRUSTED_TO_AUTH_FOR_DELEGATION",
        ),
        (Self::PARTIAL_SECRETS_ACCOUNT, "PARTIAL_SECRETS_ACCOUNT"),
    ];

    pub fn has(self, flag: u32) -> bool {
        self.0 & flag == flag
    }

    /// The names of the flags set, in bit order; unnamed bits as `0x...`.
    pub fn names(self) -> Vec<String> {
        let mut names: Vec<String> = Self::NAMED
            .iter()
            .filter(|(flag, _)| self.has(*flag))
            .map(|(_, name)| (*name).to_owned())
            .collect();
        let unnamed = Self::NAMED
            .iter()
            .fold(self.0, |rest, (flag, _)| rest & !flag);
        if unnamed != 0 {
            names.push(format!("{unnamed:#x}"));
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dc_account_is_named_by_its_flags() {
        // 532480 = 0x82000: what AD writes on a writable DC's computer account.
        let dc = Uac(532_480);
        assert!(dc.has(Uac::SERVER_TRUST_ACCOUNT));
        assert_eq!(
            dc.names(),
            ["SERVER_TRUST_ACCOUNT", "TRUSTED_FOR_DELEGATION"]
        );
    }

    #[test]
    fn bits_without_a_name_are_kept_in_hex() {
        assert_eq!(Uac(0x200 | 0x8).names(), ["NORMAL_ACCOUNT", "0x8"]);
    }
}
