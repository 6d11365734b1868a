//! Kerberos credentials for the SASL GSSAPI bind, from a keytab: MIT krb5's
//! `gss_acquire_cred_from` with the keytab as the client keytab and a memory credential cache of
//! the domain's own. The keys stay in the keytab and the tickets in the sensor's memory: no
//! environment variable, command line or ticket file names either.

use std::{
    ffi::{CString, c_void},
    path::Path,
    ptr,
};

use libgssapi::{
    context::{ClientCtx, CtxFlags},
    credential::Cred,
    error::{Error as GssError, MajorFlags},
    name::Name,
    oid::{GSS_MECH_KRB5, GSS_NT_KRB5_PRINCIPAL},
};
use libgssapi_sys as sys;

/// krb5 error codes (krb5.h) that mean no KDC of the realm answered or none is known: the DC is
/// unreachable for the sync, the credentials were not refused.
const UNREACHABLE: [i64; 3] = [
    -1_765_328_228, // KRB5_KDC_UNREACH
    -1_765_328_164, // KRB5_REALM_CANT_RESOLVE
    -1_765_328_230, // KRB5_REALM_UNKNOWN
];

/// The Kerberos principal name type, 1.2.840.113554.1.2.2.1 (RFC 1964).
const KRB5_PRINCIPAL_NAME: &[u8] = b"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02\x01";

#[derive(Debug, thiserror::Error)]
pub enum KerberosError {
    /// No KDC of the realm could be reached or found.
    #[error("Kerberos, no KDC reached: {0}")]
    Unreachable(String),
    /// The keytab, the principal or the KDC's answer refused the bind.
    #[error("Kerberos refused: {0}")]
    Refused(String),
}

impl KerberosError {
    fn from_gss(what: &str, error: &GssError) -> Self {
        let message = format!("{what}: {}", error.to_string().trim());
        // MIT's minor status is the krb5 error code: a negative com_err code, as unsigned.
        let code = i64::from(error.minor as i32);
        if UNREACHABLE.contains(&code) {
            Self::Unreachable(message)
        } else {
            Self::Refused(message)
        }
    }
}

