//! `dcwatch-backend alerts ...`: reading and changing alerts in the store (a running `serve`
//! picks the changes up), and testing the syslog destinations.

use std::{
    io::{self, Write},
    time::{Duration, UNIX_EPOCH},
};

use anyhow::Context as _;
use dcwatch_detect::config::Subnet;
use dcwatch_proto::{
    cef::{self, CefContext},
    v1::alert::{Classification, Status},
};

use crate::{
    cli::{AlertListArgs, AlertsCommand, ClassificationArg, ExcludeArgs, Location, StatusArg},
    config::Config,
    outputs::{now_ns, syslog},
    store::{AlertQuery, Closed, Excluded, ExclusionKind, Storage},
};

pub fn run(command: Option<AlertsCommand>, list: &AlertListArgs) -> anyhow::Result<()> {
    match command {
        None => print_alerts(list),
        Some(AlertsCommand::Close {
            id,
            classification,
            comment,
            exclude,
            location,
        }) => close(&location, &id, classification, &comment, exclude),
        Some(AlertsCommand::Comment { id, text, location }) => {
            let mut store = open(&location)?;
            anyhow::ensure!(
                store.comment_alert(&id, &actor(), &text, now_ns())?,
                "no alert {id:?}"
            );
            Ok(())
        }
        Some(AlertsCommand::History { id, location }) => {
            let mut store = open(&location)?;
            let history = store.alert_history(&id, 0)?;
            anyhow::ensure!(!history.is_empty(), "no alert {id:?}");
            let mut out = io::stdout().lock();
            for entry in history {
                serde_json::to_writer(&mut out, &entry)?;
                out.write_all(b"\n")?;
            }
            Ok(())
        }
        Some(AlertsCommand::Exclude(args)) => exclude(&args),
        Some(AlertsCommand::TestSyslog { location }) => test_syslog(&location.config()?),
    }
}

/// The store in the configured data directory, which must exist (a typo would otherwise make
/// an empty store and report nothing).
fn open(location: &Location) -> anyhow::Result<Box<dyn Storage>> {
    Ok(crate::store::open_existing(&location.config()?)?)
}

/// Who is acting, for the history: the login name.
fn actor() -> String {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|value| !value.is_empty()))
        .unwrap_or_else(|| "cli".to_owned())
}

