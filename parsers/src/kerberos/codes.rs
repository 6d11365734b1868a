//! Kerberos code points as open newtypes: unknown values still parse, known ones have a name.

/// Declares an open newtype over an integer with named constants and `name()`.
macro_rules! open_code {
    ($(#[$meta:meta])* $name:ident($inner:ty) { $($(#[$cmeta:meta])* $konst:ident = $value:expr => $text:expr,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $inner);

        impl $name {
            $($(#[$cmeta])* pub const $konst: Self = Self($value);)*

            /// The registered name of this code point, if known.
            #[must_use]
            pub fn name(self) -> Option<&'static str> {
                match self {
                    $(Self::$konst => Some($text),)*
                    _ => None,
                }
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self.name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, "{}", self.0),
                }
            }
        }
    };
}

open_code! {
    /// `msg-type` (RFC 4120 5.10; equal to the message's APPLICATION tag number).
    MessageType(u8) {
        AS_REQ = 10 => "AS-REQ",
        AS_REP = 11 => "AS-REP",
        TGS_REQ = 12 => "TGS-REQ",
        TGS_REP = 13 => "TGS-REP",
        AP_REQ = 14 => "AP-REQ",
        AP_REP = 15 => "AP-REP",
        KRB_SAFE = 20 => "KRB-SAFE",
        KRB_PRIV = 21 => "KRB-PRIV",
        KRB_CRED = 22 => "KRB-CRED",
        KRB_ERROR = 30 => "KRB-ERROR",
    }
}

