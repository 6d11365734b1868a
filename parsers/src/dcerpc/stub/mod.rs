//! The operation stubs dcwatch reads: NDR (C706 chapter 14) and NDR64 ([MS-RPCE] 2.2.5) in the
//! PDU's byte order; the [in] parameters of requests that name a service, an account, a
//! secret, a file, a listener, a key or a class, and the [out] parameters of answers that
//! expose sessions, shares, users, RIDs and endpoints. One module per interface.
//!
//! Each decoder is fail-soft: `None` when the stub is not what the operation's IDL says (cut
//! short, sealed, another dialect), never an error for the PDU. Alignment is relative to the
//! start of the stub, as NDR's is.
//!

mod dcom;
mod drsuapi;
mod efsrpc;
mod epm;
mod lsarpc;
mod ndr;
mod netdfs;
mod netlogon;
mod samr;
mod spoolss;
mod srvsvc;
mod svcctl;
mod tsch;
mod winreg;

pub use self::{
    dcom::{WmiMethod, class_name},
    drsuapi::{ExtendedOperation, GetNcChanges, ObjectClass, ReplicaAdd},
    epm::{TowerEndpoint, TowerProtocol, ept_map_response},
    ndr::Handle,
    netlogon::{
        NetlogonAuth, PasswordSet, SecureChannelType, netr_server_authenticate,
        netr_server_req_challenge,
    },
    samr::{samr_lookup_names, samr_open_user},
    spoolss::PrinterDriver,
    srvsvc::Session,
    svcctl::{CreateService, ServiceConfig, create_service_w},
    tsch::Task,
};
/// For the endpoint mapper's lookup (dcerpc::epm), which reads towers as ept_map answers do.
pub(in crate::dcerpc) use self::{
    epm::tower,
    ndr::{CONTEXT_HANDLE_LEN, Ndr},
};
use super::Uuid;

/// UTF-16 units of one string that are decoded. Service names are limited to 256 characters
/// and a binary path to 32767 (MAX_PATH long form); 4096 keeps the commands attackers put in a
/// binary path while bounding the work for a hostile count.
pub const MAX_STRING_UNITS: usize = 4096;

/// Names read from one SamrLookupNamesInDomain: [MS-SAMR] 3.1.5.11.2 rejects more than 1000.
pub const MAX_LOOKUP_NAMES: usize = 1000;

/// Entries read from one enumeration answer (sessions, shares, users): a file server's sessions
/// run to the thousands; the stub's own bound (the dissector keeps 64 KiB) comes first.
pub const MAX_ENUM_ENTRIES: usize = 8192;

/// UTF-16 units of a task's XML: a task definition is a few KiB; 32 Ki units holds any the
/// dissector keeps whole.
pub const MAX_XML_UNITS: usize = 32 * 1024;

/// Towers read from one ept_map answer: the caller's max_towers, 4 for Windows clients and
/// impacket; 64 bounds the loop for a hostile count.
pub const MAX_TOWERS: usize = 64;

/// Floors read from one tower: a TCP/IP tower has 5 (C706 appendix L); 16 leaves room for
/// others while bounding the loop.
pub const MAX_FLOORS: usize = 16;

/// The transfer syntax a stub is in: the one the bind_ack accepted for its context.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// NDR 2.0 (C706 chapter 14): counts and pointers are 4 bytes.
    #[default]
    Ndr,
    /// NDR64 ([MS-RPCE] 2.2.5): counts and pointers are 8 bytes, aligned to 8; enums 4 bytes.
    Ndr64,
}

/// The order of a stub's integers and UTF-16 units: the integer representation of the PDU's
/// data representation label (drep[0] high nibble, C706 12.6.3.1 / 14.2.5). Windows sends
/// little-endian, but its RPC runtime accepts big-endian NDR too, so a client may choose it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    #[default]
    Little,
    Big,
}

impl ByteOrder {
    /// The byte order a PDU's header declares.
    pub fn of(header: &super::Header) -> Self {
        if header.little_endian() {
            Self::Little
        } else {
            Self::Big
        }
    }

