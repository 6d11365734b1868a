//! Suspicious service creation (MDI 2026): event 7045 (a service was installed) whose binary
//! path shows the marks of an attack tool, or that matches a service created remotely over
//! SVCCTL that the sensor saw on the wire. MDI does not say what makes a service suspicious;
//! the marks are Sigma's and the tools' own (`MARKS`): a command shell or PowerShell run
//! inline, the ADMIN$ share, temporary folders, smbexec's `.bat & del` and `__output`, and
//! PsExec's random eight-letter executable at the root of the Windows folder or a share. A
//! driver or program installed from its own folder has none of these.
//!
//! The alert's primary entity is the computer that created it when the wire shows it (the
//! SVCCTL caller), else the computer the service was installed on. The SVCCTL call and the
//! event come from different sources and may arrive in either order within `MATCH_WITHIN`.

use dcwatch_proto::v1::{
    AlertEntity, activity::Body, alert::Confidence, alert_entity::Role, dce_rpc_activity,
};

use super::{Context, Detector, Interface, Kinds, target::clip};
use crate::{
    bounded::BoundedMap,
    catalogue::SUSPICIOUS_SERVICE_CREATION,
    finding::{Finding, actor_text, source_computer, source_key},
    knowledge::Knowledge,
    knowledge::short_name,
    observed::Observed,
    time::{MINUTE, Millis},
};

/// A 7045 and an SVCCTL creation of the same service name this close are one creation.
pub(super) const MATCH_WITHIN: Millis = 10 * MINUTE;
/// Remote creations and events remembered for the match.
pub(super) const MAX_WIRE_CREATIONS: usize = 4_096;
pub(super) const MAX_EVENTS: usize = 4_096;
/// Binary path text an alert quotes.
const MAX_PATH_QUOTED: usize = 300;

/// Marks of attack tools in a service's binary path, lower case, with what each says (Sigma
/// win_system_susp_service_installation and smbexec rules; impacket's psexec, smbexec, wmiexec).
const MARKS: [(&str, &str); 19] = [
    ("%comspec%", "runs a command through %COMSPEC%"),
    ("cmd /c", "runs a command line (cmd /c)"),
    ("cmd.exe /c", "runs a command line (cmd /c)"),
    ("cmd /q /c", "runs a command line (cmd /q /c)"),
    ("cmd.exe /q /c", "runs a command line (cmd /q /c)"),
    (" -nop", "runs PowerShell without a profile (-nop)"),
    (" -enc", "runs encoded PowerShell (-enc)"),
    (" -w hidden", "runs PowerShell hidden"),
    (" -windowstyle hidden", "runs PowerShell hidden"),
    (
        " -sta ",
        "runs PowerShell single-threaded (-sta), as launchers do",
    ),
    ("\\admin$\\", "runs from the ADMIN$ share"),
    (":\\temp\\", "runs from a temporary folder"),
    (
        "\\windows\\temp\\",
        "runs from the Windows temporary folder",
    ),
    ("\\perflogs\\", "runs from PerfLogs"),
    (
        ".bat & del",
        "writes, runs and deletes a batch file, as smbexec does",
    ),
    (
        "__output",
        "writes its output to a share, as smbexec and wmiexec do",
    ),
    (".downloadstring(", "downloads and runs a script"),
    (".downloadfile(", "downloads a file"),
    ("&&", "chains commands"),
];
/// smbexec's default service name.
const SMBEXEC_SERVICE: &str = "btobto";
/// Folders a random executable is dropped at the root of (PsExec: the first writable share).
const DROP_ROOTS: [&str; 6] = [
    "%systemroot%",
    "%windir%",
    "c:\\windows",
    "c:",
    "admin$",
    "c$",
];

/// Why a service looks like a tool's, if it does.
pub(super) fn suspicious(service: &str, path: &str) -> Option<String> {
    let lower = path.to_lowercase();
    if let Some((_, why)) = MARKS.iter().find(|(mark, _)| lower.contains(mark)) {
        return Some((*why).to_owned());
    }
    if service.eq_ignore_ascii_case(SMBEXEC_SERVICE) {
        return Some("has smbexec's service name BTOBTO".to_owned());
    }
    let unquoted = path.trim().trim_matches('"');
    let (folder, file) = unquoted.rsplit_once('\\')?;
    let stem = file
        .strip_suffix(".exe")
        .or_else(|| file.strip_suffix(".EXE"))?;
    let folder = folder.trim_end_matches('\\').to_lowercase();
    let root = DROP_ROOTS
        .iter()
        .any(|root| folder == *root || folder.ends_with(&format!("\\{root}")));
    let random = stem.len() == 8
        && stem.chars().all(|c| c.is_ascii_alphabetic())
        && stem.chars().any(|c| c.is_ascii_uppercase())
        && stem.chars().any(|c| c.is_ascii_lowercase());
    (root && random).then(|| {
        format!(
            "runs {file}, a random eight-letter program at the root of {folder}, as PsExec drops"
        )
    })
}

