//! Builders for the detectors' tests: activities as the sensor writes them, and an engine run
//! over them.

use std::{net::IpAddr, sync::Arc};

use dcwatch_entity::Directory;
use dcwatch_proto::v1::{
    Account, Activity, Alert, Computer, DceRpcActivity, Endpoint, Outcome, activity::Body,
    dce_rpc_activity, outcome::Status,
};

use crate::{Config, Engine, time::timestamp};

/// 2026-12-01T00:00:00Z.
pub const T0: i64 = 1_796_083_200_000;

pub fn endpoint(text: &str) -> Endpoint {
    let (ip, port) = text.rsplit_once(':').expect("ip:port");
    let ip: IpAddr = ip.trim_matches(['[', ']']).parse().expect("an address");
    Endpoint {
        ip: match ip {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        },
        port: port.parse().expect("a port"),
    }
}

/// An activity at `T0 + offset_ms` from `src` to `dst` ("ip:port").
pub fn activity(offset_ms: i64, src: &str, dst: &str, body: Body) -> Activity {
    Activity {
        sensor_id: "test".into(),
        time: Some(timestamp(T0 + offset_ms)),
        src: Some(endpoint(src)),
        dst: Some(endpoint(dst)),
        body: Some(body),
        ..Activity::default()
    }
}

pub fn with_account(mut activity: Activity, domain: &str, name: &str) -> Activity {
    activity.account = Some(Account {
        domain: domain.into(),
        name: name.into(),
        ..Account::default()
    });
    activity
}

pub fn with_outcome(mut activity: Activity, status: Status, code: u32) -> Activity {
    activity.outcome = Some(Outcome {
        status: status.into(),
        code,
        name: String::new(),
    });
    activity
}

pub fn with_source_computer(
    mut activity: Activity,
    name: &str,
    certainty: dcwatch_proto::v1::Certainty,
) -> Activity {
    activity.source_computer = Some(Computer {
        name: name.into(),
        certainty: certainty.into(),
        method: dcwatch_proto::v1::ResolutionMethod::NtlmWorkstation.into(),
        ..Computer::default()
    });
    activity
}

/// A DCE-RPC REQUEST of `interface`'s `operation`, answered.
pub fn rpc_request(interface: &str, opnum: u32, operation: &str) -> DceRpcActivity {
    DceRpcActivity {
        r#type: dce_rpc_activity::Type::Request.into(),
        interface_name: interface.into(),
        opnum,
        operation: operation.into(),
        answered: true,
        ..DceRpcActivity::default()
    }
}

/// The alerts an engine holds after `activities`, in test mode unless a config is given.
pub fn run(config: Option<Config>, directory: Directory, activities: &[Activity]) -> Vec<Alert> {
    let mut engine = Engine::new(
        config.unwrap_or_else(Config::test_mode),
        Arc::new(directory),
    );
    for activity in activities {
        engine.observe(activity, "");
    }
    let mut alerts: Vec<Alert> = engine.alerts().cloned().collect();
    alerts.sort_by(|a, b| (&a.r#type, &a.primary_key).cmp(&(&b.r#type, &b.primary_key)));
    alerts
}

/// (type, primary key, count) of each alert: what most tests assert.
pub fn summary(alerts: &[Alert]) -> Vec<(String, String, u64)> {
    alerts
        .iter()
        .map(|alert| (alert.r#type.clone(), alert.primary_key.clone(), alert.count))
        .collect()
}
