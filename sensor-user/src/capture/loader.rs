use std::{ffi::CString, net::IpAddr};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray, RingBuf},
    programs::{TestRun, TestRunOptions, Xdp, XdpMode, xdp::XdpLinkId},
};
use dcwatch_pipeline::decap::DecapMode;
use log::warn;
use sensor_common::{Counter, capture_mode, decap_mode, names, port_flags};

use super::{
    CaptureError,
    dynamic_ports::PortChange,
    error::{chain, is_permission_error, os_error},
    kernel,
    reader::FrameRing,
};
use crate::config::{Attach, CaptureConfig, Mode};

const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The capture program, loaded and configured, with the interfaces it is attached to. Dropping
/// it detaches the program everywhere.
#[derive(Debug)]
pub struct Capture {
    ebpf: Ebpf,
    mode: Mode,
    attached: Vec<AttachedInterface>,
}

#[derive(Debug)]
pub struct AttachedInterface {
    pub name: String,
    pub ifindex: u32,
    /// "native" or "generic".
    pub mode: &'static str,
    link: XdpLinkId,
}

/// The program's counters, summed over CPUs, indexed by `Counter`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelCounters([u64; Counter::COUNT as usize]);

impl KernelCounters {
    pub fn get(&self, counter: Counter) -> u64 {
        self.0[counter as usize]
    }

    pub fn iter(&self) -> impl Iterator<Item = (Counter, u64)> + '_ {
        Counter::ALL
            .iter()
            .map(|&counter| (counter, self.get(counter)))
    }
}

impl Capture {
    /// Checks the kernel, then loads the program with `config`'s mode, snap length, ring size,
    /// ports and addresses. Nothing is attached yet.
    pub fn load(config: &CaptureConfig) -> Result<Self, CaptureError> {
        kernel::check_kernel(KERNEL_BTF.as_ref(), &kernel::release())?;
        let mode = match config.mode {
            Mode::Mirror => capture_mode::MIRROR,
            Mode::Host => capture_mode::HOST,
        };
        let filter_addresses = u32::from(!config.dc_addresses.is_empty());
        let ring_bytes = config.ring_buffer_mib << 20;
        let decap = match config.decap {
            DecapMode::Auto => decap_mode::AUTO,
            DecapMode::Off => decap_mode::OFF,
        };
        let vxlan_port = u32::from(config.vxlan_port);
        let mut ebpf = EbpfLoader::new()
            .override_global(names::CAPTURE_MODE, &mode, true)
            .override_global(names::FILTER_DC_ADDRESSES, &filter_addresses, true)
            .override_global(names::SNAP_LEN, &config.snap_len, true)
            .override_global(names::DECAP, &decap, true)
            .override_global(names::VXLAN_PORT, &vxlan_port, true)
            .map_max_entries(names::FRAMES, ring_bytes)
            .load(super::objects::CAPTURE)
            .map_err(|error| load_error("create BPF maps", &error))?;
        let program = xdp_program(&mut ebpf)?;
        program
            .load()
            .map_err(|error| load_error("load BPF programs", &error))?;
        let mut capture = Self {
            ebpf,
            mode: config.mode,
            attached: Vec::new(),
        };
        capture.fill_ports(&config.ports.tcp, &config.ports.udp)?;
        capture.fill_addresses(&config.dc_addresses)?;
        Ok(capture)
    }

    fn fill_ports(&mut self, tcp: &[u16], udp: &[u16]) -> Result<(), CaptureError> {
        let mut flags = vec![0_u8; 1 << 16];
        for &port in tcp {
            flags[usize::from(port)] |= port_flags::TCP;
        }
        for &port in udp {
            flags[usize::from(port)] |= port_flags::UDP;
        }
        let mut ports: Array<_, u8> = self.map(names::PORTS)?;
        for (port, &value) in (0_u32..).zip(&flags) {
            if value != 0 {
                ports
                    .set(port, value, 0)
                    .map_err(|error| map_error(names::PORTS, &error))?;
            }
        }
        Ok(())
    }

