//! `cargo xtask e2e`: the sensor on the lab's mirror port, each scenario played against the real
//! Samba AD DC, and the activities each must produce checked, with no frame lost.
//!
//! One sensor run per scenario, so that what a scenario produced is what the sensor printed
//! while it ran. The lab (tests/lab/lab.sh) is brought up first and taken down at the end
//! unless `--keep` is given.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context as _, bail};
use dcwatch_tests::{
    backend_process::BackendProcess,
    sensor_process::{RunDir, SensorProcess},
    stats_file,
};
use serde_json::Value;

use crate::{
    lab::{self, LabTask},
    shell,
};

/// The namespace and interface of the lab's mirror port (tests/lab/lab.sh).
pub(crate) const SENSOR_NAMESPACE: &str = "dcwlab-sensor";
pub(crate) const MIRROR_INTERFACE: &str = "sensor0";

/// Where the sensor listens for the Windows events a SIEM forwards: its address on the lab's
/// client-to-sensor link (tests/lab/lab.sh, `SENSOR_IP` and `SYSLOG_PORT`).
pub(crate) const SYSLOG_LISTEN: &str = "10.98.1.1:514";

/// What one scenario's activities must include.
struct Expectation {
    what: &'static str,
    at_least: usize,
    matches: fn(&Value) -> bool,
}

fn field<'a>(activity: &'a Value, key: &str) -> &'a str {
    activity[key].as_str().unwrap_or_default()
}

fn is(activity: &Value, protocol: &str, kind: &str) -> bool {
    field(activity, "protocol") == protocol && field(activity, "type") == kind
}

fn succeeded(activity: &Value) -> bool {
    activity["outcome"]["status"] == "SUCCESS"
}

/// A DCE-RPC call of `operation` on the interface the sensor names `interface`.
fn call(activity: &Value, interface: &str, operation: &str) -> bool {
    is(activity, "dcerpc", "REQUEST")
        && field(activity, "interface_name") == interface
        && field(activity, "operation") == operation
}

/// A DCE-RPC bind that offered the interface with this UUID.
fn binds(activity: &Value, uuid: &str) -> bool {
    is(activity, "dcerpc", "BIND")
        && activity["contexts"].as_array().is_some_and(|contexts| {
            contexts
                .iter()
                .any(|context| context["interface_uuid"] == uuid)
        })
}

/// An SMB open of a named pipe (or file) by name, with the NTSTATUS it was answered.
fn opened(activity: &Value, name: &str, status: &str) -> bool {
    is(activity, "smb", "CREATE")
        && field(activity, "file_name") == name
        && activity["outcome"]["name"] == status
}

/// A Windows event with this id, forwarded over syslog.
fn event(activity: &Value, id: u64) -> bool {
    is(activity, "windows_event", "EVENT") && activity["event_id"] == id
}

/// An LDAP MODIFY of `dn` whose change list names `change` (`add:member`...).
fn modifies(activity: &Value, dn: &str, change: &str) -> bool {
    is(activity, "ldap", "MODIFY")
        && field(activity, "dn").eq_ignore_ascii_case(dn)
        && activity["attributes"]
            .as_array()
            .is_some_and(|changes| changes.iter().any(|item| item == change))
}

/// An LDAP ping guessing a user name, answered with the NETLOGON `opcode`.
fn pinged(activity: &Value, opcode: u64) -> bool {
    let ping = &activity["ping"];
    ping["response_opcode"] == opcode && ping["user"].as_str().is_some_and(|user| !user.is_empty())
}

/// A change of `attribute` in an LDAP MODIFY that carries `value`.
fn changes_value(activity: &Value, attribute: &str, value: &str) -> bool {
    activity["changes"].as_array().is_some_and(|changes| {
        changes.iter().any(|change| {
            change["attribute"] == attribute
                && change["values"].as_array().is_some_and(|values| {
                    values.iter().any(|item| {
                        item.as_str()
                            .is_some_and(|item| item.eq_ignore_ascii_case(value))
                    })
                })
        })
    })
}

/// NTLMSSP negotiate flags (MS-NLMP 2.2.2.5): message integrity, and confidentiality.
const NTLM_SIGN: u64 = 0x10;
const NTLM_SEAL: u64 = 0x20;

/// What a scenario's activities must not include.
struct Absence {
    what: &'static str,
    matches: fn(&Value) -> bool,
}

fn absences(scenario: &str) -> Vec<Absence> {
    match scenario {
        "ldap-sign-kerberos" => vec![Absence {
            what: "an LDAP message reported SEALED (the wraps are integrity-only)",
            matches: |a| is(a, "ldap", "SEALED"),
        }],
        "ldap-seal" | "ldap-sign-ntlm" => vec![Absence {
            what: "a sealed wrap read as signed-only",
            matches: |a| a["sasl_signed"] == true,
        }],
        _ => Vec::new(),
    }
}

