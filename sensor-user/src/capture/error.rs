use std::io;

/// Why live capture could not start or go on, phrased for the person running the sensor.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("interface `{0}` not found (see `ip link`)")]
    InterfaceNotFound(String),
    #[error(
        "not permitted to {action}: run as root, or grant CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON"
    )]
    NotPermitted { action: &'static str },
    #[error(
        "kernel has no BTF ({path} is missing): dcwatch needs Linux 5.18 or later built with \
         CONFIG_DEBUG_INFO_BTF=y"
    )]
    NoBtf { path: String },
    #[error("kernel {release} is too old for dcwatch's XDP program: Linux 5.18 or later is needed")]
    KernelTooOld { release: String },
    #[error("kernel rejected the XDP program (does it support XDP and BPF ring buffers?): {0}")]
    ProgramRejected(String),
    #[error(
        "refusing mirror mode on `{interface}`: it carries the host's own address {address}, and \
         mirror mode drops every frame it receives; use --mode host, or a dedicated capture NIC \
         without addresses"
    )]
    MirrorOnAddressedInterface {
        interface: String,
        address: std::net::IpAddr,
    },
    #[error("cannot attach XDP to `{interface}` in {mode} mode: {reason}")]
    Attach {
        interface: String,
        mode: &'static str,
        reason: String,
    },
    #[error("BPF map `{map}`: {reason}")]
    Map { map: &'static str, reason: String },
    #[error("reading the ring buffer: {0}")]
    Ring(#[source] io::Error),
}

/// The errno at the bottom of an aya error chain, if there is one.
pub(super) fn os_error(error: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(code) = error
            .downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
        {
            return Some(code);
        }
        current = error.source();
    }
    None
}

/// The whole chain of an error on one line.
pub(super) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(source) = current {
        let next = source.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        current = source.source();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `EPERM` is the kernel's answer to a missing capability; `EACCES` from a program load is the
/// verifier's rejection, not a permission problem.
pub(super) fn is_permission_error(code: Option<i32>) -> bool {
    code == Some(libc::EPERM)
}