    /// Replaces the configured ports (`old` by `new`, as TCP and UDP lists) in the XDP port
    /// map; a TCP port `learned` says is watched for an endpoint mapper stays watched.
    pub fn replace_ports(
        &mut self,
        old: (&[u16], &[u16]),
        new: (&[u16], &[u16]),
        learned: impl Fn(u16) -> bool,
    ) -> Result<(), CaptureError> {
        let mut ports: Array<_, u8> = self.map(names::PORTS)?;
        let touched = old.0.iter().chain(old.1).chain(new.0).chain(new.1);
        for &port in touched {
            let mut flags = 0;
            if new.0.contains(&port) || learned(port) {
                flags |= port_flags::TCP;
            }
            if new.1.contains(&port) {
                flags |= port_flags::UDP;
            }
            ports
                .set(u32::from(port), flags, 0)
                .map_err(|error| map_error(names::PORTS, &error))?;
        }
        Ok(())
    }

    /// Replaces the DC addresses `old` by `new` in the XDP address sets (both non-empty: the
    /// program decides at load whether it filters by address).
    pub fn replace_addresses(
        &mut self,
        old: &[IpAddr],
        new: &[IpAddr],
    ) -> Result<(), CaptureError> {
        for address in old.iter().filter(|address| !new.contains(address)) {
            let removed = match address {
                IpAddr::V4(v4) => {
                    let mut set: HashMap<_, [u8; 4], u8> = self.map(names::DC_V4)?;
                    set.remove(&v4.octets())
                        .map_err(|error| map_error(names::DC_V4, &error))
                }
                IpAddr::V6(v6) => {
                    let mut set: HashMap<_, [u8; 16], u8> = self.map(names::DC_V6)?;
                    set.remove(&v6.octets())
                        .map_err(|error| map_error(names::DC_V6, &error))
                }
            };
            removed?;
        }
        self.fill_addresses(new)
    }

    /// Starts or stops watching a TCP port learned at run time (an endpoint mapper's answer),
    /// leaving the port's UDP flag as it was.
    pub fn apply_port_change(&mut self, change: PortChange) -> Result<(), CaptureError> {
        let mut ports: Array<_, u8> = self.map(names::PORTS)?;
        let (port, watch) = match change {
            PortChange::Watch(port) => (port, true),
            PortChange::Unwatch(port) => (port, false),
        };
        let index = u32::from(port);
        let flags = ports
            .get(&index, 0)
            .map_err(|error| map_error(names::PORTS, &error))?;
        let flags = if watch {
            flags | port_flags::TCP
        } else {
            flags & !port_flags::TCP
        };
        ports
            .set(index, flags, 0)
            .map_err(|error| map_error(names::PORTS, &error))
    }

    /// Sets how much of a `shed_class` the program keeps (`shed_keep`, or N for one in N).
    pub fn set_shed(&mut self, class: u32, keep_one_in: u32) -> Result<(), CaptureError> {
        let mut shed: Array<_, u32> = self.map(names::SHED)?;
        shed.set(class, keep_one_in, 0)
            .map_err(|error| map_error(names::SHED, &error))
    }

    fn fill_addresses(&mut self, addresses: &[IpAddr]) -> Result<(), CaptureError> {
        for address in addresses {
            match address {
                IpAddr::V4(v4) => {
                    let mut set: HashMap<_, [u8; 4], u8> = self.map(names::DC_V4)?;
                    set.insert(v4.octets(), 1, 0)
                        .map_err(|error| map_error(names::DC_V4, &error))?;
                }
                IpAddr::V6(v6) => {
                    let mut set: HashMap<_, [u8; 16], u8> = self.map(names::DC_V6)?;
                    set.insert(v6.octets(), 1, 0)
                        .map_err(|error| map_error(names::DC_V6, &error))?;
                }
            }
        }
        Ok(())
    }

