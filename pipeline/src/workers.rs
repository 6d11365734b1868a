//! The per-flow stages (decode, flows, reassembly, dissection) on several threads.
//!
//! Each frame goes to the worker its two IP addresses hash to (`sensor_common::flow_affinity`,
//! the same whichever way the frame goes), so both directions of a connection, every fragment of
//! a datagram, and an endpoint mapper's answer with the connections it announces between the
//! same hosts meet in one worker's flow table. Frames travel in batches over bounded queues; the
//! results come back in the order the frames went out: the merge takes them in dispatch order,
//! so every flow's activities keep their order, and the whole stream is the one a single worker
//! would give, but for idle flows closed by a tick or at the end (those come worker by worker).
//! The dispatcher keeps the capture-time clock a single dissector keeps, and tells every worker
//! when to look for idle flows, so flows time out at the same frame whichever worker holds them.

use std::{
    collections::VecDeque,
    net::{IpAddr, SocketAddr},
    sync::mpsc::{self, Receiver, RecvError, Sender, SyncSender, TryRecvError},
    thread::{self, JoinHandle},
};

use dcwatch_proto::v1::Activity;
use dcwatch_telemetry::Snapshot;
use sensor_common::flow_affinity;

use crate::{
    decode::{LinkType, packet},
    dissect::{DissectLimits, Dissector, EXPIRY_INTERVAL_NS},
};

/// Frames per batch: enough to make a queue operation cheap beside the frames' own work.
const BATCH_FRAMES: usize = 64;
/// Batches queued to a worker before the dispatcher waits for it.
const QUEUED_BATCHES: usize = 16;

#[derive(Debug, thiserror::Error)]
#[error("a pipeline worker stopped (it panicked): its flows are lost")]
pub struct WorkerGone;

/// Frames for one worker, their bytes back to back.
#[derive(Debug, Default)]
struct FrameBatch {
    bytes: Vec<u8>,
    /// Per frame: its link type, time, and where its bytes end.
    frames: Vec<(LinkType, u64, usize)>,
}

impl FrameBatch {
    fn iter(&self) -> impl Iterator<Item = (LinkType, u64, &[u8])> {
        let starts = std::iter::once(0).chain(self.frames.iter().map(|&(_, _, end)| end));
        self.frames
            .iter()
            .zip(starts)
            .map(|(&(link, time_ns, end), start)| (link, time_ns, &self.bytes[start..end]))
    }
}

#[derive(Debug)]
enum Input {
    Frames(FrameBatch),
    /// Time passes: idle flows close.
    Tick(u64),
    /// End of input: every flow gives up what it holds.
    Finish(u64),
}

/// A worker's answer to one input: one list of activities per frame (or one for a tick).
#[derive(Debug)]
struct Output {
    results: Vec<Vec<Activity>>,
    learned: Vec<(SocketAddr, u64)>,
    /// The worker's counters, after a tick or the end.
    counters: Option<Snapshot>,
}

/// What the merge takes next.
#[derive(Clone, Copy, Debug)]
enum Slot {
    /// A frame's result from this worker.
    Frame(usize),
    /// A tick's or the end's result from every worker, in worker order.
    Every,
}

/// N workers, the dispatcher that feeds them, and the merge of what they give back.
#[derive(Debug)]
pub struct Workers {
    inputs: Vec<SyncSender<Input>>,
    outputs: Vec<Receiver<Output>>,
    threads: Vec<JoinHandle<()>>,
    filling: Vec<FrameBatch>,
    order: VecDeque<Slot>,
    /// Results received and not yet merged, per worker.
    pending: Vec<VecDeque<Vec<Activity>>>,
    /// Each worker's counters, as of its last tick.
    counters: Vec<Snapshot>,
    learned: Vec<(SocketAddr, u64)>,
    /// When, in capture time, every worker next looks for idle flows: the clock a single
    /// dissector would keep, so flows time out at the same frame whichever worker holds them.
    next_expiry_ns: u64,
}

