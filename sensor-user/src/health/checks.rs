//! The health checks the live loop runs at every stats tick, from the sensor's own
//! measurements: its counters (this tick's against the last), the capture interfaces' state in
//! sysfs, its cgroup's memory, when it last heard from each DC and from RADIUS, and the DCs'
//! clocks against its own.

use std::{collections::HashMap, net::IpAddr, path::Path};

use dcwatch_telemetry::Snapshot;

use super::{Health, IssueKind, skew::ClockSkews};

/// The stats names whose growth means traffic was not analysed: frames the ring had no room
/// for, activities the spool's queue refused, stream bytes and datagrams given up for memory,
/// syslog messages too long to read, frames and activities the resource limiter shed.
pub const DROP_COUNTERS: &[&str] = &[
    "ringbuf_full",
    "spool_queue_full_activities",
    "pdu_budget_drops",
    "flow_buffer_cap_hits",
    "flow_budget_cap_hits",
    "fragment_budget_cap_hits",
    "fragment_evicted",
    "syslog_oversized",
    "limiter_shed_frames",
    "limiter_shed_name_query_activities",
    "limiter_shed_smb_file_activities",
    "limiter_shed_normal_activities",
];

/// Memory in use at or above this share of the cgroup's `memory.max` opens
/// [`IssueKind::MemoryLimit`].
pub const MEMORY_LIMIT_PERCENT: u64 = 95;

/// How long a capture link must stay down to be an issue: attaching XDP resets the link of some
/// drivers (veth, virtio) for a moment.
pub const NIC_DOWN_AFTER_NS: u64 = 5_000_000_000;

/// What the checks were configured with.
#[derive(Clone, Debug, Default)]
pub struct Expectations {
    /// Capture interfaces.
    pub interfaces: Vec<String>,
    /// The configured DCs' addresses.
    pub dc_addresses: Vec<IpAddr>,
    /// A syslog listener is configured: Windows events are expected.
    pub windows_events: bool,
    /// RADIUS secrets are configured: RADIUS accounting is expected.
    pub radius: bool,
    /// How long a source may stay silent before its issue opens.
    pub silent_after_ns: u64,
    /// How far a DC's clock may be from the sensor's before its issue opens.
    pub max_clock_skew_ns: u64,
}

/// When the pipeline last heard from what the checks expect to hear from.
#[derive(Clone, Debug, Default)]
pub struct Heard {
    /// Frames from each configured DC (the frames' clock, unix ns).
    pub dcs: HashMap<IpAddr, u64>,
    /// A RADIUS activity.
    pub radius_ns: Option<u64>,
    /// What network name resolution's hourly watch last said, while too few sources were
    /// named with HIGH certainty.
    pub low_certainty: Option<String>,
    /// The KDCs' clocks, from the times their KRB-ERRORs carry.
    pub clock_skews: ClockSkews,
}

impl Heard {
    /// Remembers a frame from `source` at `time_ns` when it is a configured DC.
    pub fn frame(&mut self, source: IpAddr, time_ns: u64) {
        if self.dcs.is_empty() {
            return;
        }
        if let Some(last) = self.dcs.get_mut(&source) {
            *last = (*last).max(time_ns);
        }
    }

    /// Watches `dcs` (forgetting those no longer listed).
    pub fn watch(&mut self, dcs: &[IpAddr]) {
        self.dcs.retain(|dc, _| dcs.contains(dc));
        for dc in dcs {
            self.dcs.entry(*dc).or_insert(0);
        }
    }
}

/// What the checks remember between ticks.
#[derive(Debug)]
pub struct Checks {
    expect: Expectations,
    started_ns: u64,
    previous: Option<Snapshot>,
    /// Per interface: the last `rx_packets` and when it last changed.
    received: HashMap<String, (u64, u64)>,
    /// Per interface seen down: since when.
    down_since: HashMap<String, u64>,
    /// `syslog_events` and when it last changed.
    windows_events: (u64, u64),
}

impl Checks {
    pub fn new(expect: Expectations, now_ns: u64) -> Self {
        Self {
            expect,
            started_ns: now_ns,
            previous: None,
            received: HashMap::new(),
            down_since: HashMap::new(),
            windows_events: (0, now_ns),
        }
    }