    pub(crate) fn u16(self, bytes: [u8; 2]) -> u16 {
        match self {
            Self::Little => u16::from_le_bytes(bytes),
            Self::Big => u16::from_be_bytes(bytes),
        }
    }

    pub(crate) fn u32(self, bytes: [u8; 4]) -> u32 {
        match self {
            Self::Little => u32::from_le_bytes(bytes),
            Self::Big => u32::from_be_bytes(bytes),
        }
    }

    pub(crate) fn u64(self, bytes: [u8; 8]) -> u64 {
        match self {
            Self::Little => u64::from_le_bytes(bytes),
            Self::Big => u64::from_be_bytes(bytes),
        }
    }
}

/// What a decoded stub says, by operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    CreateService(CreateService),
    /// SamrLookupNamesInDomain's names asked; SamrLookupIdsInDomain's names answered.
    LookupNames(Vec<String>),
    /// The RID SamrOpenUser, SamrOpenGroup or SamrOpenAlias opens.
    OpenUser {
        rid: u32,
    },
    Netlogon(NetlogonAuth),
    Endpoints(Vec<TowerEndpoint>),
    SecretName(String),
    DomainSid(String),
    /// SamrLookupNamesInDomain's RIDs answered; SamrLookupIdsInDomain's RIDs asked.
    Rids(Vec<u32>),
    MemberCount(u32),
    InfoLevel(u32),
    Sessions(Vec<Session>),
    Shares(Vec<String>),
    Users(Vec<String>),
    GetNcChanges(GetNcChanges),
    ReplicaAdd(ReplicaAdd),
    /// DsAddEntry: the classes of the entries added.
    ObjectClasses(Vec<ObjectClass>),
    FileName(String),
    ServerName(String),
    LocalMachine(String),
    PrinterDriver(PrinterDriver),
    Command(String),
    Task(Task),
    TaskPath(String),
    /// ROpenServiceW: the service whose handle the answer gives.
    OpenService(String),
    /// A request acting on a service handle.
    ServiceHandle(Handle),
    ServiceConfig(ServiceConfig),
    /// A registry hive opened (HKLM...), whose handle the answer gives.
    Hive(&'static str),
    /// A subkey opened or created under a handle, whose own handle the answer gives.
    SubKey {
        parent: Handle,
        name: String,
    },
    /// A key saved to a file, by its handle.
    SaveKey(Handle),
    PasswordSet(PasswordSet),
    Activation(Uuid),
    WmiMethod(WmiMethod),
    /// The context handle an answer hands out (an open service or registry key).
    Handle(Handle),
}

/// Whether dcwatch reads the request stub of this operation (a caller need not keep the
/// stubs of the others).
pub fn reads_request(interface: Uuid, opnum: u16) -> bool {
    use super::interfaces::{
        ACTIVATION, ATSVC, DRSUAPI, EFSRPC, EFSRPC_LSARPC, LSARPC, NETDFS, NETLOGON,
        REMOTE_WINSPOOL, SAMR, SPOOLSS, SRVSVC, SVCCTL, SYSTEM_ACTIVATOR, TASK_SCHEDULER,
        WBEM_SERVICES, WINREG, WKSSVC,
    };
    match interface {
        SVCCTL => matches!(opnum, 1 | 2 | 11 | 12 | 16 | 19 | 45),
        SAMR => matches!(opnum, 7 | 17 | 18 | 19 | 27 | 34),
        NETLOGON => matches!(opnum, 4 | 6 | 15 | 26 | 30),
        LSARPC => matches!(opnum, 16 | 28 | 42 | 43),
        SRVSVC => matches!(opnum, 12 | 15),
        WKSSVC => opnum == 2,
        DRSUAPI => matches!(opnum, 3 | 5 | 17),
        EFSRPC | EFSRPC_LSARPC => efsrpc::file_name_opnum(opnum),
        NETDFS => matches!(opnum, 12 | 13 | 15),
        SPOOLSS => matches!(opnum, 9 | 62 | 65 | 89),
        REMOTE_WINSPOOL => opnum == 39,
        ATSVC => opnum == 0,
        TASK_SCHEDULER => matches!(opnum, 1 | 12 | 13),
        WINREG => winreg::hive(opnum).is_some() || matches!(opnum, 6 | 15 | 20 | 31),
        SYSTEM_ACTIVATOR => matches!(opnum, 3 | 4),
        ACTIVATION => opnum == 0,
        WBEM_SERVICES => matches!(opnum, 24 | 25),
        _ => false,
    }
}