    fn map<'a, T>(&'a mut self, name: &'static str) -> Result<T, CaptureError>
    where
        T: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
    {
        let map = self.ebpf.map_mut(name).ok_or(CaptureError::Map {
            map: name,
            reason: "missing from the XDP object".to_owned(),
        })?;
        T::try_from(map).map_err(|error| map_error(name, &error))
    }

    /// Attaches the program to `interface`. `Attach::Auto` tries native mode, then generic mode
    /// with a warning. In mirror mode, an interface with a routable address of the host's is
    /// refused: dropping its frames would cut the host off.
    pub fn attach(
        &mut self,
        interface: &str,
        attach: Attach,
    ) -> Result<&AttachedInterface, CaptureError> {
        let ifindex = interface_index(interface)?;
        if self.mode == Mode::Mirror
            && let Some(address) = host_address(interface)
        {
            return Err(CaptureError::MirrorOnAddressedInterface {
                interface: interface.to_owned(),
                address,
            });
        }
        let program = xdp_program(&mut self.ebpf)?;
        let attempt = |program: &mut Xdp, mode: XdpMode| {
            program
                .attach_to_if_index(ifindex, mode)
                .map_err(|error| {
                    let code = os_error(&error);
                    if is_permission_error(code) {
                        CaptureError::NotPermitted {
                            action: "attach XDP programs",
                        }
                    } else {
                        CaptureError::Attach {
                            interface: interface.to_owned(),
                            mode: mode_name(mode),
                            reason: chain(&error),
                        }
                    }
                })
                .map(|link| (link, mode_name(mode)))
        };
        let (link, mode) = match attach {
            Attach::Native => attempt(program, XdpMode::Driver)?,
            Attach::Generic => attempt(program, XdpMode::Skb)?,
            Attach::Auto => match attempt(program, XdpMode::Driver) {
                Ok(attached) => attached,
                Err(CaptureError::Attach { reason, .. }) => {
                    warn!(
                        "{interface}: native XDP not available ({reason}); using generic mode, \
                         which costs more per packet"
                    );
                    attempt(program, XdpMode::Skb)?
                }
                Err(other) => return Err(other),
            },
        };
        self.attached.push(AttachedInterface {
            name: interface.to_owned(),
            ifindex,
            mode,
            link,
        });
        Ok(self.attached.last().expect("just pushed"))
    }

    pub fn attached(&self) -> &[AttachedInterface] {
        &self.attached
    }

    /// Detaches the program from every interface; the maps stay readable.
    pub fn detach_all(&mut self) {
        let attached = std::mem::take(&mut self.attached);
        if let Ok(program) = xdp_program(&mut self.ebpf) {
            for interface in attached {
                if let Err(error) = program.detach(interface.link) {
                    warn!("{}: detaching XDP: {}", interface.name, chain(&error));
                }
            }
        }
    }

    pub fn counters(&self) -> Result<KernelCounters, CaptureError> {
        let map = self.ebpf.map(names::COUNTERS).ok_or(CaptureError::Map {
            map: names::COUNTERS,
            reason: "missing from the XDP object".to_owned(),
        })?;
        let counters: PerCpuArray<_, u64> =
            PerCpuArray::try_from(map).map_err(|error| map_error(names::COUNTERS, &error))?;
        let mut totals = KernelCounters::default();
        for counter in Counter::ALL {
            let per_cpu = counters
                .get(&(counter as u32), 0)
                .map_err(|error| map_error(names::COUNTERS, &error))?;
            totals.0[counter as usize] = per_cpu.iter().sum();
        }
        Ok(totals)
    }

    /// Takes the ring buffer the program writes frames into; a second call fails.
    pub fn take_frames(&mut self) -> Result<FrameRing, CaptureError> {
        let map = self.ebpf.take_map(names::FRAMES).ok_or(CaptureError::Map {
            map: names::FRAMES,
            reason: "already taken".to_owned(),
        })?;
        let ring: RingBuf<MapData> =
            RingBuf::try_from(map).map_err(|error| map_error(names::FRAMES, &error))?;
        Ok(FrameRing::new(ring))
    }

