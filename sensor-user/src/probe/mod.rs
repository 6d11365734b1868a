//! Optional active probes for network name resolution (`[nnr] active = true`; off by default):
//! for an address the passive evidence names with LOW certainty or not at all, the sensor asks
//! a DC's DNS server for the address's PTR record, the address itself for its NetBIOS node
//! status, and the address's endpoint mapper (TCP 135) for an NTLM CHALLENGE, whose target info
//! names the host: the methods Defender for Identity's sensor uses. Only addresses in
//! `probe_subnets`, at most `probe_rate_per_sec` addresses a second, one address once per
//! `probe_retry_secs`; every probe is counted. The packets and the plan are pure (`packet`,
//! `plan`); this thread sends, waits and hands the names found to the pipeline, which records
//! them like passive evidence, with their method.

pub mod packet;
pub mod plan;

use std::{
    io::{self, Read as _, Write as _},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::{Receiver, SyncSender, TrySendError, sync_channel},
    },
    thread,
    time::{Duration, Instant, SystemTime},
};

use dcwatch_detect::config::Subnet;
use dcwatch_entity::nnr::Evidence;
use dcwatch_parsers::dcerpc;
use dcwatch_proto::v1::ResolutionMethod;

use self::{
    packet::AnswerError,
    plan::{Admit, Planner},
};

/// Addresses waiting for the prober, and names waiting for the pipeline; beyond, counted.
const QUEUE: usize = 4096;
/// The NetBIOS name service port.
pub const NETBIOS_PORT: u16 = 137;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeSettings {
    pub subnets: Vec<Subnet>,
    /// Where PTR queries go (a DC's DNS server, port 53); none: no reverse DNS probes.
    pub dns_server: Option<SocketAddr>,
    /// Where node status requests go on each address (137).
    pub netbios_port: u16,
    /// Where NTLM-over-RPC binds go on each address (the endpoint mapper, 135).
    pub rpc_port: u16,
    pub rate_per_sec: u32,
    pub retry: Duration,
    pub timeout: Duration,
}

dcwatch_telemetry::counters! {
    /// What the active probes did.
    #[derive(Debug, Default)]
    pub struct ProbeCounters {
        /// Probes sent: reverse DNS queries, node status requests and NTLM-over-RPC binds.
        counter probes_sent: AtomicU64,
        /// Probes answered with a name.
        counter probes_answered: AtomicU64,
        /// Probes answered without a name (no PTR record, no unique host name, a refused
        /// connection or bind, a CHALLENGE that names no computer).
        counter probes_no_name: AtomicU64,
        /// Probes without an answer within the timeout.
        counter probes_timed_out: AtomicU64,
        /// Probes that could not be sent (a socket error).
        counter probes_failed: AtomicU64,
        /// Uncertain addresses not probed: over the rate.
        counter probes_rate_limited: AtomicU64,
        /// Uncertain addresses not probed: outside probe_subnets, or probed within the retry time.
        counter probes_skipped: AtomicU64,
        /// Uncertain addresses not handed to the prober: its queue was full.
        counter probes_queue_full: AtomicU64,
        /// Names found but not handed to the pipeline: its queue was full.
        counter probe_answers_dropped: AtomicU64,
    }
}

