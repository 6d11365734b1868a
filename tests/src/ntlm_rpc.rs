//! A host's endpoint mapper (TCP 135) as far as an NTLM-over-RPC name probe goes: to a BIND
//! (C706 12.6.4.3) whose auth verifier ([MS-RPCE] 2.2.2.11) holds an NTLMSSP NEGOTIATE it answers
//! with a BIND_ACK (C706 12.6.4.4) whose verifier is an NTLMSSP CHALLENGE ([MS-NLMP] 2.2.1.2)
//! naming the host in its target info (2.2.2.1), as Windows' RPCSS does. Written from the
//! specifications, not from the sensor's code, so a test can check the prober against it.

use std::{
    io::{self, Read, Write},
    net::{TcpListener, TcpStream},
    thread,
    time::{Duration, Instant},
};

/// The names the host gives in its CHALLENGE.
#[derive(Clone, Copy, Debug)]
pub struct HostNames {
    pub nb_computer: &'static str,
    pub nb_domain: &'static str,
    pub dns_computer: &'static str,
    pub dns_domain: &'static str,
}

/// Serves the connections `listener` accepts, one at a time, until it has answered `binds` binds
/// or `until` comes; returns how many it answered.
pub fn serve(
    listener: &TcpListener,
    names: HostNames,
    binds: usize,
    until: Instant,
) -> io::Result<usize> {
    listener.set_nonblocking(true)?;
    let mut answered = 0;
    while answered < binds && Instant::now() < until {
        match listener.accept() {
            Ok((mut stream, _)) => {
                stream.set_nonblocking(false)?;
                stream.set_read_timeout(Some(Duration::from_secs(5)))?;
                if answer(&mut stream, names).is_ok() {
                    answered += 1;
                }
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(10));
            }
            Err(error) => return Err(error),
        }
    }
    Ok(answered)
}

fn u16_at(bytes: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]))
}

/// Reads one BIND and answers it; anything else closes the connection.
fn answer(stream: &mut TcpStream, names: HostNames) -> io::Result<()> {
    let mut header = [0u8; 16];
    stream.read_exact(&mut header)?;
    // rpc_vers 5, PTYPE bind (11), little-endian integers.
    if header[0] != 5 || header[2] != 11 || header[4] & 0xf0 != 0x10 {
        return Err(io::ErrorKind::InvalidData.into());
    }
    let (frag_length, auth_length) = (u16_at(&header, 8), u16_at(&header, 10));
    if frag_length < 16 + 8 + auth_length {
        return Err(io::ErrorKind::InvalidData.into());
    }
    let mut pdu = header.to_vec();
    pdu.resize(frag_length, 0);
    stream.read_exact(&mut pdu[16..])?;
    // The sec_trailer sits right before auth_value, at the end of the PDU.
    let trailer = frag_length - auth_length - 8;
    let (auth_type, auth_level, context_id) = (
        pdu[trailer],
        pdu[trailer + 1],
        &pdu[trailer + 4..trailer + 8],
    );
    let token = &pdu[trailer + 8..];
    // auth_type 10 (NTLMSSP) with a NEGOTIATE_MESSAGE (MessageType 1).
    if auth_type != 10 || !token.starts_with(b"NTLMSSP\0\x01\0\0\0") {
        return Err(io::ErrorKind::InvalidData.into());
    }
    let challenge = challenge(names);
    let mut body = Vec::new();
    // max_xmit_frag, max_recv_frag, assoc_group_id.
    body.extend_from_slice(&4280_u16.to_le_bytes());
    body.extend_from_slice(&4280_u16.to_le_bytes());
    body.extend_from_slice(&0x0001_2345_u32.to_le_bytes());
    // sec_addr "135" with its NUL, then padding to 4 octets from the PDU's start (16 + 8 + 6).
    body.extend_from_slice(&4_u16.to_le_bytes());
    body.extend_from_slice(b"135\0");
    body.extend_from_slice(&[0, 0]);
    // One result: acceptance, reason 0, NDR 2.0 (8a885d04-1ceb-11c9-9fe8-08002b104860).
    body.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
    body.extend_from_slice(&[
        0x04, 0x5d, 0x88, 0x8a, 0xeb, 0x1c, 0xc9, 0x11, 0x9f, 0xe8, 0x08, 0x00, 0x2b, 0x10, 0x48,
        0x60,
    ]);
    body.extend_from_slice(&2_u32.to_le_bytes());
    let frag = 16 + body.len() + 8 + challenge.len();
    let mut ack = vec![5, 0, 12, 3, 0x10, 0, 0, 0];
    ack.extend_from_slice(&u16::try_from(frag).expect("short").to_le_bytes());
    ack.extend_from_slice(&u16::try_from(challenge.len()).expect("short").to_le_bytes());
    ack.extend_from_slice(&pdu[12..16]);
    ack.extend_from_slice(&body);
    ack.extend_from_slice(&[auth_type, auth_level, 0, 0]);
    ack.extend_from_slice(context_id);
    ack.extend_from_slice(&challenge);
    stream.write_all(&ack)?;
    // The prober closes after the CHALLENGE: nothing more is read.
    Ok(())
}

fn utf16(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// A CHALLENGE_MESSAGE: fixed part with Version (56 octets), then TargetName (the NetBIOS
/// domain), then TargetInfo: NbDomainName, NbComputerName, DnsDomainName, DnsComputerName,
/// Timestamp, EOL.
fn challenge(names: HostNames) -> Vec<u8> {
    let target_name = utf16(names.nb_domain);
    let mut info = Vec::new();
    for (id, value) in [
        (2_u16, utf16(names.nb_domain)),
        (1, utf16(names.nb_computer)),
        (4, utf16(names.dns_domain)),
        (3, utf16(names.dns_computer)),
        (7, 0x01dd_854d_92cc_cc22_u64.to_le_bytes().to_vec()),
        (0, Vec::new()),
    ] {
        info.extend_from_slice(&id.to_le_bytes());
        info.extend_from_slice(&u16::try_from(value.len()).expect("short").to_le_bytes());
        info.extend_from_slice(&value);
    }
    let field = |len: usize, offset: usize| {
        let len = u16::try_from(len).expect("short").to_le_bytes();
        let mut field = [len[0], len[1], len[0], len[1], 0, 0, 0, 0];
        field[4..].copy_from_slice(&u32::try_from(offset).expect("short").to_le_bytes());
        field
    };
    // UNICODE, REQUEST_TARGET, NTLM, ALWAYS_SIGN, TARGET_TYPE_DOMAIN, EXTENDED_SESSIONSECURITY,
    // TARGET_INFO, VERSION.
    let flags: u32 = 0x0000_0001
        | 0x0000_0004
        | 0x0000_0200
        | 0x0000_8000
        | 0x0001_0000
        | 0x0008_0000
        | 0x0080_0000
        | 0x0200_0000;
    let mut message = b"NTLMSSP\0".to_vec();
    message.extend_from_slice(&2_u32.to_le_bytes());
    message.extend_from_slice(&field(target_name.len(), 56));
    message.extend_from_slice(&flags.to_le_bytes());
    message.extend_from_slice(&[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
    message.extend_from_slice(&[0; 8]);
    message.extend_from_slice(&field(info.len(), 56 + target_name.len()));
    // Version 10.0.17763, NTLMSSP_REVISION_W2K3.
    message.extend_from_slice(&[10, 0, 0x03, 0x45, 0, 0, 0, 15]);
    message.extend_from_slice(&target_name);
    message.extend_from_slice(&info);
    message
}