/// Whether dcwatch reads the response stub of this operation.
pub fn reads_response(interface: Uuid, opnum: u16) -> bool {
    use super::interfaces::{EPM, SAMR, SRVSVC, SVCCTL, WINREG, WKSSVC};
    match interface {
        EPM => opnum == 3,
        SAMR => matches!(opnum, 17 | 18 | 25 | 33),
        SRVSVC => matches!(opnum, 12 | 15),
        WKSSVC => opnum == 2,
        SVCCTL => matches!(opnum, 12 | 16 | 45),
        WINREG => winreg::hive(opnum).is_some() || matches!(opnum, 6 | 15),
        _ => false,
    }
}

/// Decodes the request stub of an operation dcwatch reads (see [`reads_request`]).
pub fn request(
    interface: Uuid,
    opnum: u16,
    stub: &[u8],
    encoding: Encoding,
    order: ByteOrder,
) -> Option<Decoded> {
    use super::interfaces::{
        ACTIVATION, ATSVC, DRSUAPI, EFSRPC, EFSRPC_LSARPC, LSARPC, NETDFS, NETLOGON,
        REMOTE_WINSPOOL, SAMR, SPOOLSS, SRVSVC, SVCCTL, SYSTEM_ACTIVATOR, TASK_SCHEDULER,
        WBEM_SERVICES, WINREG, WKSSVC,
    };
    let (e, o) = (encoding, order);
    match (interface, opnum) {
        (SVCCTL, 12 | 45) => create_service_w(stub, e, o).map(Decoded::CreateService),
        (SVCCTL, 16) => svcctl::open_service_w(stub, e, o).map(Decoded::OpenService),
        (SVCCTL, 11) => svcctl::change_service_config_w(stub, e, o).map(Decoded::ServiceConfig),
        (SVCCTL, 1 | 2 | 19) => svcctl::service_handle(stub, e, o).map(Decoded::ServiceHandle),
        (SAMR, 7) => samr::samr_open_domain(stub, e, o).map(Decoded::DomainSid),
        (SAMR, 17) => samr_lookup_names(stub, e, o).map(Decoded::LookupNames),
        (SAMR, 18) => samr::samr_lookup_ids(stub, e, o).map(Decoded::Rids),
        (SAMR, 19 | 27 | 34) => samr_open_user(stub, e, o).map(|rid| Decoded::OpenUser { rid }),
        (NETLOGON, 4) => netr_server_req_challenge(stub, e, o).map(Decoded::Netlogon),
        (NETLOGON, 15 | 26) => netr_server_authenticate(stub, e, o).map(Decoded::Netlogon),
        (NETLOGON, 6 | 30) => {
            netlogon::netr_server_password_set(stub, e, o, opnum == 30).map(Decoded::PasswordSet)
        }
        (LSARPC, 16 | 28 | 42 | 43) => lsarpc::secret_name(stub, e, o).map(Decoded::SecretName),
        (SRVSVC, 12) => srvsvc::session_enum_level(stub, e, o).map(Decoded::InfoLevel),
        (SRVSVC, 15) | (WKSSVC, 2) => srvsvc::enum_level(stub, e, o).map(Decoded::InfoLevel),
        (DRSUAPI, 3) => drsuapi::get_nc_changes(stub, e, o).map(Decoded::GetNcChanges),
        (DRSUAPI, 5) => drsuapi::replica_add(stub, e, o).map(Decoded::ReplicaAdd),
        (DRSUAPI, 17) => drsuapi::add_entry(stub, e, o).map(Decoded::ObjectClasses),
        (EFSRPC | EFSRPC_LSARPC, _) => efsrpc::file_name(opnum, stub, e, o).map(Decoded::FileName),
        (NETDFS, 12 | 13 | 15) => netdfs::server_name(stub, e, o).map(Decoded::ServerName),
        (SPOOLSS, 62 | 65) => spoolss::local_machine(stub, e, o).map(Decoded::LocalMachine),
        (SPOOLSS, 9 | 89) | (REMOTE_WINSPOOL, 39) => {
            spoolss::add_printer_driver(stub, e, o, opnum != 9).map(Decoded::PrinterDriver)
        }
        (ATSVC, 0) => tsch::job_command(stub, e, o).map(Decoded::Command),
        (TASK_SCHEDULER, 1) => tsch::register_task(stub, e, o).map(Decoded::Task),
        (TASK_SCHEDULER, 12 | 13) => tsch::task_path(stub, e, o).map(Decoded::TaskPath),
        (WINREG, 6 | 15) => {
            winreg::sub_key(stub, e, o).map(|(parent, name)| Decoded::SubKey { parent, name })
        }
        (WINREG, 20 | 31) => winreg::saved_key(stub, e, o).map(Decoded::SaveKey),
        (WINREG, _) => winreg::hive(opnum).map(Decoded::Hive),
        (SYSTEM_ACTIVATOR, 3 | 4) => {
            dcom::activation_class(opnum, stub, e, o).map(Decoded::Activation)
        }
        (ACTIVATION, 0) => dcom::remote_activation_class(stub, e, o).map(Decoded::Activation),
        (WBEM_SERVICES, 24 | 25) => dcom::exec_method(stub, e, o).map(Decoded::WmiMethod),
        _ => None,
    }
}