    /// New expectations (a reload): issues about what is no longer expected close.
    pub fn expect(&mut self, expect: Expectations, health: &Health) {
        health.retain(IssueKind::DcSilent, |subject| {
            expect
                .dc_addresses
                .iter()
                .any(|dc| dc.to_string() == subject)
        });
        health.retain(IssueKind::NicDown, |subject| {
            expect.interfaces.iter().any(|name| name == subject)
        });
        health.retain(IssueKind::NicSilent, |subject| {
            expect.interfaces.iter().any(|name| name == subject)
        });
        if !expect.windows_events {
            health.set(IssueKind::WindowsEventsMissing, "", None);
        }
        if !expect.radius {
            health.set(IssueKind::RadiusMissing, "", None);
        }
        self.expect = expect;
    }

    /// Runs every check on this tick's counters.
    pub fn run(&mut self, health: &Health, snapshot: &Snapshot, heard: &Heard, now_ns: u64) {
        if let Some(previous) = &self.previous {
            health.set(IssueKind::TrafficDropped, "", dropped(previous, snapshot));
            health.set(IssueKind::SpoolEvicting, "", evicted(previous, snapshot));
        }
        // Network name resolution's own hourly watch judges (MDI's rule: the share of sources
        // named with HIGH certainty); the issue follows what it last said.
        health.set(
            IssueKind::NameResolutionLow,
            "",
            heard.low_certainty.clone(),
        );
        self.interfaces(health, now_ns);
        self.sources(health, snapshot, heard, now_ns);
        self.clock_skews(health, &heard.clock_skews, now_ns);
        health.set(IssueKind::MemoryLimit, "", memory_limit(Path::new("/")));
        self.previous = Some(snapshot.clone());
    }

    fn interfaces(&mut self, health: &Health, now_ns: u64) {
        for name in &self.expect.interfaces {
            let state = read_trimmed(&format!("/sys/class/net/{name}/operstate"));
            let down = match state.as_deref() {
                // `unknown` is what veth and many virtual NICs report while working.
                Some("up" | "unknown") => None,
                Some(state) => Some(format!("{name} is {state}")),
                None => Some(format!("{name} is gone")),
            };
            let since = if down.is_some() {
                *self.down_since.entry(name.clone()).or_insert(now_ns)
            } else {
                self.down_since.remove(name);
                now_ns
            };
            health.set(
                IssueKind::NicDown,
                name,
                down.filter(|_| now_ns.saturating_sub(since) >= NIC_DOWN_AFTER_NS),
            );
            let packets = read_trimmed(&format!("/sys/class/net/{name}/statistics/rx_packets"))
                .and_then(|text| text.parse::<u64>().ok());
            let Some(packets) = packets else {
                continue;
            };
            let (last, changed_ns) = self
                .received
                .entry(name.clone())
                .or_insert((packets, now_ns));
            if packets != *last {
                (*last, *changed_ns) = (packets, now_ns);
            }
            let silent_ns = now_ns.saturating_sub(*changed_ns);
            health.set(
                IssueKind::NicSilent,
                name,
                (silent_ns >= self.expect.silent_after_ns)
                    .then(|| format!("{name} received nothing for {}s", silent_ns / 1_000_000_000)),
            );
        }
    }

    fn sources(&mut self, health: &Health, snapshot: &Snapshot, heard: &Heard, now_ns: u64) {
        let silent_after = self.expect.silent_after_ns;
        let since = |last_ns: u64| now_ns.saturating_sub(last_ns.max(self.started_ns));
        for (dc, last_ns) in &heard.dcs {
            let silent_ns = since(*last_ns);
            health.set(
                IssueKind::DcSilent,
                &dc.to_string(),
                (silent_ns >= silent_after)
                    .then(|| format!("no frame from {dc} for {}s", silent_ns / 1_000_000_000)),
            );
        }
        if self.expect.windows_events {
            let events = snapshot.get("syslog_events").unwrap_or_default();
            if events != self.windows_events.0 {
                self.windows_events = (events, now_ns);
            }
            let silent_ns = since(self.windows_events.1);
            health.set(
                IssueKind::WindowsEventsMissing,
                "",
                (silent_ns >= silent_after).then(|| {
                    format!(
                        "no Windows event from syslog for {}s",
                        silent_ns / 1_000_000_000
                    )
                }),
            );
        }
        if self.expect.radius {
            let silent_ns = since(heard.radius_ns.unwrap_or_default());
            health.set(
                IssueKind::RadiusMissing,
                "",
                (silent_ns >= silent_after)
                    .then(|| format!("no RADIUS message for {}s", silent_ns / 1_000_000_000)),
            );
        }
    }