/// The activities each scenario must produce.
fn expectations(scenario: &str) -> Vec<Expectation> {
    match scenario {
        "benign" => vec![
            Expectation {
                what: "a Kerberos AS-REP for alice",
                at_least: 1,
                matches: |a| is(a, "kerberos", "AS_REP") && field(a, "client") == "alice",
            },
            Expectation {
                what: "service tickets",
                at_least: 1,
                matches: |a| is(a, "kerberos", "TGS_REP"),
            },
            Expectation {
                what: "LDAP binds",
                at_least: 1,
                matches: |a| is(a, "ldap", "BIND"),
            },
            Expectation {
                what: "DNS lookups",
                at_least: 1,
                matches: |a| is(a, "dns", "QUERY"),
            },
            Expectation {
                what: "an SMB logon of alice with NTLM",
                at_least: 1,
                matches: |a| {
                    is(a, "smb", "SESSION_SETUP")
                        && field(a, "mechanism") == "NTLM"
                        && field(a, "user") == "alice"
                        && succeeded(a)
                },
            },
            Expectation {
                what: "an SMB logon with Kerberos (its AP-REQ carried by SMB)",
                at_least: 1,
                matches: |a| is(a, "kerberos", "AP_REQ") && field(a, "carrier") == "SMB",
            },
            Expectation {
                what: "the share connected",
                at_least: 1,
                matches: |a| is(a, "smb", "TREE_CONNECT") && field(a, "share").ends_with("\\share"),
            },
            Expectation {
                what: "readme.txt opened",
                at_least: 1,
                matches: |a| is(a, "smb", "CREATE") && field(a, "file_name") == "readme.txt",
            },
        ],
        "kerberoast" => vec![Expectation {
            // impacket asks for the ticket by the account's name rather than its SPN.
            what: "an RC4 service ticket for svc_sql, the account with the SQL service's SPN",
            at_least: 1,
            matches: |a| {
                is(a, "kerberos", "TGS_REP")
                    && (field(a, "service") == "svc_sql"
                        || field(a, "service").starts_with("MSSQLSvc/"))
                    && a["ticket_etype"] == 23
            },
        }],
        "dcsync" => vec![
            Expectation {
                what: "the endpoint mapper asked where DRSUAPI is",
                at_least: 1,
                matches: |a| {
                    is(a, "dcerpc", "REQUEST")
                        && field(a, "operation") == "ept_map"
                        && a["endpoints"]
                            .as_array()
                            .is_some_and(|list| !list.is_empty())
                },
            },
            Expectation {
                what: "DsGetNCChanges calls (DCSync) on the port it announced",
                at_least: 1,
                matches: |a| {
                    is(a, "dcerpc", "REQUEST")
                        && field(a, "interface_name") == "drsuapi"
                        && field(a, "operation") == "DsGetNCChanges"
                },
            },
        ],
        "pass-the-hash" => vec![Expectation {
            what: "an NTLM logon of Administrator over SMB",
            at_least: 1,
            matches: |a| {
                is(a, "ntlm", "AUTHENTICATE")
                    && field(a, "carrier") == "SMB"
                    && field(a, "user") == "Administrator"
                    && succeeded(a)
            },
        }],
        "bruteforce-ntlm" => vec![Expectation {
            what: "SMB logons refused with STATUS_LOGON_FAILURE",
            at_least: 3,
            matches: |a| {
                is(a, "smb", "SESSION_SETUP") && a["outcome"]["name"] == "STATUS_LOGON_FAILURE"
            },
        }],
        "recon-samr" => vec![
            Expectation {
                what: "SAMR user enumeration over a named pipe",
                at_least: 1,
                matches: |a| {
                    is(a, "dcerpc", "REQUEST")
                        && field(a, "operation") == "SamrEnumerateUsersInDomain"
                        && field(a, "carrier") == "SMB"
                },
            },
            Expectation {
                what: "LSA lookups",
                at_least: 1,
                matches: |a| is(a, "dcerpc", "REQUEST") && field(a, "interface_name") == "lsarpc",
            },
        ],
        "psexec" => vec![Expectation {
            // Samba has no service control manager to create it with: the call faults.
            what: "a service created through SVCCTL, with its name and binary path",
            at_least: 1,
            matches: |a| {
                is(a, "dcerpc", "REQUEST")
                    && field(a, "interface_name") == "svcctl"
                    && field(a, "operation").starts_with("RCreateService")
                    && !field(a, "service_name").is_empty()
                    && Path::new(field(a, "binary_path"))
                        .extension()
                        .is_some_and(|extension| extension.eq_ignore_ascii_case("exe"))
            },
        }],
        "asreproast" => vec![Expectation {
            what: "an AS-REP for bob, who needs no pre-authentication",
            at_least: 1,
            matches: |a| is(a, "kerberos", "AS_REP") && field(a, "client") == "bob",
        }],
        "overpass-the-hash" => vec![Expectation {
            what: "an AS-REQ asking for RC4 only",
            at_least: 1,
            matches: |a| is(a, "kerberos", "AS_REQ") && a["etypes"] == serde_json::json!([23]),
        }],
        "bruteforce-kerberos" => vec![Expectation {
            what: "pre-authentication failures",
            at_least: 3,
            matches: |a| is(a, "kerberos", "KRB_ERROR") && a["error_code"] == 24,
        }],
        "bruteforce-ldap" => vec![Expectation {
            what: "LDAP binds refused with invalidCredentials",
            at_least: 3,
            matches: |a| is(a, "ldap", "BIND") && a["result_code"] == 49,
        }],
        "recon-ldap" => vec![Expectation {
            what: "LDAP searches (or their sealed messages)",
            at_least: 1,
            matches: |a| is(a, "ldap", "SEARCH") || is(a, "ldap", "SEALED"),
        }],
        "axfr" => vec![Expectation {
            what: "a zone transfer request",
            at_least: 1,
            matches: |a| is(a, "dns", "AXFR"),
        }],
        other => attack_expectations(other),
    }
}