    /// Runs the program on `frame` `repeat` times in the kernel without attaching it
    /// (`BPF_PROG_TEST_RUN`): for tests and benchmarks. Returns the verdict and the kernel's
    /// average time per run.
    pub fn test_run(
        &mut self,
        frame: &[u8],
        repeat: u32,
    ) -> Result<aya::programs::TestRunResult, CaptureError> {
        let program = xdp_program(&mut self.ebpf)?;
        let options = TestRunOptions {
            data_in: Some(frame),
            repeat,
            ..TestRunOptions::new()
        };
        program
            .test_run(options)
            .map_err(|error| CaptureError::ProgramRejected(chain(&error)))
    }
}

fn xdp_program(ebpf: &mut Ebpf) -> Result<&mut Xdp, CaptureError> {
    let program = ebpf
        .program_mut(names::PROGRAM)
        .ok_or_else(|| CaptureError::ProgramRejected("program missing from the object".into()))?;
    program
        .try_into()
        .map_err(|error: aya::programs::ProgramError| CaptureError::ProgramRejected(chain(&error)))
}

fn interface_index(interface: &str) -> Result<u32, CaptureError> {
    let not_found = || CaptureError::InterfaceNotFound(interface.to_owned());
    let name = CString::new(interface).map_err(|_| not_found())?;
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(not_found()),
        index => Ok(index),
    }
}

/// An address of the host's on `interface` that traffic is routed to: any IPv4 address, or an
/// IPv6 address that is not link-local (those appear on every interface that is up).
fn host_address(interface: &str) -> Option<IpAddr> {
    let mut addresses: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut addresses) } != 0 {
        return None;
    }
    let mut found = None;
    let mut current = addresses;
    while found.is_none() && !current.is_null() {
        // SAFETY: `current` is a node of the list getifaddrs returned, not yet freed.
        let entry = unsafe { &*current };
        current = entry.ifa_next;
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(entry.ifa_name) };
        if entry.ifa_addr.is_null() || name.to_bytes() != interface.as_bytes() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and its family says which sockaddr it is.
        found = unsafe { socket_address(entry.ifa_addr) }.filter(|address| match address {
            IpAddr::V4(_) => true,
            IpAddr::V6(v6) => !v6.is_unicast_link_local(),
        });
    }
    // SAFETY: the list came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(addresses) };
    found
}

/// # Safety
/// `address` must point to a valid sockaddr of the size its family implies.
unsafe fn socket_address(address: *const libc::sockaddr) -> Option<IpAddr> {
    // SAFETY: the caller guarantees a valid sockaddr; the family selects the layout read.
    unsafe {
        match i32::from((*address).sa_family) {
            libc::AF_INET => {
                let v4 = &*address.cast::<libc::sockaddr_in>();
                Some(IpAddr::from(u32::from_be(v4.sin_addr.s_addr).to_be_bytes()))
            }
            libc::AF_INET6 => {
                let v6 = &*address.cast::<libc::sockaddr_in6>();
                Some(IpAddr::from(v6.sin6_addr.s6_addr))
            }
            _ => None,
        }
    }
}

const fn mode_name(mode: XdpMode) -> &'static str {
    match mode {
        XdpMode::Skb => "generic",
        XdpMode::Driver => "native",
        XdpMode::Hardware => "offload",
        XdpMode::Default => "default",
    }
}

fn load_error(action: &'static str, error: &(dyn std::error::Error + 'static)) -> CaptureError {
    log::debug!("{action}: {}", chain(error));
    if is_permission_error(os_error(error)) {
        CaptureError::NotPermitted { action }
    } else {
        CaptureError::ProgramRejected(chain(error))
    }
}

fn map_error(map: &'static str, error: &(dyn std::error::Error + 'static)) -> CaptureError {
    CaptureError::Map {
        map,
        reason: chain(error),
    }
}