open_code! {
    /// `error-code` of a KRB-ERROR (RFC 4120 7.5.9; RFC 4556, RFC 6113, RFC 8636 additions as
    /// used by Active Directory, MS-KILE 2.2.1).
    ErrorCode(i32) {
        KDC_ERR_NONE = 0 => "KDC_ERR_NONE",
        KDC_ERR_NAME_EXP = 1 => "KDC_ERR_NAME_EXP",
        KDC_ERR_SERVICE_EXP = 2 => "KDC_ERR_SERVICE_EXP",
        KDC_ERR_BAD_PVNO = 3 => "KDC_ERR_BAD_PVNO",
        KDC_ERR_C_OLD_MAST_KVNO = 4 => "KDC_ERR_C_OLD_MAST_KVNO",
        KDC_ERR_S_OLD_MAST_KVNO = 5 => "KDC_ERR_S_OLD_MAST_KVNO",
        /// The client name is unknown: user enumeration when repeated.
        KDC_ERR_C_PRINCIPAL_UNKNOWN = 6 => "KDC_ERR_C_PRINCIPAL_UNKNOWN",
        KDC_ERR_S_PRINCIPAL_UNKNOWN = 7 => "KDC_ERR_S_PRINCIPAL_UNKNOWN",
        KDC_ERR_PRINCIPAL_NOT_UNIQUE = 8 => "KDC_ERR_PRINCIPAL_NOT_UNIQUE",
        KDC_ERR_NULL_KEY = 9 => "KDC_ERR_NULL_KEY",
        KDC_ERR_CANNOT_POSTDATE = 10 => "KDC_ERR_CANNOT_POSTDATE",
        KDC_ERR_NEVER_VALID = 11 => "KDC_ERR_NEVER_VALID",
        KDC_ERR_POLICY = 12 => "KDC_ERR_POLICY",
        KDC_ERR_BADOPTION = 13 => "KDC_ERR_BADOPTION",
        KDC_ERR_ETYPE_NOSUPP = 14 => "KDC_ERR_ETYPE_NOSUPP",
        KDC_ERR_SUMTYPE_NOSUPP = 15 => "KDC_ERR_SUMTYPE_NOSUPP",
        KDC_ERR_PADATA_TYPE_NOSUPP = 16 => "KDC_ERR_PADATA_TYPE_NOSUPP",
        KDC_ERR_TRTYPE_NOSUPP = 17 => "KDC_ERR_TRTYPE_NOSUPP",
        /// Account disabled, expired or locked out.
        KDC_ERR_CLIENT_REVOKED = 18 => "KDC_ERR_CLIENT_REVOKED",
        KDC_ERR_SERVICE_REVOKED = 19 => "KDC_ERR_SERVICE_REVOKED",
        KDC_ERR_TGT_REVOKED = 20 => "KDC_ERR_TGT_REVOKED",
        KDC_ERR_CLIENT_NOTYET = 21 => "KDC_ERR_CLIENT_NOTYET",
        KDC_ERR_SERVICE_NOTYET = 22 => "KDC_ERR_SERVICE_NOTYET",
        KDC_ERR_KEY_EXPIRED = 23 => "KDC_ERR_KEY_EXPIRED",
        /// Wrong password: password guessing when repeated.
        KDC_ERR_PREAUTH_FAILED = 24 => "KDC_ERR_PREAUTH_FAILED",
        KDC_ERR_PREAUTH_REQUIRED = 25 => "KDC_ERR_PREAUTH_REQUIRED",
        KDC_ERR_SERVER_NOMATCH = 26 => "KDC_ERR_SERVER_NOMATCH",
        KDC_ERR_MUST_USE_USER2USER = 27 => "KDC_ERR_MUST_USE_USER2USER",
        KDC_ERR_PATH_NOT_ACCEPTED = 28 => "KDC_ERR_PATH_NOT_ACCEPTED",
        KDC_ERR_SVC_UNAVAILABLE = 29 => "KDC_ERR_SVC_UNAVAILABLE",
        KRB_AP_ERR_BAD_INTEGRITY = 31 => "KRB_AP_ERR_BAD_INTEGRITY",
        KRB_AP_ERR_TKT_EXPIRED = 32 => "KRB_AP_ERR_TKT_EXPIRED",
        KRB_AP_ERR_TKT_NYV = 33 => "KRB_AP_ERR_TKT_NYV",
        KRB_AP_ERR_REPEAT = 34 => "KRB_AP_ERR_REPEAT",
        KRB_AP_ERR_NOT_US = 35 => "KRB_AP_ERR_NOT_US",
        KRB_AP_ERR_BADMATCH = 36 => "KRB_AP_ERR_BADMATCH",
        KRB_AP_ERR_SKEW = 37 => "KRB_AP_ERR_SKEW",
        KRB_AP_ERR_BADADDR = 38 => "KRB_AP_ERR_BADADDR",
        KRB_AP_ERR_BADVERSION = 39 => "KRB_AP_ERR_BADVERSION",
        KRB_AP_ERR_MSG_TYPE = 40 => "KRB_AP_ERR_MSG_TYPE",
        KRB_AP_ERR_MODIFIED = 41 => "KRB_AP_ERR_MODIFIED",
        KRB_AP_ERR_BADORDER = 42 => "KRB_AP_ERR_BADORDER",
        KRB_AP_ERR_BADKEYVER = 44 => "KRB_AP_ERR_BADKEYVER",
        KRB_AP_ERR_NOKEY = 45 => "KRB_AP_ERR_NOKEY",
        KRB_AP_ERR_MUT_FAIL = 46 => "KRB_AP_ERR_MUT_FAIL",
        KRB_AP_ERR_BADDIRECTION = 47 => "KRB_AP_ERR_BADDIRECTION",
        KRB_AP_ERR_METHOD = 48 => "KRB_AP_ERR_METHOD",
        KRB_AP_ERR_BADSEQ = 49 => "KRB_AP_ERR_BADSEQ",
        KRB_AP_ERR_INAPP_CKSUM = 50 => "KRB_AP_ERR_INAPP_CKSUM",
        KRB_AP_PATH_NOT_ACCEPTED = 51 => "KRB_AP_PATH_NOT_ACCEPTED",
        /// The reply does not fit UDP: the client retries over TCP.
        KRB_ERR_RESPONSE_TOO_BIG = 52 => "KRB_ERR_RESPONSE_TOO_BIG",
        KRB_ERR_GENERIC = 60 => "KRB_ERR_GENERIC",
        KRB_ERR_FIELD_TOOLONG = 61 => "KRB_ERR_FIELD_TOOLONG",
        KDC_ERR_CLIENT_NOT_TRUSTED = 62 => "KDC_ERR_CLIENT_NOT_TRUSTED",
        KDC_ERR_KDC_NOT_TRUSTED = 63 => "KDC_ERR_KDC_NOT_TRUSTED",
        KDC_ERR_INVALID_SIG = 64 => "KDC_ERR_INVALID_SIG",
        KDC_ERR_KEY_TOO_WEAK = 65 => "KDC_ERR_KEY_TOO_WEAK",
        KDC_ERR_CERTIFICATE_MISMATCH = 66 => "KDC_ERR_CERTIFICATE_MISMATCH",
        KRB_AP_ERR_NO_TGT = 67 => "KRB_AP_ERR_NO_TGT",
        KDC_ERR_WRONG_REALM = 68 => "KDC_ERR_WRONG_REALM",
        KRB_AP_ERR_USER_TO_USER_REQUIRED = 69 => "KRB_AP_ERR_USER_TO_USER_REQUIRED",
        KDC_ERR_CANT_VERIFY_CERTIFICATE = 70 => "KDC_ERR_CANT_VERIFY_CERTIFICATE",
        KDC_ERR_INVALID_CERTIFICATE = 71 => "KDC_ERR_INVALID_CERTIFICATE",
        KDC_ERR_REVOKED_CERTIFICATE = 72 => "KDC_ERR_REVOKED_CERTIFICATE",
        KDC_ERR_REVOCATION_STATUS_UNKNOWN = 73 => "KDC_ERR_REVOCATION_STATUS_UNKNOWN",
        KDC_ERR_REVOCATION_STATUS_UNAVAILABLE = 74 => "KDC_ERR_REVOCATION_STATUS_UNAVAILABLE",
        KDC_ERR_CLIENT_NAME_MISMATCH = 75 => "KDC_ERR_CLIENT_NAME_MISMATCH",
        KDC_ERR_KDC_NAME_MISMATCH = 76 => "KDC_ERR_KDC_NAME_MISMATCH",
        KDC_ERR_INCONSISTENT_KEY_PURPOSE = 77 => "KDC_ERR_INCONSISTENT_KEY_PURPOSE",
        KDC_ERR_DIGEST_IN_CERT_NOT_ACCEPTED = 78 => "KDC_ERR_DIGEST_IN_CERT_NOT_ACCEPTED",
        KDC_ERR_PA_CHECKSUM_MUST_BE_INCLUDED = 79 => "KDC_ERR_PA_CHECKSUM_MUST_BE_INCLUDED",
        KDC_ERR_DIGEST_IN_SIGNED_DATA_NOT_ACCEPTED = 80 => "KDC_ERR_DIGEST_IN_SIGNED_DATA_NOT_ACCEPTED",
        KDC_ERR_PUBLIC_KEY_ENCRYPTION_NOT_SUPPORTED = 81 => "KDC_ERR_PUBLIC_KEY_ENCRYPTION_NOT_SUPPORTED",
        KDC_ERR_PREAUTH_EXPIRED = 90 => "KDC_ERR_PREAUTH_EXPIRED",
        KDC_ERR_MORE_PREAUTH_DATA_REQUIRED = 91 => "KDC_ERR_MORE_PREAUTH_DATA_REQUIRED",
        KDC_ERR_UNKNOWN_CRITICAL_FAST_OPTIONS = 93 => "KDC_ERR_UNKNOWN_CRITICAL_FAST_OPTIONS",
        KDC_ERR_NO_ACCEPTABLE_KDF = 100 => "KDC_ERR_NO_ACCEPTABLE_KDF",
    }
}

