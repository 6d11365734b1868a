//! NTP (UDP 123) to activities: each request held until its answer, so that it says whether
//! the DC answered (a Timeroasting run is many requests for RIDs, answered for those that are
//! computer accounts).

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
};

use dcwatch_parsers::ntp::{self, Mode, NtpPacket};
use dcwatch_proto::v1::{Activity, NtpActivity, activity, ntp_activity::Type};

use super::stream::{Malformed, Sink};
use crate::activity::{Seen, flag_names};

/// Requests waiting for their answer, across all clients. A DC answers at once; a Timeroasting
/// run sends thousands a minute, which this holds for [`REQUEST_WAIT_NS`].
pub(super) const MAX_PENDING_NTP: usize = 4096;

/// How long a request waits for its answer: SNTP clients give up after a few seconds.
pub(super) const REQUEST_WAIT_NS: u64 = 10_000_000_000;

/// A request by client, server, Transmit timestamp and key identifier: the answer's Origin is
/// the request's Transmit (RFC 5905 8), and Timeroasting tools send the same Transmit with
/// every RID, which the DC echoes in its authenticator.
type RequestKey = (SocketAddr, SocketAddr, u64, Option<u32>);

/// NTP requests waiting for their answer, oldest first.
#[derive(Debug, Default)]
pub(super) struct NtpState {
    pending: HashMap<RequestKey, Activity>,
    /// Keys in the order their requests came, with the time they came; may name requests
    /// already answered, which are skipped.
    order: VecDeque<(u64, RequestKey)>,
}

impl NtpState {
    /// One NTP datagram. Requests reported early because the table was full are counted as
    /// `requests_not_awaited`.
    pub(super) fn datagram(
        &mut self,
        bytes: &[u8],
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) -> Result<(), Malformed> {
        let packet = ntp::parse(bytes).map_err(|_| Malformed)?;
        let key_id = packet.authenticator.map(|auth| auth.key_id);
        let out = &mut *sink.out;
        match packet.mode {
            Mode::CLIENT | Mode::SYMMETRIC_ACTIVE => {
                sink.counters.requests_not_awaited += self.make_room(out);
                let key = (seen.src, seen.dst, packet.transmit, key_id);
                let request = activity(&packet, Type::Request, seen);
                if let Some(replaced) = self.pending.insert(key, request) {
                    out.push(replaced);
                }
                self.order.push_back((seen.time_ns, key));
            }
            Mode::SERVER | Mode::SYMMETRIC_PASSIVE => {
                let key = (seen.dst, seen.src, packet.origin, key_id);
                if self.pending.contains_key(&key) {
                    self.report_earlier(key, out);
                }
                if let Some(mut request) = self.pending.remove(&key) {
                    if let Some(activity::Body::Ntp(body)) = &mut request.body {
                        body.answered = true;
                    }
                    out.push(request);
                }
                out.push(activity(&packet, Type::Response, seen));
            }
            _ => out.push(activity(&packet, Type::Unspecified, seen)),
        }
        Ok(())
    }

    /// Reports, unanswered, the requests between the same client and server that came before
    /// the one `answered` answers: servers answer in order, and a flow's activities go out in
    /// the order they happened.
    fn report_earlier(&mut self, answered: RequestKey, out: &mut Vec<Activity>) {
        for (_, key) in &self.order {
            if *key == answered {
                break;
            }
            if key.0 == answered.0
                && key.1 == answered.1
                && let Some(request) = self.pending.remove(key)
            {
                out.push(request);
            }
        }
    }

    /// Reports the requests that waited longer than [`REQUEST_WAIT_NS`], unanswered.
    pub(super) fn expire(&mut self, now_ns: u64, out: &mut Vec<Activity>) {
        while let Some(&(time_ns, key)) = self.order.front() {
            if now_ns.saturating_sub(time_ns) <= REQUEST_WAIT_NS {
                break;
            }
            self.order.pop_front();
            out.extend(self.pending.remove(&key));
        }
    }

    /// Reports every request still waiting, unanswered, oldest first.
    pub(super) fn flush(&mut self, out: &mut Vec<Activity>) {
        while let Some((_, key)) = self.order.pop_front() {
            out.extend(self.pending.remove(&key));
        }
    }

    /// The oldest requests go, unanswered, until there is room for one more; gives how many.
    fn make_room(&mut self, out: &mut Vec<Activity>) -> u64 {
        let mut evicted = 0;
        while self.pending.len() >= MAX_PENDING_NTP {
            let Some((_, key)) = self.order.pop_front() else {
                break;
            };
            if let Some(request) = self.pending.remove(&key) {
                evicted += 1;
                out.push(request);
            }
        }
        // Answered requests leave their keys behind: drop those first when the order grows.
        if self.order.len() >= 2 * MAX_PENDING_NTP {
            let pending = &self.pending;
            self.order.retain(|(_, key)| pending.contains_key(key));
        }
        evicted
    }
}

