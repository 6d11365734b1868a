//! Asks each configured DC's endpoint mapper which TCP ports its DCE-RPC interfaces listen on,
//! as impacket's rpcdump does, so the XDP filter watches them before any client's endpoint-mapper
//! exchange passes by (or after one passed before the sensor started).
//!
//! The exchange runs in a task of its own with a timeout: a DC that does not answer costs a
//! counted failure, never a stalled capture.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use dcwatch_parsers::dcerpc::{
    self, Body, HEADER_LEN, PacketType, PfcFlags,
    epm::{self, EntryHandle, MAX_ENTRIES_PER_CALL},
    stub::{ByteOrder, Encoding, TowerProtocol},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::mpsc,
    task::JoinHandle,
};

pub const EPM_PORT: u16 = 135;

/// How often each DC is asked again: a DC picks its dynamic ports at boot, so this is how late
/// a rebooted DC's new ports are watched at worst.
pub const QUERY_INTERVAL: Duration = Duration::from_mins(10);

/// How long one DC's whole exchange may take.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an answered port stays watched without being announced again: three rounds, so
/// one failed query does not close the ports of a DC that is still there.
pub const PORT_TTL: Duration = Duration::from_mins(30);

/// ept_lookup calls in one exchange: a mapper that keeps handing out handles must end.
pub const MAX_LOOKUP_CALLS: u32 = 32;

/// Stub bytes gathered from one answer's fragments. 500 entries of a Windows DC take about
/// 100 KiB.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Answers waiting for the capture loop; the query task waits when it is full.
const CHANNEL_CAPACITY: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("no answer within {} s", QUERY_TIMEOUT.as_secs())]
    Timeout,
    #[error("the endpoint mapper refused the bind")]
    BindRefused,
    #[error("the endpoint mapper answered with a fault (status {0:#010x})")]
    Fault(u32),
    #[error("not an endpoint-mapper answer: {0}")]
    Protocol(&'static str),
}

/// One DC's answer.
#[derive(Debug)]
pub struct DcAnswer {
    pub dc: IpAddr,
    /// The TCP ports announced for the DC itself, sorted, without duplicates.
    pub ports: Result<Vec<u16>, QueryError>,
}

dcwatch_telemetry::counters! {
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct QueryCounters {
        /// Exchanges with an endpoint mapper, answered or not.
        counter queries: u64,
        /// Of those, the ones that failed (refused, timed out, garbled).
        counter query_failures: u64,
        /// Ports added to the XDP filter because a queried endpoint mapper announced them.
        counter query_ports_opened: u64,
    }
}

/// Asks every DC in `dcs` now and every `interval`, each within `timeout`; the answers arrive
/// on the receiver. The task ends when the receiver is dropped; abort it to end it sooner.
pub fn spawn(
    dcs: Vec<IpAddr>,
    interval: Duration,
    timeout: Duration,
) -> (mpsc::Receiver<DcAnswer>, JoinHandle<()>) {
    let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
    let task = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            for &dc in &dcs {
                let ports = query(SocketAddr::new(dc, EPM_PORT), timeout).await;
                if sender.send(DcAnswer { dc, ports }).await.is_err() {
                    return;
                }
            }
        }
    });
    (receiver, task)
}

/// The TCP ports the endpoint mapper at `address` announces for its own host.
pub async fn query(address: SocketAddr, timeout: Duration) -> Result<Vec<u16>, QueryError> {
    tokio::time::timeout(timeout, exchange(address))
        .await
        .map_err(|_| QueryError::Timeout)?
}

async fn exchange(address: SocketAddr) -> Result<Vec<u16>, QueryError> {
    let mut stream = TcpStream::connect(address).await?;
    stream.write_all(&epm::bind(1)).await?;
    let ack = read_pdu(&mut stream).await?;
    let accepted = match dcerpc::parse(&ack).map(|pdu| pdu.body) {
        Ok(Body::BindAck(ack)) => ack
            .results
            .first()
            .is_some_and(|result| result.result.0 == 0),
        Ok(Body::BindNak { .. }) => false,
        _ => return Err(QueryError::Protocol("no bind_ack")),
    };
    if !accepted {
        return Err(QueryError::BindRefused);
    }
    let mut ports = Vec::new();
    let mut handle: EntryHandle = [0; 20];
    for call_id in 2..2 + MAX_LOOKUP_CALLS {
        let request = epm::lookup_request(call_id, &handle, MAX_ENTRIES_PER_CALL);
        stream.write_all(&request).await?;
        let (stub, order) = read_response(&mut stream).await?;
        let answer = epm::lookup_response(&stub, Encoding::Ndr, order)
            .ok_or(QueryError::Protocol("undecodable ept_lookup answer"))?;
        ports.extend(
            answer
                .endpoints
                .iter()
                .filter(|endpoint| endpoint.protocol == TowerProtocol::TCP)
                // A tower may name another host; 0.0.0.0 (or no floor 5) means the mapper's.
                // Floor 5 holds IPv4 only: a mapper asked over IPv6 cannot be compared with it.
                .filter(|endpoint| {
                    endpoint.ip.is_none_or(|ip| {
                        ip.is_unspecified() || address.is_ipv6() || IpAddr::V4(ip) == address.ip()
                    })
                })
                .filter_map(|endpoint| endpoint.port),
        );
        if !answer.has_more() {
            break;
        }
        handle = answer.handle;
    }
    ports.sort_unstable();
    ports.dedup();
    Ok(ports)
}

/// One PDU, whole.
async fn read_pdu(stream: &mut TcpStream) -> Result<Vec<u8>, QueryError> {
    let mut pdu = vec![0; HEADER_LEN];
    stream.read_exact(&mut pdu).await?;
    let header = dcerpc::header(&pdu).map_err(|_| QueryError::Protocol("not DCE-RPC"))?;
    let frag_length = usize::from(header.frag_length);
    if frag_length < HEADER_LEN {
        return Err(QueryError::Protocol("frag_length shorter than its header"));
    }
    pdu.resize(frag_length, 0);
    stream.read_exact(&mut pdu[HEADER_LEN..]).await?;
    Ok(pdu)
}

/// The stub of a response, its fragments joined, and the byte order it is in.
async fn read_response(stream: &mut TcpStream) -> Result<(Vec<u8>, ByteOrder), QueryError> {
    let mut stub = Vec::new();
    loop {
        let bytes = read_pdu(stream).await?;
        let pdu = dcerpc::parse(&bytes).map_err(|_| QueryError::Protocol("unparsable PDU"))?;
        match pdu.body {
            Body::Response(response) => {
                if stub.len() + response.stub.len() > MAX_ANSWER_BYTES {
                    return Err(QueryError::Protocol("answer too long"));
                }
                stub.extend_from_slice(response.stub);
            }
            Body::Fault(fault) => return Err(QueryError::Fault(fault.status.0)),
            _ => return Err(QueryError::Protocol("neither response nor fault")),
        }
        if pdu.header.packet_type == PacketType::RESPONSE
            && pdu.header.flags.contains(PfcFlags::LAST_FRAG)
        {
            return Ok((stub, ByteOrder::of(&pdu.header)));
        }
    }
}

#[cfg(test)]
mod tests;