open_code! {
    /// `etype` (RFC 3961 8, IANA "Kerberos Encryption Type Numbers"; RC4 in RFC 4757).
    EncryptionType(i32) {
        DES_CBC_CRC = 1 => "des-cbc-crc",
        DES_CBC_MD4 = 2 => "des-cbc-md4",
        DES_CBC_MD5 = 3 => "des-cbc-md5",
        DES3_CBC_MD5 = 5 => "des3-cbc-md5",
        DES3_CBC_SHA1 = 7 => "des3-cbc-sha1",
        DES3_CBC_SHA1_KD = 16 => "des3-cbc-sha1-kd",
        AES128_CTS_HMAC_SHA1_96 = 17 => "aes128-cts-hmac-sha1-96",
        AES256_CTS_HMAC_SHA1_96 = 18 => "aes256-cts-hmac-sha1-96",
        AES128_CTS_HMAC_SHA256_128 = 19 => "aes128-cts-hmac-sha256-128",
        AES256_CTS_HMAC_SHA384_192 = 20 => "aes256-cts-hmac-sha384-192",
        /// The NT hash is the key: what Kerberoasting and overpass-the-hash want.
        RC4_HMAC = 23 => "rc4-hmac",
        RC4_HMAC_EXP = 24 => "rc4-hmac-exp",
        CAMELLIA128_CTS_CMAC = 25 => "camellia128-cts-cmac",
        CAMELLIA256_CTS_CMAC = 26 => "camellia256-cts-cmac",
    }
}

