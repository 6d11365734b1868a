//! NETLOGON ([MS-NRPC]): secure-channel setup and the machine password reset.

use super::{ByteOrder, Encoding, ndr::Ndr};

/// NETLOGON_SECURE_CHANNEL_TYPE, [MS-NRPC] 2.2.1.3.13. Open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SecureChannelType(pub u16);

impl SecureChannelType {
    pub const NULL: Self = Self(0);
    pub const MSV_AP: Self = Self(1);
    pub const WORKSTATION: Self = Self(2);
    pub const TRUSTED_DNS_DOMAIN: Self = Self(3);
    pub const TRUSTED_DOMAIN: Self = Self(4);
    pub const UAS_SERVER: Self = Self(5);
    pub const SERVER: Self = Self(6);
    pub const CDC_SERVER: Self = Self(7);

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::NULL => "NullSecureChannel",
            Self::MSV_AP => "MsvApSecureChannel",
            Self::WORKSTATION => "WorkstationSecureChannel",
            Self::TRUSTED_DNS_DOMAIN => "TrustedDnsDomainSecureChannel",
            Self::TRUSTED_DOMAIN => "TrustedDomainSecureChannel",
            Self::UAS_SERVER => "UasServerSecureChannel",
            Self::SERVER => "ServerSecureChannel",
            Self::CDC_SERVER => "CdcServerSecureChannel",
            _ => return None,
        })
    }
}

/// What a Netlogon secure-channel setup request says: who, from where, and whether its
/// challenge or credential is all zeros (the Zerologon attack, CVE-2020-1472, sends zeros).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetlogonAuth {
    /// The DC the client addresses (PrimaryName), if given.
    pub primary_name: Option<String>,
    /// NetrServerAuthenticate2/3 only.
    pub account_name: Option<String>,
    /// NetrServerAuthenticate2/3 only.
    pub secure_channel_type: Option<SecureChannelType>,
    pub computer_name: String,
    /// ClientChallenge (NetrServerReqChallenge) or ClientCredential (NetrServerAuthenticate2/3).
    pub credential: [u8; 8],
    /// NetrServerAuthenticate2/3 only.
    pub negotiate_flags: Option<u32>,
}

impl NetlogonAuth {
    pub fn zero_credential(&self) -> bool {
        self.credential == [0; 8]
    }
}

/// NetrServerReqChallenge [in] parameters, [MS-NRPC] 3.5.4.4.1 (opnum 4):
///
/// ```text
/// NTSTATUS NetrServerReqChallenge([in, unique, string] LOGONSRV_HANDLE PrimaryName,
///   [in, string] wchar_t* ComputerName, [in] PNETLOGON_CREDENTIAL ClientChallenge, ...);
/// NETLOGON_CREDENTIAL = CHAR data[8]
/// ```
pub fn netr_server_req_challenge(
    stub: &[u8],
    encoding: Encoding,
    order: ByteOrder,
) -> Option<NetlogonAuth> {
    let mut ndr = Ndr::new(stub, encoding, order);
    let primary_name = ndr.unique_wstring()?;
    let computer_name = ndr.wstring()?;
    let credential = ndr.take(8)?.try_into().ok()?;
    Some(NetlogonAuth {
        primary_name,
        computer_name,
        credential,
        ..NetlogonAuth::default()
    })
}

/// NetrServerAuthenticate2 (opnum 15, [MS-NRPC] 3.5.4.4.3) and NetrServerAuthenticate3 (opnum
/// 26, 3.5.4.4.2) [in] parameters, which are the same:
///
/// ```text
/// NTSTATUS NetrServerAuthenticate3([in, unique, string] LOGONSRV_HANDLE PrimaryName,
///   [in, string] wchar_t* AccountName, [in] NETLOGON_SECURE_CHANNEL_TYPE SecureChannelType,
///   [in, string] wchar_t* ComputerName, [in] PNETLOGON_CREDENTIAL ClientCredential,
///   [out] PNETLOGON_CREDENTIAL ServerCredential, [in, out] ULONG* NegotiateFlags, ...);
/// ```
///
/// The channel type is an NDR enum: 16 bits on the wire.
pub fn netr_server_authenticate(
    stub: &[u8],
    encoding: Encoding,
    order: ByteOrder,
) -> Option<NetlogonAuth> {
    let mut ndr = Ndr::new(stub, encoding, order);
    let primary_name = ndr.unique_wstring()?;
    let account_name = ndr.wstring()?;
    let channel = ndr.enumeration()?;
    let computer_name = ndr.wstring()?;
    let credential = ndr.take(8)?.try_into().ok()?;
    let negotiate_flags = ndr.u32();
    Some(NetlogonAuth {
        primary_name,
        account_name: Some(account_name),
        secure_channel_type: Some(SecureChannelType(channel)),
        computer_name,
        credential,
        negotiate_flags,
    })
}

/// Bytes of an NL_TRUSTED_PASSWORD ([MS-NRPC] 2.2.1.3.7): 256 UTF-16 units, then the length.
const TRUSTED_PASSWORD_LEN: usize = 516;

/// Bytes of an ENCRYPTED_NT_OWF_PASSWORD ([MS-NRPC] 2.2.1.1.4): two encrypted 8-byte blocks.
const OWF_PASSWORD_LEN: usize = 16;

/// What a machine password reset says: who, and whether the new (encrypted) password is all
/// zeros, as Zerologon's reset sends it (CVE-2020-1472).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PasswordSet {
    pub account_name: String,
    pub secure_channel_type: SecureChannelType,
    pub computer_name: String,
    pub zero_password: bool,
}

/// NetrServerPasswordSet2 (opnum 30, [MS-NRPC] 3.5.4.4.5) and NetrServerPasswordSet (opnum 6,
/// 3.5.4.4.6) [in] parameters:
///
/// ```text
/// NTSTATUS NetrServerPasswordSet2([in, unique, string] LOGONSRV_HANDLE PrimaryName,
///   [in, string] wchar_t* AccountName, [in] NETLOGON_SECURE_CHANNEL_TYPE SecureChannelType,
///   [in, string] wchar_t* ComputerName, [in] PNETLOGON_AUTHENTICATOR Authenticator,
///   [out] PNETLOGON_AUTHENTICATOR ReturnAuthenticator,
///   [in] PNL_TRUSTED_PASSWORD ClearNewPassword);
/// NETLOGON_AUTHENTICATOR = NETLOGON_CREDENTIAL Credential (8 bytes); DWORD Timestamp
/// ```
///
/// NetrServerPasswordSet carries an ENCRYPTED_NT_OWF_PASSWORD in place of the trusted password.
pub(super) fn netr_server_password_set(
    stub: &[u8],
    encoding: Encoding,
    order: ByteOrder,
    version2: bool,
) -> Option<PasswordSet> {
    let mut ndr = Ndr::new(stub, encoding, order);
    let _primary_name = ndr.unique_wstring()?;
    let account_name = ndr.wstring()?;
    let channel = ndr.enumeration()?;
    let computer_name = ndr.wstring()?;
    ndr.align(4)?;
    let _credential = ndr.take(8)?;
    let _timestamp = ndr.u32()?;
    let password = ndr.take(if version2 {
        TRUSTED_PASSWORD_LEN
    } else {
        OWF_PASSWORD_LEN
    })?;
    Some(PasswordSet {
        account_name,
        secure_channel_type: SecureChannelType(channel),
        computer_name,
        zero_password: password.iter().all(|byte| *byte == 0),
    })
}