/// The attack scenarios: the fields each detection reads.
fn attack_expectations(scenario: &str) -> Vec<Expectation> {
    match scenario {
        // The wraps' Sealed flag is clear: the searches are read, and none is reported SEALED
        // (`absences`).
        "ldap-sign-kerberos" => vec![
            Expectation {
                what: "Kerberos SASL binds (AP-REQs carried by LDAP)",
                at_least: 3,
                matches: |a| is(a, "kerberos", "AP_REQ") && field(a, "carrier") == "LDAP",
            },
            Expectation {
                what: "the searches for SPNs, Domain Admins and adminCount=1 in sign-only wraps",
                at_least: 3,
                matches: |a| is(a, "ldap", "SEARCH") && a["sasl_signed"] == true,
            },
        ],
        // The buffers stay SEALED: an AD DC seals NTLM SASL whatever the client asked for.
        "ldap-sign-ntlm" => vec![
            Expectation {
                what: "an NTLM logon of alice carried by an LDAP SASL bind",
                at_least: 1,
                matches: |a| {
                    is(a, "ntlm", "AUTHENTICATE")
                        && field(a, "user") == "alice"
                        && field(a, "carrier") == "LDAP"
                        && succeeded(a)
                },
            },
            Expectation {
                what: "the client asked for signing without sealing (NTLMSSP SIGN set, SEAL clear)",
                at_least: 1,
                matches: |a| {
                    is(a, "ntlm", "AUTHENTICATE")
                        && a["negotiate_flags"]
                            .as_u64()
                            .is_some_and(|flags| flags & NTLM_SIGN != 0 && flags & NTLM_SEAL == 0)
                },
            },
            Expectation {
                what: "encrypted SASL buffers",
                at_least: 3,
                matches: |a| is(a, "ldap", "SEALED"),
            },
        ],
        // Sealed wraps: nothing read as signed-only (`absences`).
        "ldap-seal" => vec![
            Expectation {
                what: "GSSAPI binds",
                at_least: 3,
                matches: |a| is(a, "ldap", "BIND") && field(a, "sasl_mechanism") == "GSSAPI",
            },
            Expectation {
                what: "sealed SASL buffers",
                at_least: 3,
                matches: |a| is(a, "ldap", "SEALED"),
            },
        ],
        "dpapi-backupkey" => vec![
            Expectation {
                what: "LsarRetrievePrivateData (dpapi.py backupkeys; Samba faults it)",
                at_least: 1,
                matches: |a| call(a, "lsarpc", "LsarRetrievePrivateData"),
            },
            Expectation {
                what: "LsarOpenSecret of the backup key secrets, named",
                at_least: 3,
                matches: |a| {
                    call(a, "lsarpc", "LsarOpenSecret")
                        && field(a, "secret_name").starts_with("G$BCKUPKEY_")
                },
            },
            Expectation {
                what: "LsarQuerySecret answered",
                at_least: 2,
                matches: |a| call(a, "lsarpc", "LsarQuerySecret") && succeeded(a),
            },
            Expectation {
                what: "a BackupKey (BKRP) call",
                at_least: 1,
                matches: |a| call(a, "bkrp", "BackuprKey"),
            },
        ],
        "session-enum" => vec![
            Expectation {
                what: "NetrSessionEnum calls",
                at_least: 6,
                matches: |a| call(a, "srvsvc", "NetrSessionEnum"),
            },
            Expectation {
                what: "levels 10 and 502 asked (the ones that name users and clients)",
                at_least: 2,
                matches: |a| {
                    call(a, "srvsvc", "NetrSessionEnum")
                        && (a["info_level"] == 10 || a["info_level"] == 502)
                },
            },
            Expectation {
                what: "the answered NetrSessionEnum's session: Administrator from the client",
                at_least: 1,
                matches: |a| {
                    call(a, "srvsvc", "NetrSessionEnum")
                        && succeeded(a)
                        && a["sessions"].as_array().is_some_and(|sessions| {
                            sessions.iter().any(|session| {
                                session["client"] == "10.98.0.2"
                                    && session["user"] == "LAB\\Administrator"
                            })
                        })
                },
            },
            Expectation {
                what: "NetrShareEnum answers listing the DC's shares",
                at_least: 4,
                matches: |a| {
                    call(a, "srvsvc", "NetrShareEnum")
                        && a["shares"]
                            .as_array()
                            .is_some_and(|shares| shares.iter().any(|share| share == "sysvol"))
                },
            },
            Expectation {
                what: "NetrWkstaUserEnum calls",
                at_least: 2,
                matches: |a| call(a, "wkssvc", "NetrWkstaUserEnum"),
            },
        ],
        // Samba refuses the bind; the calls on the refused context keep its interface's name.
        "petitpotam" => vec![
            Expectation {
                what: "EFSRPC binds on \\pipe\\lsarpc (refused by Samba)",
                at_least: 2,
                matches: |a| binds(a, "c681d488-d850-11d0-8c52-00c04fd90f7e"),
            },
            Expectation {
                what: "EfsRpcOpenFileRaw and EfsRpcEncryptFileSrv on the refused context, faulted, \
                       naming a file on the client's share",
                at_least: 2,
                matches: |a| {
                    (call(a, "efsrpc", "EfsRpcOpenFileRaw")
                        || call(a, "efsrpc", "EfsRpcEncryptFileSrv"))
                        && a["outcome"]["name"] == "nca_s_unk_if"
                        && field(a, "file_name").starts_with("\\\\10.98.0.2\\share\\")
                },
            },
            Expectation {
                what: "\\pipe\\efsrpc opened (not found on Samba)",
                at_least: 1,
                matches: |a| opened(a, "efsrpc", "STATUS_OBJECT_NAME_NOT_FOUND"),
            },
        ],
        "printerbug" => vec![Expectation {
            what: "RpcRemoteFindFirstPrinterChangeNotificationEx",
            at_least: 1,
            matches: |a| {
                call(
                    a,
                    "spoolss",
                    "RpcRemoteFindFirstPrinterChangeNotificationEx",
                ) && field(a, "local_machine") == "\\\\10.98.0.2"
            },
        }],
        "dfscoerce" => vec![Expectation {
            what: "NetrDfsRemoveStdRoot and NetrDfsAddStdRoot naming the client as ServerName",
            at_least: 2,
            matches: |a| {
                (call(a, "netdfs", "NetrDfsRemoveStdRoot")
                    || call(a, "netdfs", "NetrDfsAddStdRoot"))
                    && field(a, "server_name") == "10.98.0.2"
            },
        }],
        // All 5 tries, the first included: its connection to the port the endpoint mapper has
        // just announced may start before the sensor watches that port; DCE-RPC is then found by
        // its content.
        "zerologon" => vec![Expectation {
            what: "NetrServerAuthenticate3 with a zero credential, denied",
            at_least: 5,
            matches: |a| {
                call(a, "netlogon", "NetrServerAuthenticate3")
                    && a["zero_credential"] == true
                    && a["outcome"]["name"] == "STATUS_ACCESS_DENIED"
            },
        }],
        // Requests for RIDs 1000-1004 and 1100-1134; Samba answers those of the computer
        // accounts among them (DC1$, client1$ and filesrv01$).
        "timeroast" => vec![
            Expectation {
                what: "MS-SNTP requests with a RID as key identifier",
                at_least: 40,
                matches: |a| is(a, "ntp", "REQUEST") && a["rid"].is_u64(),
            },
            Expectation {
                what: "signed answers for the computer accounts",
                at_least: 3,
                matches: |a| is(a, "ntp", "RESPONSE") && a["authenticator_len"] == 20,
            },
        ],
        // No task reaches the wire: Samba has no \\pipe\\atsvc.
        "atexec" => vec![Expectation {
            what: "\\pipe\\atsvc opened (not found on Samba)",
            at_least: 1,
            matches: |a| opened(a, "atsvc", "STATUS_OBJECT_NAME_NOT_FOUND"),
        }],
        // No CLSID reaches the wire: Samba rejects the activation interface.
        "wmiexec" => vec![Expectation {
            what: "a DCOM activation bind (ISystemActivator) on 135, rejected",
            at_least: 1,
            matches: |a| {
                binds(a, "000001a0-0000-0000-c000-000000000046")
                    && a["contexts"][0]["result"] == "provider_rejection"
            },
        }],
        "dcomexec" => vec![Expectation {
            what: "DCOM activation binds (ISystemActivator) for MMC20 and ShellWindows",
            at_least: 2,
            matches: |a| binds(a, "000001a0-0000-0000-c000-000000000046"),
        }],
        "remote-registry" => vec![
            Expectation {
                what: "BaseRegOpenKey of the SAM, SECURITY and SYSTEM hives",
                at_least: 4,
                matches: |a| {
                    call(a, "winreg", "BaseRegOpenKey")
                        && ["HKLM\\SAM", "HKLM\\SECURITY", "HKLM\\SYSTEM"]
                            .contains(&field(a, "key_path"))
                },
            },
            Expectation {
                what: "BaseRegSaveKey of SYSTEM",
                at_least: 1,
                matches: |a| {
                    call(a, "winreg", "BaseRegSaveKey") && field(a, "key_path") == "HKLM\\SYSTEM"
                },
            },
        ],
        "spn-modify" => vec![
            Expectation {
                what: "carol's servicePrincipalName added then removed, with the value",
                at_least: 2,
                matches: |a| {
                    (modifies(
                        a,
                        "CN=carol,CN=Users,DC=lab,DC=example",
                        "add:servicePrincipalName",
                    ) || modifies(
                        a,
                        "CN=carol,CN=Users,DC=lab,DC=example",
                        "delete:servicePrincipalName",
                    )) && changes_value(a, "servicePrincipalName", "http/carol-web.lab.example")
                },
            },
            Expectation {
                what: "a service ticket for the new SPN",
                at_least: 1,
                matches: |a| {
                    is(a, "kerberos", "TGS_REP")
                        && field(a, "service") == "http/carol-web.lab.example"
                },
            },
        ],
        "group-modify" => vec![
            Expectation {
                what: "alice added to Domain Admins",
                at_least: 1,
                matches: |a| {
                    modifies(
                        a,
                        "CN=Domain Admins,CN=Users,DC=lab,DC=example",
                        "add:member",
                    ) && succeeded(a)
                        && changes_value(a, "member", "CN=Alice Lab,CN=Users,DC=lab,DC=example")
                },
            },
            Expectation {
                what: "the member removed",
                at_least: 1,
                matches: |a| {
                    modifies(
                        a,
                        "CN=Domain Admins,CN=Users,DC=lab,DC=example",
                        "delete:member",
                    )
                },
            },
        ],
        "nopac" => vec![
            Expectation {
                what: "the computer account created over SAMR",
                at_least: 1,
                matches: |a| call(a, "samr", "SamrCreateUser2InDomain") && succeeded(a),
            },
            Expectation {
                what: "the rename to the DC's name, refused (unwillingToPerform)",
                at_least: 1,
                matches: |a| {
                    modifies(
                        a,
                        "CN=NOPAC01,CN=Computers,DC=lab,DC=example",
                        "replace:sAMAccountName",
                    ) && a["result_code"] == 53
                        && changes_value(a, "sAMAccountName", "dc1")
                },
            },
            Expectation {
                what: "a TGT for NOPAC01$",
                at_least: 1,
                matches: |a| is(a, "kerberos", "AS_REP") && field(a, "client") == "NOPAC01$",
            },
            Expectation {
                what: "the S4U2self request for Administrator (refused by Samba)",
                at_least: 1,
                matches: |a| {
                    is(a, "kerberos", "TGS_REQ") && field(a, "s4u_user") == "Administrator"
                },
            },
        ],
        // The honeytoken is a directory fact (entity tags), not a field of the wire.
        "honeytoken" => vec![
            Expectation {
                what: "a TGT for honey_admin",
                at_least: 1,
                matches: |a| is(a, "kerberos", "AS_REP") && field(a, "client") == "honey_admin",
            },
            Expectation {
                what: "an SMB logon of honey_admin with NTLM",
                at_least: 1,
                matches: |a| {
                    is(a, "smb", "SESSION_SETUP")
                        && field(a, "user") == "honey_admin"
                        && succeeded(a)
                },
            },
        ],
        "golden-ticket" => vec![
            Expectation {
                what: "the DCSync that read krbtgt's keys",
                at_least: 1,
                matches: |a| call(a, "drsuapi", "DsGetNCChanges"),
            },
            Expectation {
                what: "the forged TGT presented: its key version and cipher length",
                at_least: 1,
                matches: |a| {
                    is(a, "kerberos", "TGS_REQ")
                        && a["ticket_kvno"] == 2
                        && a["ticket_cipher_len"].as_u64().is_some_and(|len| len > 0)
                },
            },
            Expectation {
                what: "a service ticket for Administrator from the forged TGT",
                at_least: 1,
                matches: |a| {
                    is(a, "kerberos", "TGS_REP")
                        && field(a, "client") == "Administrator"
                        && field(a, "service") == "cifs/dc1.lab.example"
                },
            },
            Expectation {
                what: "the SMB logon with it",
                at_least: 1,
                matches: |a| {
                    is(a, "kerberos", "AP_REQ") && field(a, "carrier") == "SMB" && succeeded(a)
                },
            },
        ],
        // The NETLOGON answer's opcode tells a name that exists (23) from one that does not (25).
        "ldap-ping-enum" => vec![
            Expectation {
                what: "CLDAP pings with a User= guess",
                at_least: 18,
                matches: |a| {
                    is(a, "ldap", "SEARCH")
                        && a["cldap"] == true
                        && field(a, "filter").contains("(User=")
                },
            },
            Expectation {
                what: "LDAP pings over TCP with a User= guess",
                at_least: 18,
                matches: |a| {
                    is(a, "ldap", "SEARCH")
                        && a["cldap"] != true
                        && field(a, "filter").contains("(User=")
                },
            },
            Expectation {
                what: "pings answered for names that exist (LOGON_SAM_LOGON_RESPONSE_EX, 23)",
                at_least: 10,
                matches: |a| pinged(a, 23),
            },
            Expectation {
                what: "pings answered for unknown names (LOGON_SAM_USER_UNKNOWN_EX, 25)",
                at_least: 26,
                matches: |a| pinged(a, 25),
            },
        ],
        "computer-ntlm" => vec![Expectation {
            what: "an NTLM logon of the computer account filesrv01$ over SMB",
            at_least: 1,
            matches: |a| {
                is(a, "ntlm", "AUTHENTICATE")
                    && field(a, "user") == "filesrv01$"
                    && field(a, "carrier") == "SMB"
                    && succeeded(a)
            },
        }],
        "account-enum" => vec![
            Expectation {
                what: "AS-REQs for the guessed names",
                at_least: 20,
                matches: |a| is(a, "kerberos", "AS_REQ"),
            },
            Expectation {
                what: "unknown names answered C_PRINCIPAL_UNKNOWN",
                at_least: 16,
                matches: |a| is(a, "kerberos", "KRB_ERROR") && a["error_code"] == 6,
            },
        ],
        "winevents-syslog" => vec![
            Expectation {
                what: "7045 (a service installed), in the four layouts",
                at_least: 4,
                matches: |a| event(a, 7045),
            },
            Expectation {
                // The RSA layout carries no event text, so no service name.
                what: "the service's name in the three layouts with the event text",
                at_least: 3,
                matches: |a| event(a, 7045) && field(a, "service_name") == "BTOBTO",
            },
            Expectation {
                what: "4728 (a member added to Domain Admins), in the four layouts",
                at_least: 4,
                matches: |a| event(a, 4728),
            },
            Expectation {
                what: "4732 (a member added to Administrators), in the four layouts",
                at_least: 4,
                matches: |a| event(a, 4732),
            },
            Expectation {
                what: "4756 (a member added to Enterprise Admins), in the four layouts",
                at_least: 4,
                matches: |a| event(a, 4756),
            },
            Expectation {
                what: "4726 (users deleted), 30 in each of the four layouts",
                at_least: 120,
                matches: |a| event(a, 4726),
            },
            Expectation {
                what: "the CEF layout read",
                at_least: 16,
                matches: |a| {
                    is(a, "windows_event", "EVENT") && field(a, "layout") == "ARCSIGHT_CEF"
                },
            },
            Expectation {
                what: "the QRadar layout read",
                at_least: 16,
                matches: |a| is(a, "windows_event", "EVENT") && field(a, "layout") == "QRADAR",
            },
        ],
        _ => Vec::new(),
    }
}