impl Workers {
    /// Starts `count` workers (at least one), each with `limits` shared out `count` ways.
    pub fn start(count: usize, limits: &DissectLimits) -> std::io::Result<Self> {
        let count = count.max(1);
        let mut workers = Self {
            inputs: Vec::with_capacity(count),
            outputs: Vec::with_capacity(count),
            threads: Vec::with_capacity(count),
            filling: (0..count).map(|_| FrameBatch::default()).collect(),
            order: VecDeque::new(),
            pending: vec![VecDeque::new(); count],
            counters: vec![Snapshot::default(); count],
            learned: Vec::new(),
            next_expiry_ns: 0,
        };
        for index in 0..count {
            let (input, inputs) = mpsc::sync_channel(QUEUED_BATCHES);
            let (outputs, output) = mpsc::channel();
            // Made on its own thread: a dissector's memory budget is single-threaded by design.
            let limits = limits.share(count);
            let thread = thread::Builder::new()
                .name(format!("pipeline-{index}"))
                .spawn(move || work(Dissector::new(limits), &inputs, &outputs))?;
            workers.inputs.push(input);
            workers.outputs.push(output);
            workers.threads.push(thread);
        }
        Ok(workers)
    }

    pub fn count(&self) -> usize {
        self.inputs.len()
    }

    /// Hands a frame whose addresses are `src` and `dst` to its worker, and appends to `out`
    /// whatever results are ready, in order.
    pub fn frame(
        &mut self,
        link: LinkType,
        time_ns: u64,
        data: &[u8],
        (src, dst): (IpAddr, IpAddr),
        out: &mut Vec<Activity>,
    ) -> Result<(), WorkerGone> {
        if time_ns >= self.next_expiry_ns {
            // What a single dissector does before this frame: every worker does it, in order.
            self.next_expiry_ns = time_ns.saturating_add(EXPIRY_INTERVAL_NS);
            self.broadcast(Input::Tick, time_ns)?;
        }
        let index = worker_of(src, dst, self.count());
        let batch = &mut self.filling[index];
        batch.bytes.extend_from_slice(data);
        batch.frames.push((link, time_ns, batch.bytes.len()));
        self.order.push_back(Slot::Frame(index));
        if batch.frames.len() >= BATCH_FRAMES {
            self.send(index)?;
        }
        self.merge(out, false)
    }

    /// Lets time pass: sends every waiting frame, closes idle flows everywhere, and appends
    /// every result up to now to `out`.
    pub fn tick(&mut self, now_ns: u64, out: &mut Vec<Activity>) -> Result<(), WorkerGone> {
        if now_ns >= self.next_expiry_ns {
            self.next_expiry_ns = now_ns.saturating_add(EXPIRY_INTERVAL_NS);
        }
        self.everyone(Input::Tick, now_ns, out)
    }

    /// End of input: every result, the flows' last activities included.
    pub fn finish(&mut self, now_ns: u64, out: &mut Vec<Activity>) -> Result<(), WorkerGone> {
        self.everyone(Input::Finish, now_ns, out)
    }

    /// Sends every waiting frame and appends all their results to `out`: what a live capture
    /// does once it has drained the ring buffer, so no activity waits for more traffic.
    pub fn sync(&mut self, out: &mut Vec<Activity>) -> Result<(), WorkerGone> {
        for index in 0..self.count() {
            self.send(index)?;
        }
        self.merge(out, true)
    }

    /// The endpoints endpoint mappers announced since the last call, from every worker.
    pub fn take_learned_endpoints(&mut self) -> Vec<(SocketAddr, u64)> {
        std::mem::take(&mut self.learned)
    }

    /// Every worker's counters added up by name, as of the last tick.
    pub fn snapshot(&self) -> Snapshot {
        let mut sum = Snapshot::default();
        for counters in &self.counters {
            sum.accumulate(counters.clone());
        }
        sum
    }

    /// Sends `input` to every worker after what it was handed before, and waits for all of it.
    fn everyone(
        &mut self,
        input: fn(u64) -> Input,
        now_ns: u64,
        out: &mut Vec<Activity>,
    ) -> Result<(), WorkerGone> {
        self.broadcast(input, now_ns)?;
        self.merge(out, true)
    }

