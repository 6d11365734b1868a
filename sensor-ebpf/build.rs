//! Rebuilds the eBPF objects when bpf-linker changes: it is their linker, outside cargo's view.
fn main() {
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
