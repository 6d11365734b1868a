//! What the kernel must offer before the program is loaded, checked up front so the person running
//! the sensor reads the cause rather than a verifier log.

use std::path::Path;

use super::CaptureError;

/// `bpf_xdp_load_bytes`, which the program copies frames with, arrived in Linux 5.18.
const MIN_KERNEL: (u32, u32) = (5, 18);

/// Checks for kernel BTF at `btf_path` and a recent enough kernel `release` (`uname -r`).
pub(super) fn check_kernel(btf_path: &Path, release: &str) -> Result<(), CaptureError> {
    if !btf_path.exists() {
        return Err(CaptureError::NoBtf {
            path: btf_path.display().to_string(),
        });
    }
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|part| part.parse::<u32>().ok());
    match (numbers.next().flatten(), numbers.next().flatten()) {
        (Some(major), Some(minor)) if (major, minor) < MIN_KERNEL => {
            Err(CaptureError::KernelTooOld {
                release: release.to_owned(),
            })
        }
        // An unparsable release is left for the program load to judge.
        _ => Ok(()),
    }
}

/// The running kernel's release string, as `uname -r` prints it.
pub(super) fn release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|text| text.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_btf_is_named() {
        let error =
            check_kernel(Path::new("/nonexistent/btf/vmlinux"), "6.18.0").expect_err("no BTF");
        assert!(
            error
                .to_string()
                .contains("/nonexistent/btf/vmlinux is missing")
        );
    }

    #[test]
    fn old_kernels_are_refused_and_new_ones_pass() {
        let btf = Path::new("/");
        assert!(matches!(
            check_kernel(btf, "5.15.0-91-generic"),
            Err(CaptureError::KernelTooOld { .. })
        ));
        assert!(matches!(
            check_kernel(btf, "4.19.0"),
            Err(CaptureError::KernelTooOld { .. })
        ));
        check_kernel(btf, "5.18.0").expect("5.18 is enough");
        check_kernel(btf, "6.18.44-fc-v769").expect("6.18 is enough");
        check_kernel(btf, "").expect("unknown release is left to the loader");
    }
}
