//! Remote code execution attempt (MDI 2019): a command run on another computer through a
//! service (SVCCTL RCreateServiceW, RStartServiceW, RChangeServiceConfigW: PsExec, smbexec), a
//! scheduled job or task (ATSVC NetrJobAdd, SchRpcRegisterTask, SchRpcRun: atexec), WMI
//! (IWbemServices ExecMethod: wmiexec's Win32_Process.Create) or a DCOM object that runs
//! commands (MMC20.Application, ShellWindows, ShellBrowserWindow: dcomexec). MDI watches DCs;
//! this watches any host the sensor sees, and says when the target is a DC. The alert carries
//! the command, binary path or task when readable (WMI is usually sealed: then the method alone).
//! Querying services, listing tasks or a WMI query are administration, not execution.

use std::{collections::BTreeSet, net::IpAddr};

use dcwatch_proto::v1::{DceRpcActivity, activity::Body, alert_entity::Role, dce_rpc_activity};

use super::{
    Context, Detector, Interface, Kinds,
    target::{clip, listed, outcome_word, with_account},
};
use crate::{
    bounded::BoundedMap,
    catalogue::REMOTE_EXECUTION,
    finding::{Finding, actor_text, destination, destination_name, destination_text, source_key},
    observed::Observed,
};

pub(super) const MAX_SOURCES: usize = 20_000;
/// Actions a description lists per source.
pub(super) const MAX_ACTIONS_LISTED: usize = 10;
/// Command text an alert quotes.
const MAX_COMMAND_QUOTED: usize = 300;

/// DCOM classes that run commands (dcomexec).
const EXECUTING_CLASSES: [&str; 3] = ["MMC20.Application", "ShellWindows", "ShellBrowserWindow"];

#[derive(Debug)]
pub(super) struct RemoteExecution {
    sources: BoundedMap<Option<IpAddr>, BTreeSet<String>>,
}

impl Default for RemoteExecution {
    fn default() -> Self {
        Self {
            sources: BoundedMap::new(MAX_SOURCES),
        }
    }
}

/// What an execution call does, and the command it carries (empty when unreadable).
struct Execution {
    action: String,
    command: String,
    how: &'static str,
}

fn quoted(text: &str) -> String {
    text.chars().take(MAX_COMMAND_QUOTED).collect()
}

fn or_unreadable(text: &str, what: &str) -> String {
    if text.is_empty() {
        format!("an unreadable {what}")
    } else {
        quoted(text)
    }
}

fn execution(rpc: &DceRpcActivity) -> Option<Execution> {
    let service = || or_unreadable(&rpc.service_name, "service");
    let found = match (rpc.interface_name.as_str(), rpc.opnum) {
        ("svcctl", 12 | 24 | 44 | 45) => Execution {
            action: format!(
                "created the service {} running {}",
                service(),
                or_unreadable(&rpc.binary_path, "binary")
            ),
            command: rpc.binary_path.clone(),
            how: "service (SVCCTL)",
        },
        ("svcctl", 19 | 31) => Execution {
            action: format!("started the service {}", service()),
            command: String::new(),
            how: "service (SVCCTL)",
        },
        ("svcctl", 11 | 23) => Execution {
            action: if rpc.binary_path.is_empty() {
                format!("changed the configuration of the service {}", service())
            } else {
                format!(
                    "changed the service {} to run {}",
                    service(),
                    quoted(&rpc.binary_path)
                )
            },
            command: rpc.binary_path.clone(),
            how: "service (SVCCTL)",
        },
        ("atsvc", 0) => Execution {
            action: format!(
                "scheduled a job running {}",
                or_unreadable(&rpc.command, "command")
            ),
            command: rpc.command.clone(),
            how: "scheduled job (ATSVC)",
        },
        ("ITaskSchedulerService", 1) => {
            let command = format!("{} {}", rpc.command, rpc.arguments)
                .trim()
                .to_owned();
            Execution {
                action: format!(
                    "registered the task {} running {}",
                    or_unreadable(&rpc.task_path, "task"),
                    or_unreadable(&command, "command")
                ),
                command,
                how: "scheduled task (MS-TSCH)",
            }
        }
        ("ITaskSchedulerService", 12) => Execution {
            action: format!("ran the task {}", or_unreadable(&rpc.task_path, "task")),
            command: String::new(),
            how: "scheduled task (MS-TSCH)",
        },
        ("IWbemServices", 24 | 25) => Execution {
            action: if rpc.wmi_class.is_empty() {
                "executed a WMI method (its class and name sealed)".to_owned()
            } else {
                format!(
                    "executed the WMI method {}.{}",
                    clip(&rpc.wmi_class),
                    clip(&rpc.wmi_method)
                )
            },
            command: String::new(),
            how: "WMI",
        },
        ("ISystemActivator", 4) | ("IActivation", 0)
            if EXECUTING_CLASSES
                .iter()
                .any(|class| class.eq_ignore_ascii_case(&rpc.clsid_name)) =>
        {
            Execution {
                action: format!(
                    "activated the DCOM object {}, which runs commands",
                    clip(&rpc.clsid_name)
                ),
                command: String::new(),
                how: "DCOM",
            }
        }
        _ => return None,
    };
    Some(found)
}

