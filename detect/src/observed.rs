//! An activity as the detectors see it: the proto message with its time and addresses decoded
//! once, and the text they quote in evidence.

use std::net::IpAddr;

use dcwatch_proto::{
    json::{endpoint_ip, protocol_name},
    v1::{Activity, Evidence, activity::Body, outcome::Status},
};

use crate::time::{Millis, timestamp};

fn port(endpoint: Option<&dcwatch_proto::v1::Endpoint>) -> u16 {
    endpoint
        .and_then(|endpoint| u16::try_from(endpoint.port).ok())
        .unwrap_or(0)
}

#[derive(Debug)]
pub struct Observed<'a> {
    pub activity: &'a Activity,
    pub time: Millis,
    /// The sender of the message the activity comes from, and its peer.
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub src_port: u16,
    pub dst_port: u16,
    /// The backend's reference to the stored activity (sensor, batch, index); empty offline.
    pub reference: &'a str,
}

impl<'a> Observed<'a> {
    /// `None` for an activity without a time: nothing can be windowed on it.
    pub fn new(activity: &'a Activity, reference: &'a str) -> Option<Self> {
        Some(Self {
            activity,
            time: crate::time::millis(activity.time.as_ref())?,
            src: activity.src.as_ref().and_then(endpoint_ip),
            dst: activity.dst.as_ref().and_then(endpoint_ip),
            src_port: port(activity.src.as_ref()),
            dst_port: port(activity.dst.as_ref()),
            reference,
        })
    }

    pub fn body(&self) -> Option<&'a Body> {
        self.activity.body.as_ref()
    }

    /// The account the activity names, as `DOMAIN\name` (or `name` without a domain); empty
    /// when it names none.
    pub fn account_text(&self) -> String {
        match &self.activity.account {
            Some(account) if !account.name.is_empty() && !account.domain.is_empty() => {
                format!("{}\\{}", account.domain, account.name)
            }
            Some(account) => account.name.clone(),
            None => String::new(),
        }
    }

    pub fn account_name(&self) -> &'a str {
        self.activity
            .account
            .as_ref()
            .map_or("", |account| account.name.as_str())
    }

    pub fn succeeded(&self) -> bool {
        self.status() == Status::Success
    }

    pub fn failed(&self) -> bool {
        self.status() == Status::Failure
    }

    pub fn status(&self) -> Status {
        self.activity
            .outcome
            .as_ref()
            .and_then(|outcome| Status::try_from(outcome.status).ok())
            .unwrap_or(Status::Unspecified)
    }

    /// The evidence line an alert keeps for this activity.
    pub fn evidence(&self, summary: impl Into<String>) -> Evidence {
        Evidence {
            time: Some(timestamp(self.time)),
            summary: summary.into(),
            src: crate::finding::endpoint_text(self.src, self.src_port),
            dst: crate::finding::endpoint_text(self.dst, self.dst_port),
            flow_id: self.activity.flow_id.clone(),
            sensor_id: self.activity.sensor_id.clone(),
            activity_ref: self.reference.to_owned(),
        }
    }

    pub fn protocol(&self) -> &'static str {
        protocol_name(self.body())
    }
}