/// How many scenarios met their expectations.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Totals {
    pub passed: u64,
    pub failed: u64,
}

pub(crate) fn run(scenarios: &[String], keep: bool, save: Option<&Path>) -> anyhow::Result<()> {
    let totals = play_all(scenarios, keep, save, shell::Binaries::Build)?;
    if totals.failed > 0 {
        bail!(
            "{} of {} scenario(s) failed",
            totals.failed,
            totals.passed + totals.failed
        );
    }
    Ok(())
}

/// Brings the lab and a backend up, plays `scenarios` (all when empty) with the checks of each,
/// and takes the lab down unless `keep`. A failing scenario is reported and counted; the others
/// still play. With `save`, each scenario's activities are written to `DIR/SCENARIO.jsonl`, and
/// the lab's entities to `DIR/entities.jsonl`. The lab's directory is checked after the
/// scenarios ([`lab_entities`]).
pub(crate) fn play_all(
    scenarios: &[String],
    keep: bool,
    save: Option<&Path>,
    binaries: shell::Binaries,
) -> anyhow::Result<Totals> {
    shell::require_root("e2e")?;
    let sensor = shell::sensor("e2e", binaries)?;
    lab::run(LabTask::Up)?;
    let played = play_each(&sensor, scenarios, save);
    if !keep {
        lab::run(LabTask::Down)?;
    }
    played
}