/// Decodes the response stub of an operation dcwatch reads (see [`reads_response`]).
pub fn response(
    interface: Uuid,
    opnum: u16,
    stub: &[u8],
    encoding: Encoding,
    order: ByteOrder,
) -> Option<Decoded> {
    use super::interfaces::{EPM, SAMR, SRVSVC, SVCCTL, WINREG, WKSSVC};
    let (e, o) = (encoding, order);
    match (interface, opnum) {
        (EPM, 3) => ept_map_response(stub, e, o).map(Decoded::Endpoints),
        (SAMR, 17) => samr::samr_lookup_names_response(stub, e, o).map(Decoded::Rids),
        (SAMR, 18) => samr::samr_lookup_ids_response(stub, e, o).map(Decoded::LookupNames),
        (SAMR, 25) => samr::samr_group_member_count(stub, e, o).map(Decoded::MemberCount),
        (SAMR, 33) => samr::samr_alias_member_count(stub, e, o).map(Decoded::MemberCount),
        (SRVSVC, 12) => srvsvc::sessions(stub, e, o).map(Decoded::Sessions),
        (SRVSVC, 15) => srvsvc::shares(stub, e, o).map(Decoded::Shares),
        (WKSSVC, 2) => srvsvc::users(stub, e, o).map(Decoded::Users),
        (SVCCTL, 16) | (WINREG, 0..=4 | 6 | 15 | 27) => opened_handle(stub, o),
        (SVCCTL, 12 | 45) => svcctl::created_service_handle(stub, e, o).map(Decoded::Handle),
        _ => None,
    }
}

/// The handle an open call answers with: its first [out] parameter, when the call succeeded.
fn opened_handle(stub: &[u8], order: ByteOrder) -> Option<Decoded> {
    if return_value(stub, order)? != 0 {
        return None;
    }
    let mut ndr = Ndr::new(stub, Encoding::Ndr, order);
    ndr.handle().map(Decoded::Handle)
}

/// The last 4 bytes of a response stub, where an operation's return value (an NTSTATUS, a
/// Win32 error, an error_status_t) sits in NDR and NDR64 alike, in the PDU's byte order.
pub fn return_value(stub: &[u8], order: ByteOrder) -> Option<u32> {
    let at = stub.len().checked_sub(4)?;
    stub.get(at..)?
        .try_into()
        .ok()
        .map(|bytes| order.u32(bytes))
}

#[cfg(test)]
mod tests;
