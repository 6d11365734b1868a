//! The appliance booted under qemu's software emulation (TCG: KVM inside this project's own
//! virtual machines fails on model-specific registers) with two virtio NICs: management on qemu's user-mode network, whose gateway is the loopback of a
//! namespace made here, where a real `dcwatch-backend serve` listens; capture on a tap in that
//! namespace, into which the test writes a lab capture's frames. The appliance's journal is read
//! from its serial console. Needs root; run by `cargo xtask test --full`.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use dcwatch_tests::{
    backend_process::BackendProcess,
    netns::{NetNs, ip, unique_name},
    pcap,
    sender::send_frames,
    sensor_process::RunDir,
};
use serde_json::Value;

use super::*;

/// The seed's local-hostname: the sensor's id, which the backend's token admits.
const SENSOR_ID: &str = "vm-appliance-test";
/// The NICs' PCI slots give their names in the guest (ens3, ens4).
const MANAGEMENT_SLOT: u8 = 3;
const CAPTURE_SLOT: u8 = 4;
const CAPTURE_NIC: &str = "ens4";
const MANAGEMENT_MAC: &str = "52:54:00:dc:00:03";
/// The host as qemu's user-mode network shows it to the guest.
const HOST_FROM_GUEST: &str = "10.0.2.2";
/// A boot under software emulation on a busy machine takes minutes (two and a half seen with
/// the machine's two cores loaded five times over).
const BOOT_TIMEOUT: Duration = Duration::from_mins(10);
const CAPTURE: &str = "testdata/pcaps/adlab/kerberos.pcap";

/// qemu with the appliance's disk (a throwaway overlay on the image) and a seed; killed on drop.
struct Vm {
    child: Child,
    console: PathBuf,
    started: Instant,
}