impl EncryptionType {
    /// DES and RC4: the types whose use in a modern domain suggests a downgrade.
    #[must_use]
    pub fn is_weak(self) -> bool {
        matches!(self.0, 1..=3 | 23 | 24)
    }
}

open_code! {
    /// `padata-type` (RFC 4120 7.5.2, RFC 4556, RFC 6113, MS-KILE 2.2, MS-SFU 2.2).
    PaDataType(i32) {
        /// Carries the AP-REQ of a TGS-REQ.
        PA_TGS_REQ = 1 => "PA-TGS-REQ",
        /// Encrypted-timestamp pre-authentication.
        PA_ENC_TIMESTAMP = 2 => "PA-ENC-TIMESTAMP",
        PA_PW_SALT = 3 => "PA-PW-SALT",
        PA_ETYPE_INFO = 11 => "PA-ETYPE-INFO",
        PA_PK_AS_REQ_OLD = 14 => "PA-PK-AS-REQ_OLD",
        PA_PK_AS_REP_OLD = 15 => "PA-PK-AS-REP_OLD",
        /// PKINIT (certificate) pre-authentication.
        PA_PK_AS_REQ = 16 => "PA-PK-AS-REQ",
        PA_PK_AS_REP = 17 => "PA-PK-AS-REP",
        PA_ETYPE_INFO2 = 19 => "PA-ETYPE-INFO2",
        PA_SVR_REFERRAL_INFO = 20 => "PA-SVR-REFERRAL-INFO",
        /// KERB-PA-PAC-REQUEST: whether the client wants a PAC.
        PA_PAC_REQUEST = 128 => "PA-PAC-REQUEST",
        /// S4U2self.
        PA_FOR_USER = 129 => "PA-FOR-USER",
        PA_FOR_X509_USER = 130 => "PA-FOR-X509-USER",
        PA_FOR_CHECK_DUPS = 131 => "PA-FOR-CHECK_DUPS",
        PA_AS_CHECKSUM = 132 => "PA-AS-CHECKSUM",
        PA_FX_COOKIE = 133 => "PA-FX-COOKIE",
        PA_AUTHENTICATION_SET = 134 => "PA-AUTHENTICATION-SET",
        PA_AUTH_SET_SELECTED = 135 => "PA-AUTH-SET-SELECTED",
        /// FAST armour (RFC 6113).
        PA_FX_FAST = 136 => "PA-FX-FAST",
        PA_FX_ERROR = 137 => "PA-FX-ERROR",
        PA_ENCRYPTED_CHALLENGE = 138 => "PA-ENCRYPTED-CHALLENGE",
        PA_PKINIT_KX = 147 => "PA-PKINIT-KX",
        PA_REQ_ENC_PA_REP = 149 => "PA-REQ-ENC-PA-REP",
        PA_AS_FRESHNESS = 150 => "PA-AS-FRESHNESS",
        /// A TGS-REQ asking for the client's long-term keys (MS-KILE 2.2.11): what an RODC
        /// sends, and the key list attack.
        KERB_KEY_LIST_REQ = 161 => "KERB-KEY-LIST-REQ",
        KERB_KEY_LIST_REP = 162 => "KERB-KEY-LIST-REP",
        PA_SUPPORTED_ENCTYPES = 165 => "PA-SUPPORTED-ENCTYPES",
        PA_EXTENDED_ERROR = 166 => "PA-EXTENDED-ERROR",
        PA_PAC_OPTIONS = 167 => "PA-PAC-OPTIONS",
    }
}