fn activity(packet: &NtpPacket, kind: Type, seen: &Seen) -> Activity {
    let auth = packet.authenticator;
    seen.activity(activity::Body::Ntp(NtpActivity {
        r#type: kind.into(),
        mode: u32::from(packet.mode.0),
        version: u32::from(packet.version),
        key_id: auth.map_or(0, |auth| auth.key_id),
        rid: auth.map_or(0, ntp::Authenticator::rid),
        old_password: auth.is_some_and(ntp::Authenticator::old_password),
        authenticator_len: u32::try_from(packet.trailer_len).unwrap_or(u32::MAX),
        answered: false,
        anomalies: flag_names([(packet.anomalies.unknown_trailer, "unknown_trailer")]),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::DissectCounters;
    use dcwatch_tests::fixture::hex;

    /// Feeds one datagram; the counters after it.
    fn feed(
        state: &mut NtpState,
        bytes: &[u8],
        seen: &Seen,
        out: &mut Vec<Activity>,
    ) -> Result<DissectCounters, Malformed> {
        let mut counters = DissectCounters::default();
        let mut announced = crate::dissect::endpoints::Announcements::default();
        let mut sink = Sink {
            out,
            counters: &mut counters,
            announced: &mut announced,
        };
        state.datagram(bytes, seen, &mut sink)?;
        Ok(counters)
    }

    /// A Timeroasting request as the tools build it: version 3, mode 3, a fixed Transmit
    /// timestamp, and the key identifier alone (RID, little-endian, top bit for the old
    /// password).
    fn request(rid: u32, old: bool) -> Vec<u8> {
        let mut bytes = hex(
            "db0011e9000000000001000000000000e1b8407debc7e5060000000000000000\
             0000000000000000e1b8428bffbfcd0a",
        );
        bytes.extend_from_slice(&(rid | if old { 0x8000_0000 } else { 0 }).to_le_bytes());
        bytes
    }

    /// The DC's answer: mode 4, Origin = the request's Transmit, the key identifier and a
    /// 16-octet checksum.
    fn answer(rid: u32) -> Vec<u8> {
        let mut bytes = request(rid, false);
        bytes[0] = 0x1c;
        let transmit: Vec<u8> = bytes[40..48].to_vec();
        bytes[24..32].copy_from_slice(&transmit);
        bytes.extend_from_slice(&[0x5a; 16]);
        bytes
    }

    fn seen(time_ns: u64, src: &str, dst: &str) -> Seen {
        Seen {
            time_ns,
            src: src.parse().expect("address"),
            dst: dst.parse().expect("address"),
            tcp: false,
        }
    }

    fn body(activity: &Activity) -> &NtpActivity {
        match &activity.body {
            Some(activity::Body::Ntp(body)) => body,
            _ => panic!("not NTP"),
        }
    }

    #[test]
    fn a_timeroast_run_answered_for_one_rid() {
        let mut state = NtpState::default();
        let mut out = Vec::new();
        let (client, dc) = ("10.0.0.66:40000", "10.0.0.1:123");
        for rid in [1103, 1104] {
            feed(
                &mut state,
                &request(rid, rid == 1104),
                &seen(1, client, dc),
                &mut out,
            )
            .expect("a request");
        }
        assert!(out.is_empty(), "requests wait for their answers");
        feed(&mut state, &answer(1103), &seen(2, dc, client), &mut out).expect("an answer");
        let (request, response) = (body(&out[0]), body(&out[1]));
        assert_eq!(request.r#type, i32::from(Type::Request));
        assert_eq!(
            (request.rid, request.old_password, request.answered),
            (1103, false, true)
        );
        assert_eq!(
            (request.mode, request.version, request.authenticator_len),
            (3, 3, 4)
        );
        assert_eq!(
            (response.r#type, response.rid),
            (i32::from(Type::Response), 1103)
        );
        assert_eq!(response.authenticator_len, 20);
        // The other waits its time, then goes unanswered.
        state.expire(1 + REQUEST_WAIT_NS, &mut out);
        assert_eq!(out.len(), 2);
        state.expire(1 + REQUEST_WAIT_NS + 1, &mut out);
        let unanswered = body(&out[2]);
        assert_eq!((unanswered.rid, unanswered.old_password), (1104, true));
        assert_eq!(unanswered.key_id, 0x8000_0000 | 0x450);
        assert!(!unanswered.answered);
    }

    #[test]
    fn the_table_is_bounded_and_malformed_packets_are_refused() {
        let mut state = NtpState::default();
        let mut out = Vec::new();
        let total = u32::try_from(MAX_PENDING_NTP).expect("small") + 3;
        let at = seen(1, "10.0.0.66:40000", "10.0.0.1:123");
        let mut evicted = 0;
        for rid in 0..total {
            let counters =
                feed(&mut state, &request(rid, false), &at, &mut out).expect("a request");
            evicted += counters.requests_not_awaited;
        }
        assert_eq!(out.len(), 3);
        assert_eq!(evicted, 3);
        assert_eq!(body(&out[0]).rid, 0);
        state.flush(&mut out);
        assert_eq!(out.len(), MAX_PENDING_NTP + 3);
        let mut bytes = request(1, false);
        bytes.truncate(47);
        assert_eq!(
            feed(&mut state, &bytes, &at, &mut out).err(),
            Some(Malformed)
        );
    }
}
