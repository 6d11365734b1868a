//! What a SIGHUP can change in a running sensor: the new configuration against the running one,
//! key by key. The live loop applies what is [`Outcome::Applied`] and logs every item, so an
//! operator sees what changed, what did not, and what waits for a restart.

pub use dcwatch_telemetry::reload::{Item, Outcome, applied};

use crate::config::Config;

/// The keys that apply while running, then every other section, compared.
pub fn plan(running: &Config, new: &Config) -> Vec<Item> {
    let mut items = Vec::new();
    let mut item = |key, outcome| items.push(Item { key, outcome });
    let (old_capture, new_capture) = (&running.capture, &new.capture);
    item(
        "capture.ports.tcp",
        changed_to(
            &old_capture.ports.tcp,
            &new_capture.ports.tcp,
            |old, new| port_change(old, new),
        ),
    );
    item(
        "capture.ports.udp",
        changed_to(
            &old_capture.ports.udp,
            &new_capture.ports.udp,
            |old, new| port_change(old, new),
        ),
    );
    // The XDP program reads "filter by address or not" once, at load: a list may change, but
    // not appear or vanish.
    let dc_outcome = if old_capture.dc_addresses == new_capture.dc_addresses {
        Outcome::Unchanged
    } else if old_capture.dc_addresses.is_empty() != new_capture.dc_addresses.is_empty() {
        Outcome::NeedsRestart
    } else {
        Outcome::Applied(format!("{} addresses", new_capture.dc_addresses.len()))
    };
    item("capture.dc_addresses", dc_outcome);
    item(
        "sensor.log_level",
        changed_to(
            &running.sensor.log_level,
            &new.sensor.log_level,
            |_, new| new.as_deref().unwrap_or("--log-level").to_owned(),
        ),
    );
    item(
        "stats",
        changed_to(&running.stats, &new.stats, |_, new| match &new.file {
            Some(file) => format!("{} every {}s", file.display(), new.interval_secs),
            None => "no file".to_owned(),
        }),
    );
    item(
        "health",
        changed_to(&running.health, &new.health, |_, new| {
            format!(
                "silent after {} minutes, clock skew over {} minutes",
                new.silent_minutes, new.max_clock_skew_minutes
            )
        }),
    );
    let restart = |same: bool| {
        if same {
            Outcome::Unchanged
        } else {
            Outcome::NeedsRestart
        }
    };
    let other_capture = |capture: &crate::config::CaptureConfig| {
        (
            capture.interfaces.clone(),
            capture.mode,
            capture.attach,
            capture.snap_len,
            capture.ring_buffer_mib,
            capture.rpc_endpoint_query,
        )
    };
    item(
        "capture (interfaces, mode, attach, snap_len, ring_buffer_mib, rpc_endpoint_query)",
        restart(other_capture(old_capture) == other_capture(new_capture)),
    );
    item("sensor.id", restart(running.sensor.id == new.sensor.id));
    item("dissect", restart(running.dissect == new.dissect));
    item("radius", restart(running.radius == new.radius));
    item("syslog", restart(running.syslog == new.syslog));
    item("backend", restart(running.backend == new.backend));
    item("nnr", restart(running.nnr == new.nnr));
    item("directory", restart(running.directory == new.directory));
    item("metrics", restart(running.metrics == new.metrics));
    item("detect", restart(running.detect == new.detect));
    items
}

fn changed_to<T: PartialEq>(old: &T, new: &T, how: impl FnOnce(&T, &T) -> String) -> Outcome {
    if old == new {
        Outcome::Unchanged
    } else {
        Outcome::Applied(how(old, new))
    }
}

/// `+8080 -3389`: the ports added and removed.
fn port_change(old: &[u16], new: &[u16]) -> String {
    let added = new
        .iter()
        .filter(|port| !old.contains(port))
        .map(|port| format!("+{port}"));
    let removed = old
        .iter()
        .filter(|port| !new.contains(port))
        .map(|port| format!("-{port}"));
    let change: Vec<String> = added.chain(removed).collect();
    if change.is_empty() {
        "reordered".to_owned()
    } else {
        change.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome<'a>(items: &'a [Item], key: &str) -> &'a Outcome {
        &items
            .iter()
            .find(|item| item.key == key)
            .unwrap_or_else(|| panic!("{key} missing"))
            .outcome
    }

    #[test]
    fn safe_keys_apply_and_the_rest_waits_for_a_restart() {
        let running = Config::default();
        let mut new = running.clone();
        new.capture.ports.tcp.push(8080);
        new.capture.ports.tcp.retain(|port| *port != 3389);
        new.sensor.log_level = Some("debug".into());
        new.capture.interfaces = vec!["ens5".into()];
        new.backend.spool_max_mib = 5;
        let items = plan(&running, &new);
        assert_eq!(
            outcome(&items, "capture.ports.tcp"),
            &Outcome::Applied("+8080 -3389".into())
        );
        assert_eq!(outcome(&items, "capture.ports.udp"), &Outcome::Unchanged);
        assert_eq!(
            outcome(&items, "sensor.log_level"),
            &Outcome::Applied("debug".into())
        );
        assert_eq!(outcome(&items, "backend"), &Outcome::NeedsRestart);
        assert_eq!(outcome(&items, "dissect"), &Outcome::Unchanged);
        assert!(
            items
                .iter()
                .any(|item| item.key.starts_with("capture (")
                    && item.outcome == Outcome::NeedsRestart)
        );
        assert_eq!(
            items
                .iter()
                .find(|item| item.key == "capture.ports.tcp")
                .map(ToString::to_string)
                .as_deref(),
            Some("capture.ports.tcp: applied (+8080 -3389)")
        );
    }

    #[test]
    fn dc_addresses_change_but_do_not_appear_or_vanish() {
        let mut running = Config::default();
        let mut new = running.clone();
        new.capture.dc_addresses = vec!["10.0.0.1".parse().expect("address")];
        assert_eq!(
            outcome(&plan(&running, &new), "capture.dc_addresses"),
            &Outcome::NeedsRestart
        );
        running.capture.dc_addresses = vec!["10.0.0.2".parse().expect("address")];
        assert_eq!(
            outcome(&plan(&running, &new), "capture.dc_addresses"),
            &Outcome::Applied("1 addresses".into())
        );
        assert_eq!(
            outcome(&plan(&new, &new), "capture.dc_addresses"),
            &Outcome::Unchanged
        );
    }
}