fn play_each(sensor: &Path, scenarios: &[String], save: Option<&Path>) -> anyhow::Result<Totals> {
    let scenarios = if scenarios.is_empty() {
        lab::scenario_names()?
    } else {
        scenarios.to_vec()
    };
    if let Some(dir) = save {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut failures = Vec::new();
    println!(
        "{:<22} {:>10} {:>8} {:>6}  result",
        "scenario", "activities", "frames", "alerts"
    );
    for scenario in &scenarios {
        match check(sensor, scenario, save) {
            Ok(Checked {
                activities,
                frames,
                alerts,
            }) => println!("{scenario:<22} {activities:>10} {frames:>8} {alerts:>6}  ok"),
            Err(failure) => {
                println!(
                    "{scenario:<22} {:>10} {:>8} {:>6}  FAILED: {failure:#}",
                    "-", "-", "-"
                );
                failures.push(scenario.clone());
            }
        }
    }
    match lab_entities(sensor, save) {
        Ok(entities) => println!(
            "{:<22} {entities:>10} {:>8} {:>6}  ok",
            "entities", "-", "-"
        ),
        Err(failure) => {
            println!(
                "{:<22} {:>10} {:>8} {:>6}  FAILED: {failure:#}",
                "entities", "-", "-", "-"
            );
            failures.push("entities".to_owned());
        }
    }
    if !failures.is_empty() {
        eprintln!("e2e: failed: {}", failures.join(", "));
    }
    Ok(Totals {
        passed: (scenarios.len() - failures.len()) as u64,
        failed: failures.len() as u64,
    })
}

/// The sensor id the lab backend's token is added for. A token admits only the sensor id it
/// was added for, and the sensor's default id (the host name) varies, so the sensor is given
/// this one in its config (`[sensor] id`, see [`LabBackend::configure_sensor`]).
pub(crate) const LAB_SENSOR_ID: &str = "lab-sensor";

/// `dcwatch-backend` in the sensor's namespace, on its loopback, with a token for the sensor:
/// every scenario's activities are streamed to it, and must all arrive.
pub(crate) struct LabBackend {
    bin: PathBuf,
    dir: RunDir,
    token: String,
    process: Option<BackendProcess>,
}

/// What the lab's traffic is judged with, live and offline: the lab's DC and its honeytoken.
/// The golden-alert test replays the lab's bundled captures with the same file.
pub(crate) fn lab_detect_config() -> PathBuf {
    shell::workspace_root().join("testdata/pcaps/alerts/adlab.toml")
}

impl LabBackend {
    /// Starts the backend built beside `sensor`.
    pub(crate) fn start(sensor: &Path) -> anyhow::Result<Self> {
        Self::start_with(sensor, "")
    }

    /// Starts the backend built beside `sensor`, with `tables` (TOML: `[console]`...) ahead of
    /// the lab's `[detect]` in its configuration.
    pub(crate) fn start_with(sensor: &Path, tables: &str) -> anyhow::Result<Self> {
        let bin = sensor.with_file_name("dcwatch-backend");
        let dir = RunDir::create()?;
        let data = dir.path().join("backend");
        let token = shell::stdout_of(
            Command::new(&bin)
                .args(["token", "add", LAB_SENSOR_ID, "--data-dir"])
                .arg(&data),
        )
        .context("adding the sensor's token")?
        .trim()
        .to_owned();
        // A replay judges in test mode, every threshold low: the backend is given the same, so
        // that the alerts of a scenario live and of its capture replayed can be compared.
        // (adlab.toml's one table is [detect], so the line lands in it.)
        let config = dir.path().join("backend.toml");
        let detect = std::fs::read_to_string(lab_detect_config())?;
        std::fs::write(&config, format!("{tables}\n{detect}threshold = \"low\"\n"))?;
        let mut command = Command::new("ip");
        command.args(["netns", "exec", SENSOR_NAMESPACE]).arg(&bin);
        let process =
            BackendProcess::start_configured(command, "127.0.0.1:0", &data, Some(&config))
                .context("starting dcwatch-backend")?;
        Ok(Self {
            bin,
            dir,
            token,
            process: Some(process),
        })
    }

    /// Stops the backend once detection has judged everything it stored (the store stays
    /// readable).
    pub(crate) fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(process) = self.process.take() {
            let status = process.stop().context("stopping dcwatch-backend")?;
            if !status.success() {
                bail!("dcwatch-backend exited with {status}");
            }
        }
        Ok(())
    }

    /// The alerts once detection has caught up with what the backend stored: it judges on its
    /// own thread, so the alerts are read until they stop changing (5 s at most).
    pub(crate) fn settled_alerts(&self) -> anyhow::Result<Vec<Value>> {
        let mut alerts = self.alerts()?;
        for _ in 0..10 {
            std::thread::sleep(Duration::from_millis(500));
            let again = self.alerts()?;
            if again == alerts {
                break;
            }
            alerts = again;
        }
        Ok(alerts)
    }

    /// Every alert in the store, as `dcwatch-backend alerts --json` prints them.
    pub(crate) fn alerts(&self) -> anyhow::Result<Vec<Value>> {
        let out = shell::stdout_of(
            Command::new(&self.bin)
                .args(["alerts", "--json", "--data-dir"])
                .arg(self.data_dir()),
        )
        .context("querying the backend's alerts")?;
        json_lines(&out)
    }

    /// Adds `[sensor] id = LAB_SENSOR_ID` to the sensor config file at `config` (made if
    /// missing): the id the token admits.
    pub(crate) fn configure_sensor(config: &Path) -> anyhow::Result<()> {
        let mut text = match std::fs::read_to_string(config) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => {
                return Err(error).with_context(|| format!("reading {}", config.display()));
            }
        };
        text.push_str(&format!("\n[sensor]\nid = \"{LAB_SENSOR_ID}\"\n"));
        std::fs::write(config, text).with_context(|| format!("writing {}", config.display()))
    }

    /// A sensor config file with only `[sensor] id`, for a run that has no config of its own.
    pub(crate) fn sensor_config(&self) -> anyhow::Result<PathBuf> {
        let config = self.dir.path().join("sensor.toml");
        std::fs::write(&config, "")?;
        Self::configure_sensor(&config)?;
        Ok(config)
    }

    /// What `dcwatch-sensor run` needs to stream to it (the sensor id comes with its config:
    /// [`LabBackend::configure_sensor`]).
    pub(crate) fn sensor_args(&self) -> Vec<String> {
        let data = self.dir.path().join("backend");
        let url = self
            .process
            .as_ref()
            .map(BackendProcess::url)
            .unwrap_or_default();
        vec![
            "--backend".to_owned(),
            url,
            "--token".to_owned(),
            self.token.clone(),
            "--ca".to_owned(),
            data.join("tls/ca.pem").to_string_lossy().into_owned(),
            "--spool-dir".to_owned(),
            self.dir.path().join("spool").to_string_lossy().into_owned(),
        ]
    }

    /// Every activity stored, as the JSON lines the sensor prints.
    pub(crate) fn stored(&self) -> anyhow::Result<Vec<String>> {
        let out = shell::stdout_of(
            Command::new(&self.bin)
                .args(["activities", "--json", "--data-dir"])
                .arg(self.data_dir()),
        )
        .context("querying the backend")?;
        Ok(out.lines().map(str::to_owned).collect())
    }

    /// The `dcwatch-backend` binary, for its other commands.
    pub(crate) fn bin(&self) -> &Path {
        &self.bin
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("backend")
    }
}

