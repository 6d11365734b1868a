//! Requests waiting for their answer (by message id), and what the connection gives up when
//! it ends.

use super::*;

impl SmbSession {
    pub(super) fn wait_negotiate(
        &mut self,
        offered: Vec<String>,
        activity: Activity,
        sink: &mut Sink<'_>,
    ) {
        if let Some(previous) = self.negotiate.take() {
            self.budget.release(previous.charge);
            sink.out.extend(previous.activity);
        }
        let offered_len: usize = offered.iter().map(String::capacity).sum();
        let charge = activity.encoded_len() + ENTRY_OVERHEAD + offered_len;
        if !self.budget.try_reserve(charge) {
            sink.counters.requests_not_awaited += 1;
            sink.out.push(activity);
            return;
        }
        self.negotiate = Some(Pending {
            waiting: Waiting::Negotiate { offered },
            activity: Some(activity),
            charge,
        });
    }

    pub(super) fn answer_negotiate(
        &mut self,
        chosen: String,
        status: NtStatus,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) {
        let Some(pending) = self.negotiate.take() else {
            sink.counters.orphan_responses += 1;
            return;
        };
        self.budget.release(pending.charge);
        if let Some(mut activity) = pending.activity {
            if let Some(activity::Body::Smb(body)) = &mut activity.body {
                body.dialect = chosen;
                if self.version != 0 {
                    body.version = self.version;
                }
            }
            sink.out.push(finish(activity, status, seen));
        }
    }

    pub(super) fn wait(
        &mut self,
        id: u64,
        waiting: Waiting,
        activity: Option<Activity>,
        sink: &mut Sink<'_>,
    ) {
        if matches!(waiting, Waiting::Other) {
            return;
        }
        if self.pending.len() >= MAX_PENDING_PER_FLOW
            && let Some(oldest) = self.pending.keys().min().copied()
            && let Some(evicted) = self.take(oldest)
        {
            sink.counters.requests_not_awaited += 1;
            self.pipe_bytes_lost(&evicted.waiting, sink);
            self.give_up(evicted, sink.out);
        }
        let carried: usize = match &waiting {
            Waiting::SessionSetup { carried, .. } => {
                carried.iter().map(Activity::encoded_len).sum()
            }
            Waiting::Write { data, .. }
            | Waiting::Transceive {
                input: Some(Deferred { data, .. }),
                ..
            } => data.capacity(),
            Waiting::Create { name, .. } => name.capacity(),
            Waiting::TreeConnect { share } => share.capacity(),
            _ => 0,
        };
        let charge = ENTRY_OVERHEAD + carried + activity.as_ref().map_or(0, Activity::encoded_len);
        let pending = Pending {
            waiting,
            activity,
            charge,
        };
        if !self.budget.try_reserve(charge) {
            sink.counters.requests_not_awaited += 1;
            self.pipe_bytes_lost(&pending.waiting, sink);
            self.give_up(pending, sink.out);
            return;
        }
        if let Some(replaced) = self.pending.insert(id, pending) {
            self.budget.release(replaced.charge);
            self.pipe_bytes_lost(&replaced.waiting, sink);
            self.give_up(replaced, sink.out);
        }
    }

    pub(super) fn take(&mut self, id: u64) -> Option<Pending> {
        let pending = self.pending.remove(&id)?;
        self.budget.release(pending.charge);
        Some(pending)
    }

    /// A request reported without its answer.
    pub(super) fn give_up(&self, pending: Pending, out: &mut Vec<Activity>) {
        if let Waiting::SessionSetup { carried, .. } = pending.waiting {
            out.extend(carried);
        }
        out.extend(pending.activity);
    }

    pub(super) fn answered(
        &self,
        activity: Option<Activity>,
        status: NtStatus,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) {
        if let Some(activity) = activity {
            sink.out.push(finish(activity, status, seen));
        }
    }

    /// The connection is gone: requests never answered are reported as such (at the time of
    /// the last message, so a flow's activities stay in time order), then files still open,
    /// then the encrypted count.
    pub(crate) fn close(mut self, counters: &mut DissectCounters, out: &mut Vec<Activity>) {
        let time_ns = self.last_seen.map_or(0, |seen| seen.time_ns);
        let restamp = |mut activity: Activity| {
            if self.last_seen.is_some() {
                activity.time = Some(timestamp(time_ns));
            }
            activity
        };
        let mut unanswered = Vec::new();
        if let Some(pending) = self.negotiate.take() {
            self.budget.release(pending.charge);
            self.give_up(pending, &mut unanswered);
        }
        let mut pending: Vec<_> = self.pending.drain().collect();
        pending.sort_by_key(|(id, _)| *id);
        for (_, pending) in pending {
            self.budget.release(pending.charge);
            self.give_up(pending, &mut unanswered);
        }
        out.extend(unanswered.into_iter().map(restamp));
        let mut files: Vec<_> = self.files.drain().collect();
        files.sort_by_key(|(key, _)| key.id);
        for (key, file) in files {
            self.budget.release(file.charge);
            let at = Seen {
                time_ns,
                ..file.seen
            };
            let mut activities = Vec::new();
            // A pipe's calls reported at its close were never answered: they announce nothing.
            let mut announced = Announcements::default();
            let mut sink = Sink {
                out: &mut activities,
                counters,
                announced: &mut announced,
            };
            self.report_close(file, None, true, at, &mut sink);
            for activity in activities {
                out.push(if matches!(&activity.body, Some(activity::Body::Smb(_))) {
                    self.with_account(activity, key.session)
                } else {
                    activity
                });
            }
        }
        if self.encrypted.messages > 0 {
            self.report_encrypted(time_ns, out);
        }
    }
}
