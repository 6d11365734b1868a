//! `capture.fanout = "xdp"`: the XDP program has already shared the frames out, each flow's to
//! its worker's own ring buffer (by `sensor_common::flow_affinity`, the hash the reader's
//! dispatcher uses), so each worker thread reads its ring, decodes and dissects on its own, and
//! hands back activities and what the pipeline's global stages need of each frame. Nothing is
//! decoded twice and no thread sees every frame. Each flow lives in one ring, one worker, so its
//! activities keep their order; flows of different workers interleave as they come back.
//!
//! The pipeline's clock is the frames' own: each worker's dissector closes idle flows by the
//! times of its frames, and the pipeline's ticks reach every worker. At the end every worker
//! first empties its ring (the program is detached by then), then all finish at the time of the
//! last frame any of them saw, as a single dissector would.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{
        Arc,
        mpsc::{self, Receiver, Sender, SyncSender, TryRecvError},
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use dcwatch_pipeline::{
    decode::{LinkType, packet},
    dissect::{DissectLimits, Dissector},
    frame::Frame,
};
use dcwatch_proto::v1::Activity;
use dcwatch_telemetry::Snapshot;
use tokio::sync::Notify;

/// Records a worker takes from its ring before it hands their results back.
const BATCH_RECORDS: u64 = 256;
/// Results queued from all workers before a worker waits for the pipeline: a bound on memory
/// (a worker that waits leaves frames in its ring, where a full ring is counted).
const QUEUED_RESULTS: usize = 64;
/// How long a worker with an empty ring sleeps before it looks at its orders again.
const IDLE_WAIT: Duration = Duration::from_millis(50);

/// Where a worker's frames come from: a ring buffer (live capture), or anything that hands out
/// frames the same way.
pub trait FrameSource: Send + 'static {
    /// Hands up to `limit` waiting records to `handle`, oldest first (`None`: a record that did
    /// not hold a whole frame); returns how many there were.
    fn take(&mut self, limit: u64, handle: &mut dyn FnMut(Option<Frame<'_>>)) -> u64;
    /// Returns once records may be waiting, or after `timeout`.
    fn wait(&mut self, timeout: Duration);
}

#[derive(Debug, thiserror::Error)]
#[error("a ring worker stopped (it panicked): its flows are lost")]
pub struct WorkerGone;

#[derive(Debug)]
enum Order {
    /// Time passes: idle flows close.
    Tick(u64),
    /// The program is detached: empty the ring, then say so.
    Drain,
    /// End of input at this time: every flow gives up what it holds.
    Finish(u64),
}

/// What a worker hands back: its frames' results, in its ring's order.
#[derive(Debug, Default)]
pub struct Results {
    pub activities: Vec<Activity>,
    /// Records taken from the ring, and of those, the ones that did not decode.
    pub delivered: u64,
    pub decode_errors: u64,
    /// Each source address seen, with the time it was last seen.
    pub heard: HashMap<IpAddr, u64>,
    /// Ports the XDP program found a DCE-RPC header on.
    pub rpc_ports: Vec<u16>,
    pub learned: Vec<(SocketAddr, u64)>,
    /// The latest frame time in this batch.
    pub last_time_ns: u64,
    worker: usize,
    /// The worker's counters, after a tick or the end.
    counters: Option<Snapshot>,
    /// The answer to `Order::Drain` or `Order::Finish`.
    done: bool,
}

/// One worker thread per ring, and the queue their results come back on.
#[derive(Debug)]
pub struct RingWorkers {
    orders: Vec<Sender<Order>>,
    results: Receiver<Results>,
    threads: Vec<JoinHandle<()>>,
    /// Each worker's counters, as of its last tick.
    counters: Vec<Snapshot>,
    /// Told whenever results are queued: the pipeline's owner waits on it.
    ready: Arc<Notify>,
}

impl RingWorkers {
    /// Starts one worker per source, each with `limits` shared out among them.
    pub fn start<S: FrameSource>(sources: Vec<S>, limits: &DissectLimits) -> std::io::Result<Self> {
        let count = sources.len();
        let (results_tx, results) = mpsc::sync_channel(QUEUED_RESULTS);
        let ready = Arc::new(Notify::new());
        let mut workers = Self {
            orders: Vec::with_capacity(count),
            results,
            threads: Vec::with_capacity(count),
            counters: vec![Snapshot::default(); count],
            ready: Arc::clone(&ready),
        };
        for (index, source) in sources.into_iter().enumerate() {
            let (orders_tx, orders) = mpsc::channel();
            let limits = limits.share(count);
            let out = Outbox {
                results: results_tx.clone(),
                ready: Arc::clone(&ready),
            };
            let thread = thread::Builder::new()
                .name(format!("ring-{index}"))
                .spawn(move || {
                    let worker = Worker {
                        index,
                        source,
                        dissector: Dissector::new(limits),
                        last_time_ns: 0,
                    };
                    worker.run(&orders, &out);
                })?;
            workers.orders.push(orders_tx);
            workers.threads.push(thread);
        }
        Ok(workers)
    }

    /// Told whenever results wait in [`RingWorkers::try_results`].
    pub fn ready(&self) -> Arc<Notify> {
        Arc::clone(&self.ready)
    }

    /// Results waiting now, without blocking.
    pub fn try_results(&mut self) -> Result<Vec<Results>, WorkerGone> {
        let mut all = Vec::new();
        loop {
            match self.results.try_recv() {
                Ok(results) => all.push(self.note(results)),
                Err(TryRecvError::Empty) => return Ok(all),
                Err(TryRecvError::Disconnected) => return Err(WorkerGone),
            }
        }
    }

    /// Lets time pass in every worker; their answers come back as results.
    pub fn tick(&self, now_ns: u64) -> Result<(), WorkerGone> {
        self.order(|| Order::Tick(now_ns))
    }

    /// Every worker empties its ring (the program must be detached): every result up to then,
    /// in each worker's order.
    pub fn drain(&mut self) -> Result<Vec<Results>, WorkerGone> {
        self.order(|| Order::Drain)?;
        self.collect_done()
    }

    /// Every worker's flows give up what they hold at `now_ns`; the workers end.
    pub fn finish(&mut self, now_ns: u64) -> Result<Vec<Results>, WorkerGone> {
        self.order(|| Order::Finish(now_ns))?;
        self.collect_done()
    }

    /// Every worker's counters added up by name, as of its last tick.
    pub fn snapshot(&self) -> Snapshot {
        let mut sum = Snapshot::default();
        for counters in &self.counters {
            sum.accumulate(counters.clone());
        }
        sum
    }

    fn order(&self, order: impl Fn() -> Order) -> Result<(), WorkerGone> {
        for orders in &self.orders {
            orders.send(order()).map_err(|_| WorkerGone)?;
        }
        Ok(())
    }

    /// Results until every worker has answered the last order.
    fn collect_done(&mut self) -> Result<Vec<Results>, WorkerGone> {
        let mut all = Vec::new();
        let mut done = 0;
        while done < self.orders.len() {
            let results = self.results.recv().map_err(|_| WorkerGone)?;
            done += usize::from(results.done);
            all.push(self.note(results));
        }
        Ok(all)
    }

    fn note(&mut self, mut results: Results) -> Results {
        if let Some(counters) = results.counters.take() {
            self.counters[results.worker] = counters;
        }
        results
    }
}

impl Drop for RingWorkers {
    fn drop(&mut self) {
        // Closing the order queues ends the workers' loops; a worker blocked on a full results
        // queue is freed by dropping the receiver first.
        self.orders.clear();
        let (_, closed) = mpsc::sync_channel(0);
        drop(std::mem::replace(&mut self.results, closed));
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                log::error!("a ring worker panicked");
            }
        }
    }
}