    /// `CLOCK_SKEW` per DC with a current estimate; a DC without one (forgotten, or no longer
    /// followed) closes its issue.
    fn clock_skews(&self, health: &Health, skews: &ClockSkews, now_ns: u64) {
        let mut current = Vec::new();
        for (dc, skew) in skews.estimates(now_ns) {
            let subject = dc.to_string();
            health.set(
                IssueKind::ClockSkew,
                &subject,
                skew.issue(self.expect.max_clock_skew_ns),
            );
            current.push(subject);
        }
        health.retain(IssueKind::ClockSkew, |subject| {
            current.iter().any(|dc| dc == subject)
        });
    }
}

/// Traffic not analysed since `before`: each drop counter that grew, and the share of matched
/// frames the ring lost.
pub fn dropped(before: &Snapshot, now: &Snapshot) -> Option<String> {
    let grown = |name: &str| {
        now.get(name)
            .unwrap_or_default()
            .saturating_sub(before.get(name).unwrap_or_default())
    };
    let drops: Vec<String> = DROP_COUNTERS
        .iter()
        .filter_map(|name| {
            let grown = grown(name);
            (grown > 0).then(|| format!("{name} +{grown}"))
        })
        .collect();
    if drops.is_empty() {
        return None;
    }
    // Frames the limiter shed in XDP were on watched ports but never counted as matched.
    let shed = grown("limiter_shed_frames");
    let matched = grown("matched") + shed;
    let lost = grown("ringbuf_full") + shed;
    // Tenths of a percent, in integers; nothing to say when nothing matched.
    let share = lost
        .saturating_mul(1000)
        .checked_div(matched)
        .map(|permille| {
            format!(
                "{}.{}% of matched frames lost; ",
                permille / 10,
                permille % 10
            )
        })
        .unwrap_or_default();
    Some(format!("{share}{}", drops.join(", ")))
}

/// Batches the spool evicted since `before`.
pub fn evicted(before: &Snapshot, now: &Snapshot) -> Option<String> {
    let grown = |name: &str| {
        now.get(name)
            .unwrap_or_default()
            .saturating_sub(before.get(name).unwrap_or_default())
    };
    let batches = grown("spool_evicted_batches");
    (batches > 0).then(|| {
        format!(
            "the full spool evicted {batches} batches ({} activities) since the last check",
            grown("spool_evicted_activities")
        )
    })
}

/// The sensor's cgroup (v2, under `root`/sys/fs/cgroup) near its `memory.max`.
pub fn memory_limit(root: &Path) -> Option<String> {
    let cgroup = std::fs::read_to_string(root.join("proc/self/cgroup")).ok()?;
    let path = cgroup.lines().find_map(|line| line.strip_prefix("0::"))?;
    let directory = root
        .join("sys/fs/cgroup")
        .join(path.trim_start_matches('/'));
    let max: u64 = read_trimmed_path(&directory.join("memory.max"))?
        .parse()
        .ok()?;
    let current: u64 = read_trimmed_path(&directory.join("memory.current"))?
        .parse()
        .ok()?;
    let percent = current.saturating_mul(100) / max.max(1);
    (percent >= MEMORY_LIMIT_PERCENT)
        .then(|| format!("{current} of {max} bytes in use ({percent}% of memory.max)"))
}

fn read_trimmed(path: &str) -> Option<String> {
    read_trimmed_path(Path::new(path))
}

