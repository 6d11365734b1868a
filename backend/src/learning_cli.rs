//! `dcwatch-backend learning`: where each entity stands in each learning detection (Part II),
//! read from the profiles detection stored, at the latest activity time they saw.

use std::{
    io::{self, Write},
    time::{Duration, UNIX_EPOCH},
};

use dcwatch_detect::{
    learning::{self, State},
    profiles::Profiles,
};

use crate::cli::LearningArgs;

#[derive(serde::Serialize)]
struct Line<'a> {
    detection: &'a str,
    entity: &'a str,
    /// "learning" or "active".
    state: &'static str,
    /// RFC 3339, when learning ends on a date.
    #[serde(skip_serializing_if = "Option::is_none")]
    until: Option<String>,
    #[serde(skip_serializing_if = "str::is_empty")]
    why: &'a str,
}

fn rfc3339(millis: i64) -> String {
    let since = Duration::from_millis(u64::try_from(millis).unwrap_or(0));
    humantime::format_rfc3339_seconds(UNIX_EPOCH + since).to_string()
}

pub fn run(args: &LearningArgs) -> anyhow::Result<()> {
    let config = args.location.config()?;
    if let Some(type_name) = &args.type_name {
        anyhow::ensure!(
            learning::period(type_name).is_some(),
            "{type_name:?} has no learning period (they are: {})",
            learning::PERIODS
                .iter()
                .map(|period| period.type_name)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut store = crate::store::open_existing(&config)?;
    // One set of profiles per partition of the stream (the `all` role has one).
    let mut partitions = Vec::new();
    for partition in store.profile_partitions()? {
        let mut profiles = Profiles::default();
        profiles.load(store.load_profiles(partition)?);
        partitions.push(profiles);
    }
    let mut out = io::BufWriter::new(io::stdout().lock());
    let written = (|| -> io::Result<()> {
        let standings = partitions
            .iter()
            .flat_map(|profiles| learning::standings(profiles, &config.detect));
        for standing in standings {
            if args
                .type_name
                .as_deref()
                .is_some_and(|type_name| type_name != standing.type_name)
            {
                continue;
            }
            let (state, until, why) = match &standing.state {
                State::Active => ("active", None, ""),
                State::Learning { until, why } => ("learning", until.map(rfc3339), why.as_str()),
            };
            if args.json {
                serde_json::to_writer(
                    &mut out,
                    &Line {
                        detection: standing.type_name,
                        entity: &standing.entity,
                        state,
                        until,
                        why,
                    },
                )?;
                out.write_all(b"\n")?;
            } else {
                let told = match (state, until) {
                    ("learning", Some(until)) => format!("learning until {until}"),
                    ("learning", None) => format!("learning ({why})"),
                    _ => "active".to_owned(),
                };
                writeln!(out, "{}\t{}\t{told}", standing.type_name, standing.entity)?;
            }
        }
        out.flush()
    })();
    match written {
        // `learning | head`: the reader had enough.
        Err(failure) if failure.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