/// A worker's way back to the pipeline.
struct Outbox {
    results: SyncSender<Results>,
    ready: Arc<Notify>,
}

impl Outbox {
    /// False once the pipeline is gone.
    fn send(&self, results: Results) -> bool {
        let sent = self.results.send(results).is_ok();
        self.ready.notify_one();
        sent
    }
}

struct Worker<S> {
    index: usize,
    source: S,
    dissector: Dissector,
    last_time_ns: u64,
}

impl<S: FrameSource> Worker<S> {
    fn run(mut self, orders: &Receiver<Order>, out: &Outbox) {
        loop {
            match orders.try_recv() {
                Ok(Order::Tick(now_ns)) => {
                    let mut results = self.results();
                    self.dissector.tick(now_ns, &mut results.activities);
                    results.counters = Some(self.dissector.snapshot());
                    results.learned = self.dissector.take_learned_endpoints();
                    if !out.send(results) {
                        return;
                    }
                }
                Ok(Order::Drain) => {
                    loop {
                        let results = self.batch();
                        if results.delivered == 0 {
                            break;
                        }
                        if !out.send(results) {
                            return;
                        }
                    }
                    let mut done = self.results();
                    done.done = true;
                    if !out.send(done) {
                        return;
                    }
                }
                Ok(Order::Finish(now_ns)) => {
                    let mut results = self.results();
                    self.dissector.finish(now_ns, &mut results.activities);
                    results.counters = Some(self.dissector.snapshot());
                    results.learned = self.dissector.take_learned_endpoints();
                    results.done = true;
                    out.send(results);
                    return;
                }
                Err(TryRecvError::Disconnected) => return,
                Err(TryRecvError::Empty) => {
                    let results = self.batch();
                    if results.delivered == 0 {
                        self.source.wait(IDLE_WAIT);
                    } else if !out.send(results) {
                        return;
                    }
                }
            }
        }
    }

    fn results(&self) -> Results {
        Results {
            worker: self.index,
            last_time_ns: self.last_time_ns,
            ..Results::default()
        }
    }

    /// Up to `BATCH_RECORDS` records from the ring, decoded and dissected.
    fn batch(&mut self) -> Results {
        let mut results = self.results();
        let Self {
            source,
            dissector,
            last_time_ns,
            ..
        } = self;
        source.take(BATCH_RECORDS, &mut |record| {
            results.delivered += 1;
            let Some(frame) = record else {
                results.decode_errors += 1;
                return;
            };
            if let Some(port) = frame.rpc_port
                && !results.rpc_ports.contains(&port)
            {
                results.rpc_ports.push(port);
            }
            *last_time_ns = (*last_time_ns).max(frame.timestamp_ns);
            let Ok(decoded) = packet(LinkType::Ethernet, frame.data) else {
                results.decode_errors += 1;
                return;
            };
            let heard = results.heard.entry(decoded.src).or_default();
            *heard = (*heard).max(frame.timestamp_ns);
            dissector.packet(frame.timestamp_ns, &decoded, &mut results.activities);
        });
        results.last_time_ns = self.last_time_ns;
        results.learned = self.dissector.take_learned_endpoints();
        results
    }
}
