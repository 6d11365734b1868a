//! What a decoded stub puts in its call's activity: the fields the detectors read, and the
//! handles an answer hands out.

use std::net::{IpAddr, SocketAddr};

use dcwatch_parsers::dcerpc::stub::{self, ByteOrder, Decoded, TowerProtocol};
use dcwatch_proto::v1::{DceRpcActivity, activity::Body, dce_rpc_activity::Session};

use super::{Call, handles::Handles};
use crate::{activity::Seen, dissect::endpoints::Announced, dissect::stream::Sink};

/// Decodes a whole request stub into its call's activity.
pub(super) fn decode_request(call: &mut Call, bytes: &[u8], handles: &Handles) {
    let (Some(interface), Some(encoding)) = (call.interface, call.encoding) else {
        return;
    };
    let Some(decoded) = stub::request(interface, call.opnum, bytes, encoding, call.order) else {
        return;
    };
    let Some(Body::Dcerpc(body)) = call.activity.body.as_mut() else {
        return;
    };
    call.opens = request_fields(body, decoded, handles);
}

/// Fills `body` from a request; what the answer's handle will stand for, if it hands one out.
fn request_fields(
    body: &mut DceRpcActivity,
    decoded: Decoded,
    handles: &Handles,
) -> Option<String> {
    let named = |handle: &stub::Handle| handles.name(handle).unwrap_or_default().to_owned();
    match decoded {
        Decoded::CreateService(service) => {
            body.service_name.clone_from(&service.service_name);
            body.display_name = service.display_name.unwrap_or_default();
            body.binary_path = service.binary_path;
            return Some(service.service_name);
        }
        Decoded::LookupNames(names) => body.names = names,
        Decoded::OpenUser { rid } => body.rid = rid,
        Decoded::Netlogon(netlogon) => {
            body.zero_credential = netlogon.zero_credential();
            body.computer_name = netlogon.computer_name;
            body.account_name = netlogon.account_name.unwrap_or_default();
            body.secure_channel_type = netlogon
                .secure_channel_type
                .map(channel_type)
                .unwrap_or_default();
        }
        Decoded::PasswordSet(set) => {
            body.zero_password = set.zero_password;
            body.computer_name = set.computer_name;
            body.account_name = set.account_name;
            body.secure_channel_type = channel_type(set.secure_channel_type);
        }
        Decoded::SecretName(name) => body.secret_name = name,
        Decoded::DomainSid(sid) => body.domain_sid = sid,
        Decoded::Rids(rids) => body.rids = rids,
        Decoded::InfoLevel(level) => body.info_level = level,
        Decoded::GetNcChanges(request) => {
            body.naming_context = request.naming_context;
            body.extended_operation = request.extended_operation.name().map_or_else(
                || match request.extended_operation.0 {
                    0 => String::new(),
                    other => other.to_string(),
                },
                str::to_owned,
            );
        }
        Decoded::ReplicaAdd(add) => {
            body.naming_context = add.naming_context;
            body.source_dsa = add.source_dsa;
        }
        Decoded::ObjectClasses(classes) => {
            body.object_classes = classes.iter().map(ToString::to_string).collect();
        }
        Decoded::FileName(name) => body.file_name = name,
        Decoded::ServerName(name) => body.server_name = name,
        Decoded::LocalMachine(name) => body.local_machine = name,
        Decoded::PrinterDriver(driver) => {
            body.driver_paths = driver.paths;
            body.flags = driver.flags;
        }
        Decoded::Command(command) => body.command = command,
        Decoded::Task(task) => {
            body.task_path = task.path;
            body.command = task.command;
            body.arguments = task.arguments;
        }
        Decoded::TaskPath(path) => body.task_path = path,
        Decoded::OpenService(name) => {
            body.service_name.clone_from(&name);
            return Some(name);
        }
        Decoded::ServiceHandle(handle) => body.service_name = named(&handle),
        Decoded::ServiceConfig(config) => {
            body.service_name = named(&config.handle);
            body.binary_path = config.binary_path.unwrap_or_default();
            body.display_name = config.display_name.unwrap_or_default();
        }
        Decoded::Hive(hive) => {
            body.key_path = hive.to_owned();
            return Some(body.key_path.clone());
        }
        Decoded::SubKey { parent, name } => {
            body.key_path = match handles.name(&parent) {
                Some(parent) if !name.is_empty() => format!("{parent}\\{name}"),
                Some(parent) => parent.to_owned(),
                None => name,
            };
            return Some(body.key_path.clone());
        }
        Decoded::SaveKey(handle) => body.key_path = named(&handle),
        Decoded::Activation(clsid) => {
            body.clsid = clsid.to_string();
            body.clsid_name = stub::class_name(clsid).unwrap_or_default().to_owned();
        }
        Decoded::WmiMethod(method) => {
            body.wmi_class = method.class;
            body.wmi_method = method.method;
        }
        Decoded::Endpoints(_)
        | Decoded::MemberCount(_)
        | Decoded::Sessions(_)
        | Decoded::Shares(_)
        | Decoded::Users(_)
        | Decoded::Handle(_) => {}
    }
    None
}

fn channel_type(kind: stub::SecureChannelType) -> String {
    kind.name()
        .map_or_else(|| kind.0.to_string(), str::to_owned)
}

/// Decodes a whole response stub into its call's activity: the endpoints an endpoint mapper
/// announced are also handed over as typed values, and a handle the answer hands out is
/// remembered by what its request opened.
pub(super) fn decode_response(
    call: &mut Call,
    bytes: &[u8],
    order: ByteOrder,
    seen: &Seen,
    sink: &mut Sink<'_>,
    handles: &mut Handles,
) {
    let (Some(interface), Some(encoding)) = (call.interface, call.encoding) else {
        return;
    };
    let Some(decoded) = stub::response(interface, call.opnum, bytes, encoding, order) else {
        return;
    };
    let Some(Body::Dcerpc(body)) = call.activity.body.as_mut() else {
        return;
    };
    match decoded {
        Decoded::Endpoints(endpoints) => {
            for endpoint in endpoints {
                match (endpoint.protocol, endpoint.port, endpoint.name) {
                    (TowerProtocol::TCP, Some(port), _) => {
                        // A tower may leave the host to the caller: the mapper's own address.
                        let ip = endpoint
                            .ip
                            .filter(|ip| !ip.is_unspecified())
                            .map_or(seen.src.ip(), IpAddr::V4);
                        let endpoint = SocketAddr::new(ip, port);
                        body.endpoints.push(endpoint.to_string());
                        sink.announced.push(Announced {
                            mapper: seen.src.ip(),
                            endpoint,
                        });
                    }
                    (TowerProtocol::NAMED_PIPE, _, Some(pipe)) => body.pipes.push(pipe),
                    _ => {}
                }
            }
        }
        Decoded::Rids(rids) => body.rids = rids,
        Decoded::LookupNames(names) => body.names = names,
        Decoded::MemberCount(count) => body.member_count = count,
        Decoded::Sessions(sessions) => {
            body.sessions = sessions
                .into_iter()
                .map(|session| Session {
                    client: session.client,
                    user: session.user,
                })
                .collect();
        }
        Decoded::Shares(shares) => body.shares = shares,
        Decoded::Users(users) => body.users = users,
        Decoded::Handle(handle) => {
            if let Some(name) = call.opens.take()
                && !handles.remember(handle, &name)
            {
                sink.counters.rpc_handles_forgotten += 1;
            }
        }
        _ => {}
    }
}