impl Detector for RemoteExecution {
    fn kinds(&self) -> Kinds {
        Kinds::requests(Interface::Svcctl)
            | Kinds::requests(Interface::Atsvc)
            | Kinds::requests(Interface::ITaskSchedulerService)
            | Kinds::requests(Interface::IWbemServices)
            | Kinds::requests(Interface::ISystemActivator)
            | Kinds::requests(Interface::IActivation)
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        let Some(Body::Dcerpc(rpc)) = seen.body() else {
            return;
        };
        if rpc.r#type != dce_rpc_activity::Type::Request as i32 {
            return;
        }
        let Some(execution) = execution(rpc) else {
            return;
        };
        let dc = context
            .knowledge
            .domain_controller(seen.dst, destination_name(seen));
        let actions = self.sources.touch(seen.src, seen.time, BTreeSet::new);
        if actions.len() < MAX_ACTIONS_LISTED {
            actions.insert(execution.action.clone());
        }
        let target = if dc.yes {
            format!("the domain controller {}", destination_text(seen))
        } else {
            destination_text(seen)
        };
        let description = format!(
            "{} {}ran code remotely on {target} through a {}: {}",
            actor_text(seen),
            outcome_word(seen),
            execution.how,
            listed(actions.iter().map(String::as_str), MAX_ACTIONS_LISTED),
        );
        let role = if dc.yes {
            Role::DomainController
        } else {
            Role::DestinationComputer
        };
        let mut finding = Finding::on(
            &REMOTE_EXECUTION,
            source_key(seen),
            seen,
            format!(
                "{} {}: {}",
                rpc.interface_name,
                clip(&rpc.operation),
                execution.action
            ),
        )
        .describe(description)
        .entity(destination(seen, role))
        .detail("operation", clip(&rpc.operation))
        .detail("action", execution.action)
        .relied_on(format!("target: {}", dc.basis))
        .weighed_by_resolution(seen);
        if !execution.command.is_empty() {
            finding = finding.detail("command", quoted(&execution.command));
        }
        finding = with_account(finding, seen, context);
        context.raise(finding);
    }

    fn evicted(&self) -> u64 {
        self.sources.evicted()
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::Directory;
    use dcwatch_proto::v1::{Activity, DceRpcActivity, activity::Body};

    use crate::{
        Config,
        detectors::testing::{activity, rpc_request, run, summary, with_account},
    };

    const ADMIN: &str = "10.98.0.95:50000";
    const DC: &str = "10.98.0.1:445";

    fn call(
        offset: i64,
        interface: &str,
        opnum: u32,
        operation: &str,
        fill: impl FnOnce(&mut DceRpcActivity),
    ) -> Activity {
        let mut body = rpc_request(interface, opnum, operation);
        fill(&mut body);
        activity(offset, ADMIN, DC, Body::Dcerpc(body))
    }

    fn dc_config() -> Config {
        Config {
            dc_addresses: vec!["10.98.0.1".parse().expect("an address")],
            ..Config::test_mode()
        }
    }

    #[test]
    fn psexec_creating_and_starting_a_service_is_remote_execution_with_its_binary() {
        let alerts = run(
            Some(dc_config()),
            Directory::default(),
            &[
                with_account(
                    call(0, "svcctl", 12, "RCreateServiceW", |rpc| {
                        rpc.service_name = "RKjq".into();
                        rpc.binary_path = "%systemroot%\\uQmWhtLd.exe".into();
                    }),
                    "LAB",
                    "Administrator",
                ),
                call(10, "svcctl", 19, "RStartServiceW", |rpc| {
                    rpc.service_name = "RKjq".into();
                }),
            ],
        );
        assert_eq!(
            summary(&alerts),
            [("remote_execution".into(), "src:10.98.0.95".into(), 2)]
        );
        let alert = &alerts[0];
        assert_eq!(alert.external_id, 2019);
        assert!(
            alert.description.contains(
                "ran code remotely on the domain controller 10.98.0.1 through a service (SVCCTL)"
            ) && alert
                .description
                .contains("created the service RKjq running %systemroot%\\uQmWhtLd.exe")
                && alert.description.contains("started the service RKjq"),
            "{}",
            alert.description
        );
        assert!(
            alert
                .entities
                .iter()
                .any(|e| e.name == "LAB\\Administrator")
        );
    }

    #[test]
    fn atexec_tasks_wmiexec_and_dcom_carry_what_they_run() {
        let task = call(0, "ITaskSchedulerService", 1, "SchRpcRegisterTask", |rpc| {
            rpc.task_path = "\\AbCdEfGh".into();
            rpc.command = "cmd.exe".into();
            rpc.arguments = "/C whoami > %windir%\\Temp\\AbCdEfGh.tmp 2>&1".into();
        });
        let alerts = run(Some(dc_config()), Directory::default(), &[task]);
        assert!(
            alerts[0].details.iter().any(|d| d.name == "command"
                && d.value == "cmd.exe /C whoami > %windir%\\Temp\\AbCdEfGh.tmp 2>&1"),
            "{:?}",
            alerts[0].details
        );
        let wmi = call(0, "IWbemServices", 24, "ExecMethod", |_| {});
        let alerts = run(Some(dc_config()), Directory::default(), &[wmi]);
        assert!(
            alerts[0]
                .description
                .contains("executed a WMI method (its class and name sealed)")
        );
        let dcom = call(0, "ISystemActivator", 4, "RemoteCreateInstance", |rpc| {
            rpc.clsid_name = "MMC20.Application".into();
        });
        let job = call(1, "atsvc", 0, "NetrJobAdd", |rpc| {
            rpc.command = "cmd /c calc".into();
        });
        let alerts = run(None, Directory::default(), &[dcom, job]);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].count, 2);
        assert!(
            alerts[0]
                .description
                .contains("activated the DCOM object MMC20.Application")
                && alerts[0]
                    .description
                    .contains("scheduled a job running cmd /c calc")
        );
    }

    #[test]
    fn administration_that_runs_nothing_is_not_remote_execution() {
        let activities = [
            call(0, "svcctl", 15, "ROpenSCManagerW", |_| {}),
            call(1, "svcctl", 42, "REnumServicesStatusExW", |_| {}),
            call(2, "svcctl", 17, "RQueryServiceConfigW", |_| {}),
            call(3, "ITaskSchedulerService", 7, "SchRpcEnumTasks", |_| {}),
            call(4, "atsvc", 2, "NetrJobEnum", |_| {}),
            call(5, "IWbemServices", 20, "ExecQuery", |_| {}),
            call(6, "ISystemActivator", 4, "RemoteCreateInstance", |rpc| {
                rpc.clsid_name = "WbemLevel1Login".into();
            }),
            call(7, "ISystemActivator", 4, "RemoteCreateInstance", |_| {}),
        ];
        assert!(run(Some(dc_config()), Directory::default(), &activities).is_empty());
    }
}