    /// Sends `input` to every worker after what it was handed before; its results are merged
    /// worker by worker at this point of the order.
    fn broadcast(&mut self, input: fn(u64) -> Input, now_ns: u64) -> Result<(), WorkerGone> {
        for index in 0..self.count() {
            self.send(index)?;
            self.inputs[index]
                .send(input(now_ns))
                .map_err(|_| WorkerGone)?;
        }
        self.order.push_back(Slot::Every);
        Ok(())
    }

    fn send(&mut self, index: usize) -> Result<(), WorkerGone> {
        if self.filling[index].frames.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.filling[index]);
        self.inputs[index]
            .send(Input::Frames(batch))
            .map_err(|_| WorkerGone)
    }

    /// Moves results to `out` in dispatch order, as far as they have come back; with `wait`,
    /// until every slot is merged (everything must have been sent).
    fn merge(&mut self, out: &mut Vec<Activity>, wait: bool) -> Result<(), WorkerGone> {
        while let Some(&slot) = self.order.front() {
            let workers = match slot {
                Slot::Frame(index) => index..index + 1,
                Slot::Every => 0..self.count(),
            };
            for index in workers.clone() {
                if !self.ready(index, wait)? {
                    return Ok(());
                }
            }
            self.order.pop_front();
            for index in workers {
                out.extend(self.pending[index].pop_front().unwrap_or_default());
            }
        }
        Ok(())
    }

    /// Whether worker `index` has a result waiting; receives what it sent meanwhile.
    fn ready(&mut self, index: usize, wait: bool) -> Result<bool, WorkerGone> {
        while self.pending[index].is_empty() {
            let output = if wait {
                self.outputs[index].recv().map_err(|RecvError| WorkerGone)?
            } else {
                match self.outputs[index].try_recv() {
                    Ok(output) => output,
                    Err(TryRecvError::Empty) => return Ok(false),
                    Err(TryRecvError::Disconnected) => return Err(WorkerGone),
                }
            };
            self.learned.extend(output.learned);
            if let Some(counters) = output.counters {
                self.counters[index] = counters;
            }
            self.pending[index].extend(output.results);
        }
        Ok(true)
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // Closing the queues ends the workers' loops.
        self.inputs.clear();
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                log::error!("a pipeline worker panicked");
            }
        }
    }
}

/// The worker a flow between `a` and `b` belongs to, out of `count`.
pub fn worker_of(a: IpAddr, b: IpAddr, count: usize) -> usize {
    let octets = |address: IpAddr| match address {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    let hash = flow_affinity(&octets(a), &octets(b));
    usize::try_from(hash).unwrap_or(0) % count.max(1)
}

/// One worker: frames in, activities out, until the dispatcher closes its queue.
fn work(mut dissector: Dissector, inputs: &Receiver<Input>, outputs: &Sender<Output>) {
    for input in inputs {
        let mut counters = None;
        let results = match input {
            Input::Frames(batch) => batch
                .iter()
                .map(|(link, time_ns, data)| {
                    let mut activities = Vec::new();
                    // The dispatcher decoded the frame to route it: it decodes here too.
                    if let Ok(decoded) = packet(link, data) {
                        dissector.packet(time_ns, &decoded, &mut activities);
                    }
                    activities
                })
                .collect(),
            Input::Tick(now_ns) => {
                let mut activities = Vec::new();
                dissector.tick(now_ns, &mut activities);
                counters = Some(dissector.snapshot());
                vec![activities]
            }
            Input::Finish(now_ns) => {
                let mut activities = Vec::new();
                dissector.finish(now_ns, &mut activities);
                counters = Some(dissector.snapshot());
                vec![activities]
            }
        };
        let output = Output {
            results,
            learned: dissector.take_learned_endpoints(),
            counters,
        };
        if outputs.send(output).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn both_directions_and_both_address_families_of_a_pair_meet_in_one_worker() {
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        for count in 1..=8 {
            assert_eq!(worker_of(a, b, count), worker_of(b, a, count));
            assert!(worker_of(a, b, count) < count);
        }
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert_eq!(worker_of(a, b, 7), worker_of(mapped, b, 7));
    }
}