/// How many of each line.
fn multiset(lines: impl IntoIterator<Item = String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in lines {
        *counts.entry(line).or_insert(0) += 1;
    }
    counts
}

/// What the sensor reported while one scenario played.
pub(crate) struct Played {
    pub activities: Vec<Value>,
    /// The JSON lines as printed.
    pub lines: Vec<String>,
    /// Frames the sensor delivered from the ring.
    pub frames: u64,
}

/// Runs the sensor on the mirror while `scenario` plays, streaming to `backend`; checks that
/// no frame was lost. With `capture`, what the mirror carried is also written to
/// `CAPTURE/SCENARIO.pcap`.
pub(crate) fn play(
    sensor: &Path,
    scenario: &str,
    backend: &LabBackend,
    capture: Option<&Path>,
) -> anyhow::Result<Played> {
    let run = RunDir::create()?;
    LabBackend::configure_sensor(&run.config)?;
    let mut extra = vec![
        "--mode".to_owned(),
        "mirror".to_owned(),
        "--output".to_owned(),
        "json".to_owned(),
        // The Windows events the winevents-syslog scenario forwards arrive here, not on the mirror.
        "--syslog-listen".to_owned(),
        SYSLOG_LISTEN.to_owned(),
    ];
    extra.extend(backend.sensor_args());
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", SENSOR_NAMESPACE])
        .arg(sensor)
        .args(run.run_args(&[MIRROR_INTERFACE], &extra));
    let process = SensorProcess::spawn(command, 1).context("starting the sensor")?;
    let played = lab::run(LabTask::Scenario {
        names: vec![scenario.to_owned()],
        capture: capture.map(Path::to_path_buf),
    });
    // Let the last frames through the mirror and the ring, and a stats write happen.
    std::thread::sleep(Duration::from_secs(2));
    let finished = process.stop()?;
    played.with_context(|| format!("playing {scenario}"))?;
    if !finished.status.success() {
        bail!(
            "the sensor exited with {}: {}",
            finished.status,
            finished.stderr.join("\n")
        );
    }
    let stats = stats_file::read(&run.stats)?;
    let counter = |name| stats_file::counter(&stats, name);
    if counter("ringbuf_full") != 0 || counter("matched") != counter("copied") {
        bail!("frames lost in the ring: {stats:?}");
    }
    if counter("delivered") != counter("copied") || counter("decode_errors") != 0 {
        bail!("frames lost after the ring: {stats:?}");
    }
    if counter("spool_batches") != 0 || counter("spool_evicted_batches") != 0 {
        bail!("activities not acknowledged by the backend: {stats:?}");
    }
    let activities: Vec<Value> = finished
        .stdout
        .iter()
        .map(|line| serde_json::from_str(line))
        .collect::<Result<_, _>>()
        .context("an activity that is not JSON")?;
    Ok(Played {
        activities,
        lines: finished.stdout,
        frames: counter("delivered"),
    })
}

/// What one scenario gave.
struct Checked {
    activities: usize,
    frames: u64,
    alerts: usize,
}

/// Plays `scenario` with a backend of its own and checks the activities it must produce, that
/// the backend received exactly what the sensor printed, and the alerts it raised.
fn check(sensor: &Path, scenario: &str, save: Option<&Path>) -> anyhow::Result<Checked> {
    let mut backend = LabBackend::start(sensor)?;
    let captures = RunDir::create()?;
    let played = play(sensor, scenario, &backend, Some(captures.path()))?;
    let pcap = captures.path().join(format!("{scenario}.pcap"));
    judge(sensor, scenario, save, &mut backend, played, &pcap)
        .map_err(|failure| keep_capture(failure, scenario, &pcap))
}

/// A failed scenario's capture, copied where the run directory's removal does not reach, so
/// that the failure can be replayed and read.
fn keep_capture(failure: anyhow::Error, scenario: &str, pcap: &Path) -> anyhow::Error {
    let kept = shell::workspace_root()
        .join("target/e2e-failures")
        .join(format!("{scenario}.pcap"));
    let copied = kept
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::copy(pcap, &kept));
    match copied {
        Ok(_) => failure.context(format!("its capture is kept in {}", kept.display())),
        Err(error) => failure.context(format!("its capture could not be kept: {error}")),
    }
}

/// The checks of a played scenario: what the backend stored, the scenario's expectations and
/// absences, and its alerts.
fn judge(
    sensor: &Path,
    scenario: &str,
    save: Option<&Path>,
    backend: &mut LabBackend,
    Played {
        activities,
        lines,
        frames,
    }: Played,
    pcap: &Path,
) -> anyhow::Result<Checked> {
    let mut sent = lines.clone();
    if PLAYED_TWICE.contains(&scenario) {
        sent.extend(again_updates(sensor, scenario, backend)?);
    }
    backend.stop()?;
    if let Some(dir) = save {
        write_lines(&dir.join(format!("{scenario}.jsonl")), &lines)?;
    }
    if multiset(backend.stored()?) != multiset(sent) {
        bail!("the backend did not store exactly what the sensor printed");
    }
    for expectation in expectations(scenario) {
        let found = matching(&activities, expectation.matches);
        if found < expectation.at_least {
            bail!(
                "expected at least {} x {}, found {found}",
                expectation.at_least,
                expectation.what
            );
        }
    }
    for absence in absences(scenario) {
        let found = matching(&activities, absence.matches);
        if found > 0 {
            bail!("expected no {}, found {found}", absence.what);
        }
    }
    let alerts = backend.alerts()?;
    if let Some(dir) = save {
        let lines: Vec<String> = alerts.iter().map(Value::to_string).collect();
        write_lines(&dir.join(format!("{scenario}.alerts.jsonl")), &lines)?;
    }
    judge_alerts(sensor, scenario, &alerts, pcap)?;
    Ok(Checked {
        activities: activities.len(),
        frames,
        alerts: alerts.len(),
    })
}