/// The probing thread: addresses in, names out. Stopped on drop.
#[derive(Debug)]
pub struct Prober {
    requests: Option<SyncSender<IpAddr>>,
    answers: Receiver<(Evidence, i64)>,
    counters: Arc<ProbeCounters>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Prober {
    pub fn start(settings: ProbeSettings) -> io::Result<Self> {
        let sockets = Sockets::bind(settings.timeout)?;
        let (requests, requested) = sync_channel(QUEUE);
        let (answered, answers) = sync_channel(QUEUE);
        let counters = Arc::new(ProbeCounters::default());
        let shared = Arc::clone(&counters);
        let thread = thread::Builder::new()
            .name("nnr-probe".to_owned())
            .spawn(move || run(&settings, &sockets, &requested, &answered, &shared))?;
        Ok(Self {
            requests: Some(requests),
            answers,
            counters,
            thread: Some(thread),
        })
    }

    /// Asks for `address` to be probed (the plan decides whether it is).
    pub fn ask(&self, address: IpAddr) {
        if let Some(requests) = &self.requests
            && let Err(TrySendError::Full(_)) = requests.try_send(address)
        {
            self.counters
                .probes_queue_full
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The names found since the last call, each with the time (Unix ms) it was answered.
    pub fn answers(&self) -> impl Iterator<Item = (Evidence, i64)> + '_ {
        self.answers.try_iter()
    }

    pub fn counters(&self) -> &ProbeCounters {
        &self.counters
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        // The thread ends when its queue closes, after the probe at hand.
        self.requests = None;
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            log::error!("the name resolution probe thread panicked");
        }
    }
}

/// One UDP socket per address family, each with the answer timeout.
struct Sockets {
    v4: UdpSocket,
    v6: Option<UdpSocket>,
}

impl Sockets {
    fn bind(timeout: Duration) -> io::Result<Self> {
        let v4 = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        v4.set_read_timeout(Some(timeout))?;
        // A host without IPv6 probes IPv4 only.
        let v6 = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)).ok();
        if let Some(v6) = &v6 {
            v6.set_read_timeout(Some(timeout))?;
        }
        Ok(Self { v4, v6 })
    }

    fn for_target(&self, target: SocketAddr) -> Option<&UdpSocket> {
        match target {
            SocketAddr::V4(_) => Some(&self.v4),
            SocketAddr::V6(_) => self.v6.as_ref(),
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

fn run(
    settings: &ProbeSettings,
    sockets: &Sockets,
    requested: &Receiver<IpAddr>,
    answered: &SyncSender<(Evidence, i64)>,
    counters: &ProbeCounters,
) {
    let retry_ms = i64::try_from(settings.retry.as_millis()).unwrap_or(i64::MAX);
    let mut plan = Planner::new(
        settings.subnets.clone(),
        settings.rate_per_sec,
        settings.rate_per_sec,
        retry_ms,
    );
    let count = |counter: &AtomicU64| counter.fetch_add(1, Ordering::Relaxed);
    while let Ok(address) = requested.recv() {
        match plan.admit(address, now_ms()) {
            Admit::Probe => {}
            Admit::RateLimited => {
                count(&counters.probes_rate_limited);
                continue;
            }
            Admit::OutOfScope | Admit::Recent => {
                count(&counters.probes_skipped);
                continue;
            }
        }
        for method in METHODS {
            let Some(outcome) = probe(method, address, settings, sockets) else {
                continue;
            };
            if !matches!(outcome, Outcome::Failed(_)) {
                count(&counters.probes_sent);
            }
            let counter = match outcome {
                Outcome::Named(name) => {
                    // A DNS record may outlive its host (weak, as a passive DNS answer); a node
                    // status answer and an NTLM CHALLENGE come from the host itself (strong).
                    let evidence = Evidence {
                        address,
                        name,
                        method,
                        strong: method != ResolutionMethod::ReverseDns,
                    };
                    if answered.try_send((evidence, now_ms())).is_err() {
                        count(&counters.probe_answers_dropped);
                    }
                    &counters.probes_answered
                }
                Outcome::NoName => &counters.probes_no_name,
                Outcome::TimedOut => &counters.probes_timed_out,
                Outcome::Failed(error) => {
                    log::debug!("name resolution probe ({method:?}) of {address}: {error}");
                    &counters.probes_failed
                }
            };
            count(counter);
        }
    }
}

/// The methods tried on each address admitted, in this order.
const METHODS: [ResolutionMethod; 3] = [
    ResolutionMethod::ReverseDns,
    ResolutionMethod::NetbiosNodeStatus,
    ResolutionMethod::NtlmRpcProbe,
];

/// One probe of `address` by `method`; none when the method does not apply (no DNS server
/// configured, NetBIOS over IPv6).
fn probe(
    method: ResolutionMethod,
    address: IpAddr,
    settings: &ProbeSettings,
    sockets: &Sockets,
) -> Option<Outcome> {
    let id = fastrand::u16(..);
    Some(match method {
        ResolutionMethod::ReverseDns => {
            let server = settings.dns_server?;
            exchange(
                sockets,
                server,
                &packet::ptr_query(id, address),
                settings.timeout,
                |bytes| packet::ptr_answer(bytes, id, address),
            )
        }
        ResolutionMethod::NetbiosNodeStatus if address.is_ipv4() => exchange(
            sockets,
            SocketAddr::new(address, settings.netbios_port),
            &packet::node_status_query(id),
            settings.timeout,
            |bytes| packet::node_status_answer(bytes, id),
        ),
        ResolutionMethod::NtlmRpcProbe => {
            let call_id = u32::from(id);
            rpc_exchange(
                SocketAddr::new(address, settings.rpc_port),
                &packet::ntlm_rpc_bind(call_id),
                settings.timeout,
                |bytes| packet::ntlm_rpc_answer(bytes, call_id),
            )
        }
        _ => return None,
    })
}

enum Outcome {
    Named(String),
    NoName,
    TimedOut,
    Failed(io::Error),
}

/// Sends `query` to `target` and waits up to `timeout` for its answer: datagrams from elsewhere,
/// for another transaction or unreadable are passed over.
fn exchange(
    sockets: &Sockets,
    target: SocketAddr,
    query: &[u8],
    timeout: Duration,
    read: impl Fn(&[u8]) -> Result<String, AnswerError>,
) -> Outcome {
    let Some(socket) = sockets.for_target(target) else {
        return Outcome::Failed(io::Error::other("no IPv6 socket"));
    };
    if let Err(error) = socket.send_to(query, target) {
        return Outcome::Failed(error);
    }
    let deadline = Instant::now() + timeout;
    let mut buffer = [0u8; 1500];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || socket.set_read_timeout(Some(left)).is_err() {
            return Outcome::TimedOut;
        }
        match socket.recv_from(&mut buffer) {
            Ok((len, from)) if from == target => {
                match read(buffer.get(..len).unwrap_or_default()) {
                    Ok(name) => return Outcome::Named(name),
                    Err(AnswerError::NoName(_)) => return Outcome::NoName,
                    Err(AnswerError::NotOurs | AnswerError::Malformed(_)) => {}
                }
            }
            Ok(_) => {}
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Outcome::TimedOut;
            }
            Err(error) => return Outcome::Failed(error),
        }
    }
}