fn print_alerts(args: &AlertListArgs) -> anyhow::Result<()> {
    let mut store = open(&args.location)?;
    let query = AlertQuery {
        since_ns: args.since,
        status: args.status.map(|status| match status {
            StatusArg::Open => Status::Open,
            StatusArg::Closed => Status::Closed,
        }),
        type_name: args.type_name.clone(),
        id: args.id.clone(),
        ..AlertQuery::default()
    };
    let alerts = store.alerts(&query)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    let written = (|| -> io::Result<()> {
        for alert in &alerts {
            if args.json {
                serde_json::to_writer(&mut out, alert)?;
                out.write_all(b"\n")?;
            } else {
                let end = alert
                    .end
                    .as_ref()
                    .map(|end| cef::iso8601(end.seconds, 0))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}\tcount {}\t{}",
                    alert.id,
                    alert.status().as_str_name(),
                    alert.severity().as_str_name(),
                    alert.r#type,
                    end,
                    alert.count,
                    alert.description
                )?;
            }
        }
        out.flush()
    })();
    match written {
        // `alerts | head`: the reader had enough.
        Err(failure) if failure.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn close(
    location: &Location,
    id: &str,
    classification: ClassificationArg,
    comment: &str,
    exclude: bool,
) -> anyhow::Result<()> {
    let mut store = open(location)?;
    let classification = match classification {
        ClassificationArg::Tp => Classification::Tp,
        ClassificationArg::Btp => Classification::Btp,
        ClassificationArg::Fp => Classification::Fp,
    };
    // A false positive says why it did not happen (an address resolved to the wrong
    // computer...): the reason is what tuning acts on.
    anyhow::ensure!(
        classification != Classification::Fp || !comment.trim().is_empty(),
        "closing as fp needs --comment: why it did not happen"
    );
    anyhow::ensure!(
        !exclude || classification == Classification::Btp,
        "--exclude goes with --classification btp (it happened and is allowed)"
    );
    match store.close_alert(id, classification, &actor(), comment, now_ns())? {
        Closed::Closed => {
            log::info!("alert {id} closed ({})", classification.as_str_name());
            if exclude {
                match store.exclude_alert(id, classification, &actor(), now_ns())? {
                    Some(Excluded::Taught) => {
                        log::info!("alert {id}: its entity's profile learns the behaviour");
                    }
                    Some(Excluded::Entity(kind, value)) => {
                        log::info!("alert {id}: {} {value} excluded", kind.name());
                    }
                    None => anyhow::bail!("no alert {id:?}"),
                }
            }
            Ok(())
        }
        Closed::AlreadyClosed => anyhow::bail!("alert {id:?} is already closed"),
        Closed::NoSuchAlert => anyhow::bail!("no alert {id:?}"),
    }
}

fn exclude(args: &ExcludeArgs) -> anyhow::Result<()> {
    let mut store = open(&args.location)?;
    if args.list {
        let mut out = io::stdout().lock();
        for exclusion in store.exclusions()? {
            let created =
                UNIX_EPOCH + Duration::from_nanos(u64::try_from(exclusion.created_ns).unwrap_or(0));
            let scope = if exclusion.type_name.is_empty() {
                "every detection"
            } else {
                exclusion.type_name.as_str()
            };
            writeln!(
                out,
                "{}\t{scope}\t{}\t{}\t{}\t{}",
                exclusion.id,
                exclusion.kind.name(),
                exclusion.value,
                humantime::format_rfc3339_seconds(created),
                exclusion.comment
            )?;
        }
        return Ok(());
    }
    if let Some(id) = args.remove {
        anyhow::ensure!(store.remove_exclusion(id)?, "no exclusion {id}");
        log::info!("exclusion {id} removed");
        return Ok(());
    }
    let type_name = args.type_name.clone().unwrap_or_default();
    anyhow::ensure!(
        type_name.is_empty() || dcwatch_detect::catalogue::is_type(&type_name),
        "no alert type {type_name:?} (the README's detection table lists them)"
    );
    for subnet in &args.subnets {
        subnet
            .parse::<Subnet>()
            .map_err(|failure| anyhow::anyhow!(failure))?;
    }
    let entries = args
        .accounts
        .iter()
        .map(|value| (ExclusionKind::Account, value))
        .chain(
            args.computers
                .iter()
                .map(|value| (ExclusionKind::Computer, value)),
        )
        .chain(
            args.subnets
                .iter()
                .map(|value| (ExclusionKind::Subnet, value)),
        );
    let mut added = 0;
    let mut out = io::stdout().lock();
    for (kind, value) in entries {
        let id = store.add_exclusion(&type_name, kind, value, &args.comment, now_ns())?;
        writeln!(out, "{id}")?;
        added += 1;
    }
    anyhow::ensure!(
        added > 0,
        "name what to exclude: --account, --computer or --subnet (or --list, --remove N)"
    );
    Ok(())
}

fn test_syslog(config: &Config) -> anyhow::Result<()> {
    anyhow::ensure!(
        !config.outputs.syslog.is_empty(),
        "no [[outputs.syslog]] destination in the configuration (--config FILE)"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let hostname = crate::tls::host_name().unwrap_or_default();
    let line = cef::test_line(
        &hostname,
        now_ns(),
        &CefContext {
            version: env!("CARGO_PKG_VERSION"),
            console_url: "",
        },
    );
    let mut failed = 0;
    let mut out = io::stdout().lock();
    for destination in &config.outputs.syslog {
        let result = runtime.block_on(syslog::test(destination, &line, &hostname));
        let what = format!(
            "{} ({:?}, {:?}{})",
            destination.address,
            destination.transport,
            destination.format,
            match destination.transport {
                crate::config::SyslogTransport::Udp => String::new(),
                _ => format!(", {:?}", destination.framing),
            }
        )
        .to_lowercase();
        match result {
            Ok(report) => writeln!(out, "{what}: {report}")?,
            Err(report) => {
                failed += 1;
                writeln!(out, "{what}: FAILED: {report}")?;
            }
        }
    }
    anyhow::ensure!(failed == 0, "{failed} destination(s) failed");
    Ok(())
}