/// Credentials of `principal` (`name@REALM`) from `keytab`, their tickets kept in the memory
/// cache `ccache` (`MEMORY:NAME`): a later call with the same name finds the tickets still
/// valid there and asks the KDC for nothing.
pub fn acquire(keytab: &Path, principal: &str, ccache: &str) -> Result<Cred, KerberosError> {
    let refused = |what: &str| KerberosError::Refused(what.to_owned());
    let what = format!("credentials of {principal} from the keytab");
    let principal = CString::new(principal).map_err(|_| refused("a NUL in the principal"))?;
    let keytab = CString::new(format!("FILE:{}", keytab.display()))
        .map_err(|_| refused("a NUL in the keytab's path"))?;
    let ccache = CString::new(ccache).map_err(|_| refused("a NUL in the cache name"))?;
    let name = ImportedName::new(&principal)
        .map_err(|error| KerberosError::from_gss("the principal", &error))?;
    let mut elements = [
        sys::gss_key_value_element_desc {
            key: c"client_keytab".as_ptr(),
            value: keytab.as_ptr(),
        },
        sys::gss_key_value_element_desc {
            key: c"ccache".as_ptr(),
            value: ccache.as_ptr(),
        },
    ];
    let store = sys::gss_key_value_set_desc {
        count: 2,
        elements: elements.as_mut_ptr(),
    };
    let mut minor = 0;
    let mut cred: sys::gss_cred_id_t = ptr::null_mut();
    // SAFETY: every pointer is valid for the call: the name from gss_import_name, the store's
    // strings held by the CStrings above, the output slots local; no mechanisms asked for
    // (null: the defaults, krb5 among them) nor returned.
    let major = unsafe {
        sys::gss_acquire_cred_from(
            &raw mut minor,
            name.0,
            sys::_GSS_C_INDEFINITE,
            ptr::null_mut(),
            sys::GSS_C_INITIATE as sys::gss_cred_usage_t,
            &raw const store,
            &raw mut cred,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    if major != sys::GSS_S_COMPLETE {
        // With a client keytab MIT gets the ticket-granting ticket here: a KDC out of reach
        // shows now. It says "No credentials cache found" when the keytab has no key for the name.
        return Err(KerberosError::from_gss(&what, &gss_error(major, minor)));
    }
    Ok(Cred::from(cred))
}

/// Gets the service ticket for `spn` now, so that a KDC out of reach or a service it does not
/// know shows as such (the bind itself would report either as text only).
/// The tickets stay in the credentials' cache, where the bind finds them.
pub fn fetch_ticket(cred: &Cred, spn: &str) -> Result<(), KerberosError> {
    let target = Name::new(spn.as_bytes(), Some(&GSS_NT_KRB5_PRINCIPAL))
        .map_err(|error| KerberosError::from_gss("the DC's service name", &error))?;
    let mut context = ClientCtx::new(
        Some(cred.clone()),
        target,
        CtxFlags::GSS_C_MUTUAL_FLAG,
        Some(&GSS_MECH_KRB5),
    );
    // The first token (an AP-REQ) is never sent: the bind makes its own from the same tickets.
    context
        .step(None, None)
        .map(drop)
        .map_err(|error| KerberosError::from_gss(&format!("a ticket for {spn}"), &error))
}

fn gss_error(major: u32, minor: u32) -> GssError {
    GssError {
        major: MajorFlags::from_bits_retain(major),
        minor,
    }
}

/// A name from gss_import_name, released on drop.
struct ImportedName(sys::gss_name_t);

impl ImportedName {
    fn new(principal: &CString) -> Result<Self, GssError> {
        let mut oid = sys::gss_OID_desc_struct {
            length: KRB5_PRINCIPAL_NAME.len() as u32,
            elements: KRB5_PRINCIPAL_NAME.as_ptr().cast_mut().cast::<c_void>(),
        };
        let mut buffer = sys::gss_buffer_desc_struct {
            length: principal.as_bytes().len(),
            value: principal.as_ptr().cast_mut().cast::<c_void>(),
        };
        let mut minor = 0;
        let mut name: sys::gss_name_t = ptr::null_mut();
        // SAFETY: gss_import_name reads the buffer and the OID (both outlive the call, neither
        // is written) and writes the name slot.
        let major = unsafe {
            sys::gss_import_name(&raw mut minor, &raw mut buffer, &raw mut oid, &raw mut name)
        };
        if major == sys::GSS_S_COMPLETE {
            Ok(Self(name))
        } else {
            Err(gss_error(major, minor))
        }
    }
}

impl Drop for ImportedName {
    fn drop(&mut self) {
        let mut minor = 0;
        // SAFETY: the name came from gss_import_name and is released once.
        unsafe { sys::gss_release_name(&raw mut minor, &raw mut self.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_keytab_or_a_bad_principal_is_refused_not_unreachable() {
        let dir = tempfile::tempdir().expect("dir");
        let keytab = dir.path().join("none.keytab");
        let cache = format!("MEMORY:dcwatch-test-{}", std::process::id());
        for principal in ["dcwatch@LAB.EXAMPLE", "dcwatch\0@LAB.EXAMPLE"] {
            let refused = acquire(&keytab, principal, &cache)
                .and_then(|cred| fetch_ticket(&cred, "ldap/dc1.lab.example@LAB.EXAMPLE"));
            assert!(
                matches!(refused, Err(KerberosError::Refused(_))),
                "{principal:?}: {refused:?}"
            );
        }
    }

    #[test]
    fn unreachable_codes_are_told_apart_from_refusals() {
        let unreachable = KerberosError::from_gss("x", &gss_error(0x000d_0000, 0x96c7_3a9c));
        assert!(matches!(unreachable, KerberosError::Unreachable(_)));
        // KRB5KDC_ERR_PREAUTH_FAILED: a key the KDC does not take.
        let refused = KerberosError::from_gss("x", &gss_error(0x000d_0000, 0x96c7_3a18));
        assert!(matches!(refused, KerberosError::Refused(_)));
    }
}