#[derive(Debug, Clone)]
struct WireCreation {
    key: String,
    creator: AlertEntity,
    creator_text: String,
    binary: String,
    time: Millis,
}

#[derive(Debug, Clone)]
struct Installed {
    computer: String,
    file: String,
    time: Millis,
    raised: bool,
}

#[derive(Debug)]
pub(super) struct SuspiciousServiceCreation {
    wire: BoundedMap<String, WireCreation>,
    events: BoundedMap<String, Installed>,
}

impl Default for SuspiciousServiceCreation {
    fn default() -> Self {
        Self {
            wire: BoundedMap::new(MAX_WIRE_CREATIONS),
            events: BoundedMap::new(MAX_EVENTS),
        }
    }
}

fn host_entity(computer: &str, knowledge: &Knowledge) -> (AlertEntity, String) {
    let found = knowledge.directory().by_dns_name(computer);
    let dc = found.is_some_and(dcwatch_entity::Object::is_domain_controller);
    let basis = match found {
        Some(object) if dc => format!(
            "directory: {} is a domain controller",
            object.sam_account_name
        ),
        Some(object) => format!(
            "directory: {} is not a domain controller",
            object.sam_account_name
        ),
        None => format!(
            "{computer} is not in the directory: judged as any computer whose events are forwarded"
        ),
    };
    let entity = AlertEntity {
        role: if dc {
            Role::DomainController
        } else {
            Role::DestinationComputer
        }
        .into(),
        name: computer.to_owned(),
        sid: found.map(|object| object.sid.clone()).unwrap_or_default(),
        ..AlertEntity::default()
    };
    (entity, basis)
}

fn quoted(text: &str) -> String {
    text.chars().take(MAX_PATH_QUOTED).collect()
}

impl Detector for SuspiciousServiceCreation {
    fn kinds(&self) -> Kinds {
        Kinds::requests(Interface::Svcctl) | Kinds::WINDOWS_EVENT
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        match seen.body() {
            Some(Body::Dcerpc(rpc))
                if rpc.r#type == dce_rpc_activity::Type::Request as i32
                    && rpc.interface_name == "svcctl"
                    && matches!(rpc.opnum, 12 | 24 | 44 | 45)
                    && !rpc.service_name.is_empty() =>
            {
                self.wire_creation(seen, &rpc.service_name, &rpc.binary_path, context);
            }
            Some(Body::WindowsEvent(event)) if event.event_id == 7045 => {
                self.installed(seen, event, context);
            }
            _ => {}
        }
    }

    fn evicted(&self) -> u64 {
        self.wire.evicted() + self.events.evicted()
    }
}

impl SuspiciousServiceCreation {
    fn wire_creation(
        &mut self,
        seen: &Observed<'_>,
        service: &str,
        binary: &str,
        context: &mut Context<'_>,
    ) {
        let name = service.to_lowercase();
        let creation = WireCreation {
            key: source_key(seen),
            creator: source_computer(seen),
            creator_text: actor_text(seen),
            binary: binary.to_owned(),
            time: seen.time,
        };
        *self
            .wire
            .touch(name.clone(), seen.time, || creation.clone()) = creation.clone();
        // The event arrived first: raise now, unless its own marks already did.
        let Some(installed) = self.events.get(&name).cloned() else {
            return;
        };
        if installed.raised || seen.time.abs_diff(installed.time) > MATCH_WITHIN.unsigned_abs() {
            return;
        }
        let raised = Installed {
            raised: true,
            ..installed.clone()
        };
        let slot = self.events.touch(name, seen.time, || raised.clone());
        *slot = raised;
        let finding = Finding::on(
            &SUSPICIOUS_SERVICE_CREATION,
            creation.key.clone(),
            seen,
            format!(
                "svcctl create {}, matching event 7045 on {}",
                clip(service),
                installed.computer
            ),
        );
        let finding = matched(
            finding,
            &creation,
            &clip(service),
            &installed.computer,
            &installed.file,
            None,
            context,
        );
        context.raise(finding);
    }