/// The lab's DC as the sensor's `[directory]` sees it: a Kerberos bind, sealed, with the keys in
/// `keytab` (tests/lab/lab.sh: realm LAB.EXAMPLE, DC dc1.lab.example at 10.98.0.1).
fn lab_directory_config(keytab: &Path) -> String {
    format!(
        "[directory]\n[[directory.domains]]\nbase_dn = \"DC=lab,DC=example\"\n\
         dcs = [\"dc1.lab.example\"]\ndc_addresses = [\"10.98.0.1\"]\nbind = \"kerberos\"\n\
         tls = \"none\"\nkeytab = \"{}\"\nprincipal = \"Administrator@LAB.EXAMPLE\"\nsync = true\n",
        keytab.display()
    )
}

/// The shell line, run in the lab's DC namespace (where `$0` is the DC's state directory and
/// KRB5_CONFIG the lab's), that exports Administrator's keys to `keytab` (0600) and has the
/// sensor sync the directory to `snapshot`. The DC's ldap/ SPN is added when samba_spnupdate has
/// not. No password is handled: the keys come from the DC's own database.
fn lab_directory_sync(sensor: &Path, config: &Path, keytab: &Path, snapshot: &Path) -> String {
    format!(
        "set -e; samba-tool spn list 'DC1$' --configfile=$0/etc/smb.conf | \
         grep -qi ldap/dc1.lab.example || samba-tool spn add ldap/dc1.lab.example 'DC1$' \
         --configfile=$0/etc/smb.conf >/dev/null; \
         rm -f {keytab}; (umask 077; samba-tool domain exportkeytab {keytab} \
         --principal=Administrator@LAB.EXAMPLE --configfile=$0/etc/smb.conf >/dev/null); \
         {sensor} directory sync --config {config} --out {snapshot}",
        keytab = keytab.display(),
        sensor = sensor.display(),
        config = config.display(),
        snapshot = snapshot.display(),
    )
}

/// The lab's directory as a backend prints it (`dcwatch-backend entities --json`, with the
/// lab's honeytoken configured): the sensor syncs it from the lab's DC, and a backend of its own
/// imports the snapshot. Checked against what lab.sh made ([`check_lab_entities`]), and written
/// to `DIR/entities.jsonl` with `--save`. Returns how many entities there are.
fn lab_entities(sensor: &Path, save: Option<&Path>) -> anyhow::Result<usize> {
    let run = RunDir::create()?;
    let keytab = run.path().join("lab.keytab");
    let config = run.path().join("directory.toml");
    let snapshot = run.path().join("directory.jsonl");
    std::fs::write(&config, lab_directory_config(&keytab))?;
    lab::run(LabTask::Exec {
        namespace: lab::Namespace::Dc,
        command: vec![lab_directory_sync(sensor, &config, &keytab, &snapshot)],
    })
    .context("syncing the lab's directory")?;
    let backend = sensor.with_file_name("dcwatch-backend");
    let data = run.path().join("backend");
    std::fs::create_dir_all(&data)?;
    shell::run(
        Command::new(&backend)
            .args(["directory", "import"])
            .arg(&snapshot)
            .arg("--data-dir")
            .arg(&data),
    )?;
    let backend_config = run.path().join("backend.toml");
    std::fs::write(
        &backend_config,
        format!(
            "data_dir = \"{}\"\n[entities]\nhoneytokens = [\"honey_admin\"]\n",
            data.display()
        ),
    )?;
    let entities = shell::stdout_of(
        Command::new(&backend)
            .args(["entities", "--json", "--config"])
            .arg(&backend_config),
    )?;
    if let Some(dir) = save {
        let lines: Vec<String> = entities.lines().map(str::to_owned).collect();
        write_lines(&dir.join("entities.jsonl"), &lines)?;
    }
    let entities = json_lines(&entities)?;
    check_lab_entities(&entities)?;
    Ok(entities.len())
}

/// What tests/lab/lab.sh made, as `entities --json` must print it: each the fact a detection
/// relies on (a honeytoken, an AS-REP roastable user, sensitivity through a nested group, a
/// user's SPN, the DC).
fn check_lab_entities(entities: &[Value]) -> anyhow::Result<()> {
    let by_name = |name: &str| {
        entities
            .iter()
            .find(|entity| entity["sam_account_name"] == name)
            .with_context(|| format!("the lab's {name} is not among the entities"))
    };
    let tag = |entity: &Value, tag: &str| -> Option<String> {
        entity["tags"].as_array()?.iter().find_map(|t| {
            (t["name"] == tag).then(|| t["reason"].as_str().unwrap_or_default().to_owned())
        })
    };
    let expect_tag = |name: &str, wanted: &str, reason_has: &str| -> anyhow::Result<()> {
        let entity = by_name(name)?;
        match tag(entity, wanted) {
            Some(reason) if reason.contains(reason_has) => Ok(()),
            Some(reason) => bail!("{name} is tagged {wanted} for {reason:?}, not {reason_has:?}"),
            None => bail!("{name} is not tagged {wanted}: {}", entity["tags"]),
        }
    };
    for entity in entities {
        for field in [
            "kind",
            "domain",
            "dn",
            "sid",
            "sam_account_name",
            "tags",
            "groups",
        ] {
            if entity.get(field).is_none() {
                bail!("an entity has no {field}: {entity}");
            }
        }
    }
    expect_tag("honey_admin", "honeytoken", "configured")?;
    expect_tag("bob", "dont_req_preauth", "DONT_REQ_PREAUTH")?;
    // Administrator is in several of the sensitive groups: any of them may be the one named.
    expect_tag("Administrator", "sensitive", "member of")?;
    expect_tag("it_admin", "sensitive", "Domain Admins via IT-Admins")?;
    expect_tag("DC1$", "dc", "SERVER_TRUST_ACCOUNT")?;
    let svc_sql = by_name("svc_sql")?;
    let spn = "MSSQLSvc/sql01.lab.example:1433";
    if !svc_sql["spns"].as_array().is_some_and(|spns| {
        spns.iter()
            .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(spn)))
    }) {
        bail!("svc_sql lacks its SPN {spn}: {}", svc_sql["spns"]);
    }
    if tag(by_name("alice")?, "sensitive").is_some() {
        bail!("alice, in no privileged group, is tagged sensitive");
    }
    Ok(())
}

/// Scenarios played a second time against the same backend: the attack repeated updates its
/// alerts rather than raising new ones.
const PLAYED_TWICE: &[&str] = &["kerberoast", "bruteforce-ntlm", "recon-ldap", "honeytoken"];

/// How many of `activities` match.
fn matching(activities: &[Value], matches: fn(&Value) -> bool) -> usize {
    activities
        .iter()
        .filter(|activity| matches(activity))
        .count()
}

/// Each alert's count, by id.
fn counts_by_id(alerts: &[Value]) -> BTreeMap<String, u64> {
    alerts
        .iter()
        .map(|alert| (field(alert, "id").to_owned(), alert_count(alert)))
        .collect()
}