/// Connects to `target`, sends `request` and reads one DCE-RPC PDU back, all within `timeout`,
/// then closes the connection. A refused connection is an answer without a name (the host is
/// there, without an endpoint mapper); a PDU is at most 64 KiB (its frag_length).
fn rpc_exchange(
    target: SocketAddr,
    request: &[u8],
    timeout: Duration,
    read: impl Fn(&[u8]) -> Result<String, AnswerError>,
) -> Outcome {
    let deadline = Instant::now() + timeout;
    let mut stream = match TcpStream::connect_timeout(&target, timeout) {
        Ok(stream) => stream,
        Err(error) => return io_outcome(error),
    };
    let answer = (|| {
        stream.set_write_timeout(Some(left(deadline)?))?;
        stream.write_all(request)?;
        let mut pdu = vec![0; dcerpc::HEADER_LEN];
        read_by(&mut stream, &mut pdu, deadline)?;
        let header = dcerpc::header(&pdu).map_err(io::Error::other)?;
        let frag_length = usize::from(header.frag_length).max(dcerpc::HEADER_LEN);
        pdu.resize(frag_length, 0);
        read_by(&mut stream, &mut pdu[dcerpc::HEADER_LEN..], deadline)?;
        Ok(pdu)
    })();
    match answer {
        Ok(pdu) => match read(&pdu) {
            Ok(name) => Outcome::Named(name),
            Err(AnswerError::NoName(_)) => Outcome::NoName,
            Err(error @ (AnswerError::NotOurs | AnswerError::Malformed(_))) => {
                log::debug!("name resolution probe of {target}: {error}");
                Outcome::NoName
            }
        },
        Err(error) => io_outcome(error),
    }
}

/// The time left until `deadline`, or a timeout error when there is none.
fn left(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(io::ErrorKind::TimedOut.into())
    } else {
        Ok(left)
    }
}

/// Fills `buffer` from `stream` before `deadline`.
fn read_by(stream: &mut TcpStream, buffer: &mut [u8], deadline: Instant) -> io::Result<()> {
    let mut filled = 0;
    while filled < buffer.len() {
        stream.set_read_timeout(Some(left(deadline)?))?;
        match stream.read(&mut buffer[filled..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

fn io_outcome(error: io::Error) -> Outcome {
    match error.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Outcome::TimedOut,
        // The host answered: nothing listens there, or it closed before naming itself.
        io::ErrorKind::ConnectionRefused
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::UnexpectedEof => Outcome::NoName,
        _ => Outcome::Failed(error),
    }
}