impl Vm {
    fn boot(namespace: &NetNs, image: &Path, seed: &Path, tap: &str, dir: &Path) -> Self {
        let overlay = dir.join("overlay.qcow2");
        shell::run(
            Command::new("qemu-img")
                .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
                .arg(image)
                .arg(&overlay),
        )
        .expect("an overlay on the image");
        let console = dir.join("console.log");
        let mut command = namespace.command("qemu-system-x86_64");
        command
            .args(["-machine", "pc,accel=tcg", "-cpu", "max"])
            .args(["-smp", "2", "-m", "1024"])
            .args(["-nodefaults", "-no-user-config", "-display", "none"])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .arg("-drive")
            .arg(format!(
                "if=none,id=disk,format=qcow2,file={}",
                overlay.display()
            ))
            .args(["-device", "virtio-blk-pci,drive=disk,addr=0x5"])
            .arg("-drive")
            .arg(format!(
                "if=none,id=seed,format=raw,readonly=on,file={}",
                seed.display()
            ))
            .args(["-device", "virtio-blk-pci,drive=seed,addr=0x6"])
            .args(["-netdev", "user,id=management"])
            .arg("-device")
            .arg(format!(
                "virtio-net-pci,netdev=management,mac={MANAGEMENT_MAC},addr={MANAGEMENT_SLOT:#x}"
            ))
            .arg("-netdev")
            .arg(format!(
                "tap,id=capture,ifname={tap},script=no,downscript=no"
            ))
            .arg("-device")
            .arg(format!(
                "virtio-net-pci,netdev=capture,mac=52:54:00:dc:00:04,addr={CAPTURE_SLOT:#x}"
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        eprintln!("vm test: booting {}", overlay.display());
        let started = Instant::now();
        let child = command.spawn().expect("qemu starts");
        Self {
            child,
            console,
            started,
        }
    }

    fn console(&self) -> String {
        fs::read(&self.console)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Time from qemu's start until the console shows a line holding every one of `texts`.
    fn wait_for(&mut self, texts: &[&str]) -> Duration {
        loop {
            if let Some(line) = self
                .console()
                .lines()
                .find(|line| texts.iter().all(|text| line.contains(text)))
            {
                eprintln!("vm test: {line}");
                return self.started.elapsed();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("qemu exited ({status}); console:\n{}", self.console());
            }
            assert!(
                self.started.elapsed() < BOOT_TIMEOUT,
                "no line with {texts:?} after {BOOT_TIMEOUT:?}; console:\n{}",
                self.console()
            );
            thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        drop(self.child.kill());
        drop(self.child.wait());
    }
}

/// The backend in the namespace, its certificate also naming the address the guest reaches it
/// by, with a token for [`SENSOR_ID`].
struct Backend {
    bin: PathBuf,
    data: PathBuf,
    token: String,
    process: BackendProcess,
}

impl Backend {
    fn start(namespace: &NetNs, dir: &Path) -> Self {
        let bin = shell::workspace_root().join("target/release/dcwatch-backend");
        let data = dir.join("backend");
        let token = shell::stdout_of(
            Command::new(&bin)
                .args(["token", "add", SENSOR_ID, "--data-dir"])
                .arg(&data),
        )
        .expect("a token for the appliance")
        .trim()
        .to_owned();
        let config = dir.join("backend.toml");
        fs::write(&config, format!("[tls]\nsans = [\"{HOST_FROM_GUEST}\"]\n"))
            .expect("the backend's config");
        let process = BackendProcess::start_configured(
            namespace.command(&bin.to_string_lossy()),
            "127.0.0.1:0",
            &data,
            Some(&config),
        )
        .expect("the backend starts");
        Self {
            bin,
            data,
            token,
            process,
        }
    }

    fn stored(&self) -> Vec<String> {
        shell::stdout_of(
            Command::new(&self.bin)
                .args(["activities", "--json", "--data-dir"])
                .arg(&self.data),
        )
        .expect("the backend's activities")
        .lines()
        .map(str::to_owned)
        .collect()
    }
}

/// A seed in `dir` for the backend, with `token` as the sensor's token and SSH on or off;
/// returns its image.
fn seed_with(dir: &Path, backend: &Backend, token: &str, ssh: bool) -> PathBuf {
    let files = dir.join("seed");
    let dcwatch = files.join("dcwatch");
    fs::create_dir_all(&dcwatch).expect("the seed's folder");
    fs::write(
        files.join("meta-data"),
        format!(
            "instance-id: {}\nlocal-hostname: {SENSOR_ID}\n",
            unique_name("test")
        ),
    )
    .expect("meta-data");
    fs::write(
        dcwatch.join("appliance.conf"),
        format!(
            "MANAGEMENT_NIC={MANAGEMENT_MAC}\nMANAGEMENT_ADDRESS=dhcp\nSSH={}\n",
            if ssh { "on" } else { "off" }
        ),
    )
    .expect("appliance.conf");
    // sshd reads the keys only when someone logs in: any key line will do.
    fs::write(
        dcwatch.join("authorized_keys"),
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ test\n",
    )
    .expect("authorized_keys");
    fs::write(
        dcwatch.join("dcwatch.toml"),
        format!(
            "[capture]\ninterfaces = [\"{CAPTURE_NIC}\"]\nmode = \"mirror\"\nattach = \"generic\"\n\n\
             [backend]\nurl = \"https://{HOST_FROM_GUEST}:{}\"\ntoken_credential = \"token\"\n\
             ca = \"/etc/dcwatch/backend-ca.pem\"\n",
            backend.process.address.port()
        ),
    )
    .expect("dcwatch.toml");
    fs::write(dcwatch.join("token"), token).expect("the token");
    fs::copy(
        backend.data.join("tls/ca.pem"),
        dcwatch.join("backend-ca.pem"),
    )
    .expect("the backend's CA");
    let image = dir.join("seed.img");
    seed(&files, &image).expect("the seed image");
    image
}

/// Activities without what differs between a live capture and a replay: the capture time, the
/// sensor's name and the flow id hashed with the first-seen time.
fn normalised(lines: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in lines {
        let mut activity: Value = serde_json::from_str(line).expect("a JSON line");
        let object = activity.as_object_mut().expect("an object");
        for field in ["time", "sensor_id", "flow_id"] {
            object.remove(field);
        }
        *counts.entry(activity.to_string()).or_insert(0) += 1;
    }
    counts
}

fn replayed(capture: &Path) -> Vec<String> {
    shell::stdout_of(
        Command::new(shell::workspace_root().join("target/release/dcwatch-sensor"))
            .args(["replay", "--output", "json"])
            .arg(capture),
    )
    .expect("replay")
    .lines()
    .map(str::to_owned)
    .collect()
}

/// The namespace with its tap, up: qemu opens the tap by name, so it runs in there too.
fn namespace_with_tap() -> (NetNs, String) {
    let namespace = NetNs::create("dcwv").expect("a namespace");
    let tap = unique_name("dcwt");
    ip(&[
        "-n",
        namespace.name(),
        "tuntap",
        "add",
        "dev",
        &tap,
        "mode",
        "tap",
    ])
    .expect("a tap");
    ip(&["-n", namespace.name(), "link", "set", &tap, "up"]).expect("the tap up");
    (namespace, tap)
}

#[test]
#[ignore = "builds the appliance image (cached) and boots it twice under qemu: `cargo xtask test --full`"]
fn the_appliance_captures_on_its_mirror_nic_and_streams_to_the_backend() {
    let image = run(None).expect("the image builds");
    let (namespace, tap) = namespace_with_tap();
    let dir = RunDir::create().expect("a scratch folder");
    let backend = Backend::start(&namespace, dir.path());
    let seed = seed_with(dir.path(), &backend, &backend.token, false);
    let mut vm = Vm::boot(&namespace, &image, &seed, &tap, dir.path());

    let capturing = vm.wait_for(&["capturing on ens4", "generic XDP", "Mirror mode"]);
    vm.wait_for(&["dcwatch-appliance: listening on the network: nothing"]);
    let capture = shell::workspace_root().join(CAPTURE);
    let frames = pcap::read_frames(&capture).expect("the capture's frames");
    send_frames(&namespace, &tap, frames.iter().map(Vec::as_slice)).expect("frames into the tap");
    let expected = replayed(&capture);
    assert!(
        expected.len() >= 50,
        "only {} activities replayed",
        expected.len()
    );
    let mut first_activity = None;
    let deadline = Instant::now() + Duration::from_mins(2);
    let stored = loop {
        let stored = backend.stored();
        if !stored.is_empty() && first_activity.is_none() {
            first_activity = Some(vm.started.elapsed());
        }
        if stored.len() >= expected.len() || Instant::now() > deadline {
            break stored;
        }
        thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(
        normalised(&stored),
        normalised(&expected),
        "what the appliance streamed differs from a replay of {CAPTURE}"
    );
    let console = vm.console();
    assert!(
        !console.contains(&backend.token),
        "the token reached the console"
    );
    println!(
        "vm test: capturing {:.1} s after qemu started, first activity at the backend after {:.1} s",
        capturing.as_secs_f64(),
        first_activity.unwrap_or_default().as_secs_f64()
    );
    drop(vm);

    // The same appliance, freshly booted, with a token the backend never issued, and SSH on.
    let wrong_dir = RunDir::create().expect("a scratch folder");
    let wrong_token = format!("dcw-not-a-token-{}", unique_name("x"));
    let seed = seed_with(wrong_dir.path(), &backend, &wrong_token, true);
    let mut vm = Vm::boot(&namespace, &image, &seed, &tap, wrong_dir.path());
    vm.wait_for(&["refused this sensor's token"]);
    vm.wait_for(&["dcwatch-appliance: listening on the network: tcp", ":22"]);
    assert!(
        !vm.console().contains(&wrong_token),
        "the token reached the console"
    );
}