/// Plays `scenario` again: the activities the sensor printed.
fn again_updates(
    sensor: &Path,
    scenario: &str,
    backend: &LabBackend,
) -> anyhow::Result<Vec<String>> {
    let first = counts_by_id(&backend.settled_alerts()?);
    let again = play(sensor, scenario, backend, None)?;
    let second = counts_by_id(&backend.settled_alerts()?);
    if !first.keys().eq(second.keys()) {
        bail!("played again, the attack raised new alerts: {first:?} then {second:?}");
    }
    if first.iter().any(|(id, count)| second[id] < *count) {
        bail!("played again, an alert's count went down: {first:?} then {second:?}");
    }
    Ok(again.lines)
}

/// An alert's `count` (a 64-bit number: a string in proto's JSON).
fn alert_count(alert: &Value) -> u64 {
    field(alert, "count").parse().unwrap_or_default()
}

fn write_lines(path: &Path, lines: &[String]) -> anyhow::Result<()> {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn json_lines(text: &str) -> anyhow::Result<Vec<Value>> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).with_context(|| format!("not JSON: {line}")))
        .collect()
}

/// How many alerts of each type.
fn types(alerts: &[Value]) -> BTreeMap<String, usize> {
    multiset(alerts.iter().map(|alert| field(alert, "type").to_owned()))
}

/// The scenarios whose alerts come from what a SIEM forwards to the sensor's syslog listener,
/// which a replay of the mirror's capture does not carry.
const JUDGED_FROM_SYSLOG: &[&str] = &["winevents-syslog"];

/// The backend raised exactly the alert types the scenario's attack stands for, and the same
/// alerts as a replay of what the mirror carried.
fn judge_alerts(
    sensor: &Path,
    scenario: &str,
    alerts: &[Value],
    pcap: &Path,
) -> anyhow::Result<()> {
    let live = types(alerts);
    let raised: Vec<&str> = live.keys().map(String::as_str).collect();
    let expected = expected_alerts(scenario);
    if raised != expected {
        bail!("the backend raised alerts {live:?}, where the attack stands for {expected:?}");
    }
    if JUDGED_FROM_SYSLOG.contains(&scenario) {
        return Ok(());
    }
    let out = shell::stdout_of(
        Command::new(sensor)
            .arg("replay")
            .arg(pcap)
            .args(["--alerts", "json", "--config"])
            .arg(lab_detect_config()),
    )
    .with_context(|| format!("replaying {}", pcap.display()))?;
    let replayed = types(&json_lines(&out)?);
    if replayed != live {
        bail!(
            "live the backend raised {live:?}; the mirror's capture replayed raises {replayed:?}"
        );
    }
    Ok(())
}

/// The alert types each scenario's attack stands for (sorted), and none for the benign traffic
/// and the attacks Part I cannot judge (testdata/pcaps/alerts/expected.tsv says why for each).
fn expected_alerts(scenario: &str) -> Vec<&'static str> {
    let mut types = match scenario {
        "kerberoast" => vec!["kerberoasting"],
        "asreproast" => vec!["asrep_roasting"],
        // secretsdump looks the accounts up over SAMR before it replicates them.
        "dcsync" | "golden-ticket" => vec!["dcsync", "samr_recon"],
        "overpass-the-hash" => vec!["overpass_the_hash"],
        "bruteforce-kerberos" | "bruteforce-ntlm" => vec!["brute_force"],
        "bruteforce-ldap" => vec!["ldap_brute_force"],
        "spray" => vec!["password_spray"],
        "recon-samr" => vec!["samr_recon"],
        "recon-ldap" | "ldap-sign-kerberos" => vec!["ldap_recon"],
        "psexec" => vec!["remote_execution"],
        "axfr" => vec!["dns_recon"],
        "dpapi-backupkey" => vec!["dpapi_backup_key"],
        "session-enum" => vec!["smb_session_enumeration"],
        "petitpotam" => vec!["efsrpc_coercion"],
        "printerbug" => vec!["printer_bug_coercion"],
        "dfscoerce" => vec!["dfs_coercion"],
        "zerologon" => vec!["zerologon"],
        "timeroast" => vec!["timeroasting"],
        "remote-registry" => vec!["remote_registry_dump"],
        "group-modify" => vec!["sensitive_group_change"],
        "nopac" => vec!["nopac"],
        "honeytoken" => vec!["honeytoken_activity"],
        "ldap-ping-enum" => vec!["ldap_ping_enumeration"],
        "account-enum" => vec!["account_enumeration"],
        "winevents-syslog" => vec![
            "massive_object_deletion",
            "sensitive_group_change",
            "suspicious_service_creation",
        ],
        // benign; pass-the-hash (Part II: a learned profile); ldap-sign-ntlm and ldap-seal
        // (sealed searches); atexec, wmiexec and dcomexec (refused before any call);
        // spn-modify; computer-ntlm.
        _ => Vec::new(),
    };
    types.sort_unstable();
    types
}

#[cfg(test)]
mod tests {
    use super::check_lab_entities;
    use serde_json::{Value, json};

    fn user(name: &str, tags: &[(&str, &str)], spns: &[&str]) -> Value {
        json!({
            "kind": "user", "domain": "lab.example", "dn": format!("CN={name},CN=Users,DC=lab,DC=example"),
            "sid": "S-1-5-21-1-2-3-1000", "sam_account_name": name, "groups": [],
            "tags": tags.iter().map(|(n, r)| json!({"name": n, "reason": r})).collect::<Vec<_>>(),
            "spns": spns,
        })
    }

    /// The lab as lab.sh makes it, as far as the check reads it.
    fn lab() -> Vec<Value> {
        vec![
            user(
                "honey_admin",
                &[("honeytoken", "configured as a honeytoken")],
                &[],
            ),
            user(
                "bob",
                &[("dont_req_preauth", "userAccountControl DONT_REQ_PREAUTH")],
                &[],
            ),
            user(
                "Administrator",
                &[("sensitive", "member of Administrators")],
                &[],
            ),
            user(
                "it_admin",
                &[("sensitive", "member of Domain Admins via IT-Admins")],
                &[],
            ),
            user(
                "DC1$",
                &[("dc", "userAccountControl SERVER_TRUST_ACCOUNT")],
                &[],
            ),
            user("svc_sql", &[], &["MSSQLSvc/sql01.lab.example:1433"]),
            user("alice", &[], &[]),
        ]
    }

    #[test]
    fn the_lab_as_made_passes() {
        check_lab_entities(&lab()).expect("the lab's facts");
    }

    #[test]
    fn each_missing_fact_fails() {
        for (index, broken) in [
            user("honey_admin", &[], &[]),
            user("bob", &[], &[]),
            user("Administrator", &[], &[]),
            user("it_admin", &[("sensitive", "member of Domain Admins")], &[]),
            user("DC1$", &[], &[]),
            user("svc_sql", &[], &[]),
            user("alice", &[("sensitive", "member of Domain Admins")], &[]),
        ]
        .into_iter()
        .enumerate()
        {
            let mut entities = lab();
            entities[index] = broken;
            assert!(
                check_lab_entities(&entities).is_err(),
                "entity {index} broken still passed"
            );
        }
        let mut nameless = lab();
        nameless[0].as_object_mut().map(|o| o.remove("sid"));
        assert!(check_lab_entities(&nameless).is_err());
    }
}