    fn installed(
        &mut self,
        seen: &Observed<'_>,
        event: &dcwatch_proto::v1::WindowsEventActivity,
        context: &mut Context<'_>,
    ) {
        let service = clip(&event.service_name);
        let service = service.as_str();
        let file = event.service_file.as_str();
        let computer = clip(&event.computer);
        let computer = computer.as_str();
        let name = event.service_name.to_lowercase();
        let why = suspicious(&event.service_name, file);
        let wire = self
            .wire
            .get(&name)
            .filter(|creation| seen.time.abs_diff(creation.time) <= MATCH_WITHIN.unsigned_abs())
            .cloned();
        if !name.is_empty() {
            let latest = Installed {
                computer: computer.to_owned(),
                file: file.to_owned(),
                time: seen.time,
                raised: why.is_some() || wire.is_some(),
            };
            let slot = self.events.touch(name, seen.time, || latest.clone());
            *slot = latest;
        }
        let summary = format!("event 7045 on {computer}: {service} {}", quoted(file));
        let finding = match (wire, why) {
            (Some(creation), why) => {
                let finding = Finding::on(
                    &SUSPICIOUS_SERVICE_CREATION,
                    creation.key.clone(),
                    seen,
                    summary,
                );
                matched(finding, &creation, service, computer, file, why, context)
            }
            (None, Some(why)) => {
                let (host, basis) = host_entity(computer, context.knowledge);
                let mut finding = Finding::on(
                    &SUSPICIOUS_SERVICE_CREATION,
                    format!("computer:{}", short_name(computer)),
                    seen,
                    summary,
                )
                .describe(format!(
                    "The service {service} was installed on {computer} (event 7045) running {}, which {why}: a tool's way to run commands there",
                    quoted(file)
                ))
                .detail("service_name", service)
                .detail("service_file", quoted(file))
                .detail("service_account", clip(&event.service_account))
                .detail("why", why)
                .relied_on(basis)
                .relied_on("event 7045 alone: the computer that created the service was not seen on the wire");
                // The syslog sender is not who created it: the host is the entity.
                finding.entities = vec![host];
                finding.confidence(Confidence::MediumConfidence)
            }
            (None, None) => return,
        };
        context.raise(finding);
    }
}