fn read_trimmed_path(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|text| text.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use dcwatch_telemetry::Kind;

    use super::*;

    fn snapshot(pairs: &[(&'static str, u64)]) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for (name, value) in pairs {
            snapshot.push(*name, Kind::Counter, "", *value);
        }
        snapshot
    }

    #[test]
    fn drops_anywhere_give_the_share_of_frames_lost() {
        let before = snapshot(&[
            ("matched", 1000),
            ("ringbuf_full", 0),
            ("pdu_budget_drops", 4),
        ]);
        assert_eq!(dropped(&before, &before), None);
        let now = snapshot(&[
            ("matched", 3000),
            ("ringbuf_full", 50),
            ("pdu_budget_drops", 5),
        ]);
        assert_eq!(
            dropped(&before, &now).as_deref(),
            Some("2.5% of matched frames lost; ringbuf_full +50, pdu_budget_drops +1")
        );
        let queue = snapshot(&[("matched", 1000), ("spool_queue_full_activities", 9)]);
        assert_eq!(
            dropped(&before, &queue).as_deref(),
            Some("spool_queue_full_activities +9")
        );
    }

    #[test]
    fn a_link_down_for_a_moment_is_not_an_issue_and_one_that_stays_down_is() {
        let health = Health::default();
        let expect = Expectations {
            interfaces: vec!["dcwgone0".to_owned()],
            silent_after_ns: u64::MAX,
            ..Expectations::default()
        };
        let nic_down = |health: &Health| {
            health
                .open()
                .iter()
                .filter(|issue| issue.kind == IssueKind::NicDown)
                .map(|issue| issue.detail.clone())
                .collect::<Vec<_>>()
        };
        let mut checks = Checks::new(expect, 0);
        let counters = snapshot(&[]);
        checks.run(&health, &counters, &Heard::default(), 1_000);
        assert!(nic_down(&health).is_empty(), "just seen down");
        checks.run(
            &health,
            &counters,
            &Heard::default(),
            1_000 + NIC_DOWN_AFTER_NS,
        );
        assert_eq!(nic_down(&health), ["dcwgone0 is gone"]);
    }

    #[test]
    fn silence_opens_and_traffic_closes() {
        let health = Health::default();
        let dc: IpAddr = "10.0.0.1".parse().expect("address");
        let expect = Expectations {
            dc_addresses: vec![dc],
            windows_events: true,
            silent_after_ns: 100,
            ..Expectations::default()
        };
        let mut checks = Checks::new(expect, 1_000);
        let mut heard = Heard::default();
        heard.watch(&[dc]);
        let counters = snapshot(&[("syslog_events", 0)]);
        checks.run(&health, &counters, &heard, 1_050);
        assert!(
            health
                .open()
                .iter()
                .all(|issue| issue.kind == IssueKind::MemoryLimit)
        );
        checks.run(&health, &counters, &heard, 1_100);
        let kinds = |health: &Health| {
            let mut kinds: Vec<_> = health
                .open()
                .iter()
                .map(|issue| (issue.kind, issue.subject.clone()))
                .filter(|(kind, _)| *kind != IssueKind::MemoryLimit)
                .collect();
            kinds.sort();
            kinds
        };
        assert_eq!(
            kinds(&health),
            [
                (IssueKind::DcSilent, "10.0.0.1".to_owned()),
                (IssueKind::WindowsEventsMissing, String::new())
            ]
        );
        heard.frame(dc, 1_150);
        heard.frame("10.0.0.9".parse().expect("address"), 1_150);
        checks.run(&health, &snapshot(&[("syslog_events", 1)]), &heard, 1_160);
        assert_eq!(kinds(&health), [], "both heard from again");
        assert_eq!(heard.dcs.len(), 1, "only configured DCs are tracked");
    }

    #[test]
    fn memory_near_the_cgroup_limit() {
        let root = tempfile::tempdir().expect("directory");
        let cgroup = root
            .path()
            .join("sys/fs/cgroup/system.slice/dcwatch.service");
        std::fs::create_dir_all(&cgroup).expect("cgroup");
        std::fs::create_dir_all(root.path().join("proc/self")).expect("proc");
        std::fs::write(
            root.path().join("proc/self/cgroup"),
            "0::/system.slice/dcwatch.service\n",
        )
        .expect("write");
        std::fs::write(cgroup.join("memory.max"), "1000\n").expect("write");
        std::fs::write(cgroup.join("memory.current"), "960\n").expect("write");
        assert_eq!(
            memory_limit(root.path()).as_deref(),
            Some("960 of 1000 bytes in use (96% of memory.max)")
        );
        std::fs::write(cgroup.join("memory.current"), "500\n").expect("write");
        assert_eq!(memory_limit(root.path()), None);
        std::fs::write(cgroup.join("memory.max"), "max\n").expect("write");
        assert_eq!(memory_limit(root.path()), None, "no limit");
    }
}