open_code! {
    /// `name-type` of a PrincipalName (RFC 4120 6.2, RFC 6111).
    NameType(i32) {
        NT_UNKNOWN = 0 => "NT-UNKNOWN",
        NT_PRINCIPAL = 1 => "NT-PRINCIPAL",
        NT_SRV_INST = 2 => "NT-SRV-INST",
        NT_SRV_HST = 3 => "NT-SRV-HST",
        NT_SRV_XHST = 4 => "NT-SRV-XHST",
        NT_UID = 5 => "NT-UID",
        NT_X500_PRINCIPAL = 6 => "NT-X500-PRINCIPAL",
        NT_SMTP_NAME = 7 => "NT-SMTP-NAME",
        /// `user@domain` as one component (UPN logon).
        NT_ENTERPRISE = 10 => "NT-ENTERPRISE",
        NT_WELLKNOWN = 11 => "NT-WELLKNOWN",
        NT_SRV_HST_DOMAIN = 12 => "NT-SRV-HST-DOMAIN",
        NT_MS_PRINCIPAL = -128 => "NT-MS-PRINCIPAL",
        NT_MS_PRINCIPAL_AND_ID = -129 => "NT-MS-PRINCIPAL-AND-ID",
        NT_ENT_PRINCIPAL_AND_ID = -130 => "NT-ENT-PRINCIPAL-AND-ID",
    }
}

open_code! {
    /// `addr-type` of a HostAddress (RFC 4120 7.5.3).
    AddressType(i32) {
        IPV4 = 2 => "IPv4",
        DIRECTIONAL = 3 => "directional",
        CHAOSNET = 5 => "ChaosNet",
        XNS = 6 => "XNS",
        ISO = 7 => "ISO",
        DECNET_PHASE_IV = 12 => "DECNET Phase IV",
        APPLETALK_DDP = 16 => "AppleTalk DDP",
        NETBIOS = 20 => "NetBIOS",
        IPV6 = 24 => "IPv6",
    }
}

/// `KDCOptions ::= KerberosFlags` (RFC 4120 5.4.1), bit 0 of the BIT STRING being the most
/// significant bit of the `u32`, as Wireshark shows it (`0x40810010` for a Windows AS-REQ).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct KdcOptions(pub u32);

impl KdcOptions {
    pub const FORWARDABLE: u32 = 1 << 30;
    pub const FORWARDED: u32 = 1 << 29;
    pub const PROXIABLE: u32 = 1 << 28;
    pub const PROXY: u32 = 1 << 27;
    pub const ALLOW_POSTDATE: u32 = 1 << 26;
    pub const POSTDATED: u32 = 1 << 25;
    pub const RENEWABLE: u32 = 1 << 23;
    pub const OPT_HARDWARE_AUTH: u32 = 1 << 20;
    /// `cname-in-addl-tkt` (MS-SFU 2.2.3): S4U2proxy, constrained delegation.
    pub const CNAME_IN_ADDL_TKT: u32 = 1 << 17;
    pub const CANONICALIZE: u32 = 1 << 16;
    pub const REQUEST_ANONYMOUS: u32 = 1 << 15;
    pub const DISABLE_TRANSITED_CHECK: u32 = 1 << 5;
    pub const RENEWABLE_OK: u32 = 1 << 4;
    /// User-to-user: the ticket is encrypted in the session key of the additional ticket.
    pub const ENC_TKT_IN_SKEY: u32 = 1 << 3;
    pub const RENEW: u32 = 1 << 1;
    pub const VALIDATE: u32 = 1;

    /// Whether all the bits of `flags` (one of the constants above, or several or-ed) are set.
    #[must_use]
    pub fn contains(self, flags: u32) -> bool {
        self.0 & flags == flags
    }
}

/// `APOptions ::= KerberosFlags` (RFC 4120 5.5.1), numbered like [`KdcOptions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ApOptions(pub u32);

impl ApOptions {
    pub const USE_SESSION_KEY: u32 = 1 << 30;
    pub const MUTUAL_REQUIRED: u32 = 1 << 29;

    /// Whether all the bits of `flags` are set.
    #[must_use]
    pub fn contains(self, flags: u32) -> bool {
        self.0 & flags == flags
    }
}