/// A finding for a creation the wire and the event both show.
fn matched(
    finding: Finding,
    creation: &WireCreation,
    service: &str,
    computer: &str,
    file: &str,
    why: Option<String>,
    context: &Context<'_>,
) -> Finding {
    let (host, basis) = host_entity(computer, context.knowledge);
    let marks = why
        .as_ref()
        .map(|why| format!(", which {why}"))
        .unwrap_or_default();
    let mut finding = finding
        .describe(format!(
            "{} created the service {service} on {computer} over SVCCTL, and {computer} installed it (event 7045) running {}{marks}",
            creation.creator_text,
            quoted(if file.is_empty() { &creation.binary } else { file }),
        ))
        .detail("service_name", service)
        .detail("service_file", quoted(file))
        .detail("binary_path_on_wire", quoted(&creation.binary))
        .relied_on(basis)
        .relied_on("the event's service name matches a creation seen on the wire");
    if let Some(why) = why {
        finding = finding.detail("why", why);
    }
    finding.entities = vec![creation.creator.clone(), host];
    finding
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::Directory;
    use dcwatch_proto::v1::{Activity, activity::Body};

    use super::suspicious;
    use crate::detectors::{
        builders::event_7045,
        testing::{activity, rpc_request, run, summary},
    };

    const ADMIN: &str = "10.98.0.96:50000";
    const DC: &str = "10.98.0.1:445";

    /// This detection's alerts (the SVCCTL creation also raises remote_execution).
    fn own(alerts: Vec<dcwatch_proto::v1::Alert>) -> Vec<dcwatch_proto::v1::Alert> {
        alerts
            .into_iter()
            .filter(|alert| alert.r#type == "suspicious_service_creation")
            .collect()
    }

    fn create(offset: i64, service: &str, binary: &str) -> Activity {
        let mut body = rpc_request("svcctl", 12, "RCreateServiceW");
        body.service_name = service.into();
        body.binary_path = binary.into();
        activity(offset, ADMIN, DC, Body::Dcerpc(body))
    }

    #[test]
    fn smbexec_service_is_suspicious_on_its_own() {
        let path = "%COMSPEC% /Q /c echo cd  ^> \\\\%COMPUTERNAME%\\C$\\__output 2^>^&1 > %SYSTEMROOT%\\wSXqbRTk.bat & %COMSPEC% /Q /c %SYSTEMROOT%\\wSXqbRTk.bat & del %SYSTEMROOT%\\wSXqbRTk.bat";
        let alerts = run(
            None,
            Directory::default(),
            &[event_7045(0, "DC1.lab.example", "BTOBTO", path)],
        );
        assert_eq!(
            summary(&alerts),
            [(
                "suspicious_service_creation".into(),
                "computer:dc1".into(),
                1
            )]
        );
        assert_eq!(alerts[0].external_id, 2026);
        assert!(
            alerts[0].description.starts_with(
                "The service BTOBTO was installed on DC1.lab.example (event 7045) running %COMSPEC%"
            ) && alerts[0]
                .description
                .contains("runs a command through %COMSPEC%"),
            "{}",
            alerts[0].description
        );
    }

    #[test]
    fn a_plain_service_created_over_svcctl_matches_its_event_in_either_order() {
        let alerts = own(run(
            None,
            Directory::default(),
            &[
                create(0, "UpdSvc", "C:\\Program Files\\Upd\\upd.exe"),
                event_7045(
                    2_000,
                    "DC1.lab.example",
                    "UpdSvc",
                    "C:\\Program Files\\Upd\\upd.exe",
                ),
            ],
        ));
        assert_eq!(
            summary(&alerts),
            [(
                "suspicious_service_creation".into(),
                "src:10.98.0.96".into(),
                1
            )]
        );
        assert!(
            alerts[0].description.starts_with(
                "10.98.0.96 created the service UpdSvc on DC1.lab.example over SVCCTL"
            ),
            "{}",
            alerts[0].description
        );
        let reversed = own(run(
            None,
            Directory::default(),
            &[
                event_7045(
                    0,
                    "DC1.lab.example",
                    "UpdSvc",
                    "C:\\Program Files\\Upd\\upd.exe",
                ),
                create(1_000, "UpdSvc", "C:\\Program Files\\Upd\\upd.exe"),
            ],
        ));
        assert_eq!(
            summary(&reversed),
            [(
                "suspicious_service_creation".into(),
                "src:10.98.0.96".into(),
                1
            )]
        );
    }

    #[test]
    fn a_normal_windows_service_with_a_plain_path_is_not_suspicious() {
        let events = [
            event_7045(
                0,
                "DC1.lab.example",
                "Windows Defender Firewall",
                "%SystemRoot%\\system32\\svchost.exe -k LocalServiceNoNetworkFirewall -p",
            ),
            event_7045(
                1,
                "DC1.lab.example",
                "MpKslDrv",
                "\\??\\C:\\ProgramData\\Microsoft\\Windows Defender\\Definition Updates\\{5A4E}\\MpKslDrv.sys",
            ),
            event_7045(
                2,
                "DC1.lab.example",
                "VMTools",
                "\"C:\\Program Files\\VMware\\VMware Tools\\vmtoolsd.exe\"",
            ),
            // Created long before on the wire: not the same creation.
            create(3, "Spooler2", "C:\\Windows\\System32\\spoolsv.exe"),
            event_7045(
                3 + 11 * 60_000,
                "DC1.lab.example",
                "Spooler2",
                "C:\\Windows\\System32\\spoolsv.exe",
            ),
        ];
        // The SVCCTL creation itself is remote execution, not this detection.
        let alerts = run(None, Directory::default(), &events);
        assert!(
            alerts
                .iter()
                .all(|alert| alert.r#type != "suspicious_service_creation"),
            "{alerts:?}"
        );
    }

    #[test]
    fn psexec_random_executables_are_told_from_ordinary_names() {
        assert!(suspicious("RKjq", "%SystemRoot%\\uQmWhtLd.exe").is_some());
        assert!(suspicious("x", "\\\\DC1\\ADMIN$\\aBcDeFgH.exe").is_some());
        assert!(suspicious("x", "C:\\Windows\\explorer.exe").is_none());
        assert!(suspicious("x", "C:\\Windows\\System32\\uQmWhtLd.exe").is_none());
        assert!(suspicious("x", "powershell.exe -nop -w hidden -enc SQBFAFgA").is_some());
    }
}
