//! The stub decoders on stubs from real captures (named with their frame, and what tshark or
//! the specification reads there) and stubs impacket encodes; both byte orders, NDR and NDR64,
//! every prefix, and malformed variants.

use super::*;
use crate::dcerpc::interfaces::{
    ACTIVATION, ATSVC, DRSUAPI, EFSRPC, EFSRPC_LSARPC, LSARPC, NETDFS, NETLOGON, REMOTE_WINSPOOL,
    SAMR, SPOOLSS, SRVSVC, SVCCTL, SYSTEM_ACTIVATOR, TASK_SCHEDULER, WBEM_SERVICES, WINREG, WKSSVC,
};
use dcwatch_tests::fixture::hex;

const NDR: Encoding = Encoding::Ndr;
const NDR64: Encoding = Encoding::Ndr64;
const LE: ByteOrder = ByteOrder::Little;

fn request_of(interface: Uuid, opnum: u16, text: &str, encoding: Encoding) -> Option<Decoded> {
    request(interface, opnum, &hex(text), encoding, LE)
}

fn response_of(interface: Uuid, opnum: u16, text: &str, encoding: Encoding) -> Option<Decoded> {
    response(interface, opnum, &hex(text), encoding, LE)
}

// corelight-PetitPotam UnPatchedDCOpenFileRaw.pcapng frame 1995: EfsRpcOpenFileRaw over
// \pipe\lsarpc, NDR; tshark: FileName \\192.168.0.15\test\Settings.ini, Flags 0.
const EFS_OPEN_FILE_RAW: &str = concat!(
    "2100000000000000210000005c005c003100390032002e003100360038002e0030002e00310035005c007400",
    "6500730074005c00530065007400740069006e00670073002e0069006e0069000000bfbf00000000",
);

// 401trg 20171220_smb_at_schedule.pcap frame 9: NetrJobAdd in NDR64 (8-byte referents);
// tshark: ServerName \\admin-pc, Command c:\mimikatz.exe.
const AT_JOB_ADD_NDR64: &str = concat!(
    "00000200000000000b0000000000000000000000000000000b000000000000005c005c00610064006d006900",
    "6e002d00700063000000000060b0ce0200000000000000000010000000000200000000001000000000000000",
    "0000000000000000100000000000000063003a005c006d0069006d0069006b00610074007a002e0065007800",
    "65000000",
);

// OTRF empire_getsession_dcerpc_smb_srvsvc_NetSessEnum frame 556: NetrSessionEnum in NDR64.
// By hand (tshark misreads NDR64 unions): ServerName MORDORDC, ClientName and UserName
// empty strings, Level 10 at 0x88, the union tag 10 at 0x90 (aligned to 8), container ptr.
const SESSION_ENUM_NDR64: &str = concat!(
    "00000200000000000900000000000000000000000000000009000000000000004d004f00520044004f005200",
    "4400430000000000000000000000020000000000010000000000000000000000000000000100000000000000",
    "0000000000000000000002000000000001000000000000000000000000000000010000000000000000000000",
    "000000000a000000000000000a00000000000000000002000000000000000000000000000000000000000000",
    "ffffffff00000000000002000000000000000000",
);

// Frame 557, its answer. By hand ([MS-SRVS] 2.2.4.15, NDR64): Level 10, tag 10 (aligned to
// 8), container ptr; EntriesRead 1, Buffer ptr; conformance 1; SESSION_INFO_10 {cname ptr,
// username ptr, time 0, idle 0}; "\\172.18.39.5"; "pgustavo"; TotalEntries 1; ResumeHandle.
const SESSION_ENUM_RESPONSE_NDR64: &str = concat!(
    "0a000000000000000a0000000000000000000200000000000100000000000000000002000000000001000000",
    "000000000000020000000000000002000000000000000000000000000e000000000000000000000000000000",
    "0e000000000000005c005c003100370032002e00310038002e00330039002e00350000000000000009000000",
    "000000000000000000000000090000000000000070006700750073007400610076006f000000000001000000",
    "00000200000000001200000000000000",
);

// OTRF empire_shell_rpc_samr_smb_group_domain_admins frame 160: SamrOpenDomain, NDR64:
// handle, DesiredAccess 0x200, RPC_SID conformance 4 (u64), revision 1, 4 subauthorities,
// authority 5: S-1-5-21-4228717743-1032521047-1810997296.
const SAMR_OPEN_DOMAIN_NDR64: &str = concat!(
    "000000000ec43aa4af45694e8dce0256747f8e44000200000400000000000000010400000000000515000000",
    "af1c0dfc57058b3d30a0f16b",
);

// Frame 162: SamrLookupNamesInDomain, NDR64: Count 1, "Domain Admins".
const SAMR_LOOKUP_DOMAIN_ADMINS_NDR64: &str = concat!(
    "0000000079e2216440b67441b92b0cb5a02a4cd501000000e803000000000000000000000000000001000000",
    "000000001a001c000000000000000200000000000e0000000000000000000000000000000d00000000000000",
    "44006f006d00610069006e002000410064006d0069006e007300",
);

// Frame 163, its answer: RelativeIds {Count 1, ptr, conformance 1, 512}, Use {1, ptr, 1,
// SidTypeGroup 2}, STATUS_SUCCESS.
const SAMR_LOOKUP_DOMAIN_ADMINS_RESPONSE_NDR64: &str = concat!(
    "0100000000000000000002000000000001000000000000000002000000000000010000000000000000000200",
    "0000000001000000000000000200000000000000",
);

// Frame 164: SamrOpenGroup, NDR64: DesiredAccess 1, GroupId 512.
const SAMR_OPEN_GROUP_NDR64: &str = "0000000079e2216440b67441b92b0cb5a02a4cd50100000000020000";

// Frame 197: SamrGetMembersInGroup answer, NDR64: a pointer, MemberCount 3, two pointers,
// the RIDs 500, 1104, 1109, the attributes 7, 7, 7.
const SAMR_GROUP_MEMBERS_RESPONSE_NDR64: &str = concat!(
    "00000200000000000300000000000000000002000000000000000200000000000300000000000000f4010000",
    "500400005504000000000000030000000000000007000000070000000700000000000000",
);

// Frame 198: SamrLookupIdsInDomain, NDR64: Count 3, [1000, 0, 3] 500, 1104, 1109.
const SAMR_LOOKUP_IDS_NDR64: &str = concat!(
    "0000000027c988550c303b4c818edb49f94d9d3403000000e803000000000000000000000000000003000000",
    "00000000f40100005004000055040000",
);

// Frame 199, its answer: Names {Count 3, ptr, conformance 3, 3 RPC_UNICODE_STRINGs},
// "wardog", "pgustavo", "mscott", then Use.
const SAMR_LOOKUP_IDS_RESPONSE_NDR64: &str = concat!(
    "0300000000000000000002000000000003000000000000000c000c0000000000000002000000000010001000",
    "0000000000000200000000000c000c0000000000000002000000000006000000000000000000000000000000",
    "060000000000000077006100720064006f006700000000000800000000000000000000000000000008000000",
    "0000000070006700750073007400610076006f00060000000000000000000000000000000600000000000000",
    "6d00730063006f00740074000000000003000000000000000000020000000000030000000000000001000000",
    "010000000100000000000000",
);

// suricata-verify dcerpc-dce-stub-data-04 frame 12: BaseRegOpenKey, NDR; tshark: Keyname
// SOFTWARE\Microsoft\Windows\CurrentVersion\Run under the handle frame 10 answered.
const WINREG_OPEN_KEY: &str = concat!(
    "00000000f672289cf057d811b005000c2987eae95c005c00a8b914002e000000000000002e00000053004f00",
    "4600540057004100520045005c004d006900630072006f0073006f00660074005c00570069006e0064006f00",
    "770073005c00430075007200720065006e007400560065007200730069006f006e005c00520075006e000000",
    "0000000003000000",
);

// zeek dce-rpc/kerberos135_auth.pcapng frame 10: RemoteCreateInstance, NDR; tshark:
// InstantiatedObjectClsId 8bc3f05e-d86b-11d0-a075-00c04fb68820 (WbemLevel1Login).
const REMOTE_CREATE_INSTANCE: &str = concat!(
    "0500070001000000000000006aec596055ca08489a05b1012b9c76cb000000000000000000000200f0020000",
    "f00200004d454f5704000000a201000000000000c0000000000000463803000000000000c000000000000046",
    "00000000c8020000b80200000000000001100800ccccccccb000000000000000b8020000c000000000000000",
    "02000000060000000000000000000000000000000000000000000200040002000000000006000000b9010000",
    "00000000c000000000000046ab01000000000000c000000000000046a501000000000000c000000000000046",
    "a601000000000000c000000000000046a401000000000000c000000000000046aa01000000000000c0000000",
    "000000460600000068000000580000009000000058000000200000003000000001100800cccccccc58000000",
    "00000000ffffffff000000000000000000000000020000000000000000000000000000000000000000000000",
    "1400000002000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000001100800cccccccc48000000000000005ef0c38b6bd8d011a07500c04fb688201400000000000000",
    "0000000001000000000000000000020058000000050007000100000018ad09f36ad8d011a07500c04fb68820",
    "0000000001100800cccccccc8000000000000000000000000000000000000000000000000000020000000000",
    "60000000600000004d454f5704000000c001000000000000c0000000000000463b03000000000000c0000000",
    "00000046000000003000000001000100184b877945fc6243b0526390928ea80a020000000000000000000000",
    "0000000000000000000000000100000001100800cccccccc4800000000000000000000000000020000000000",
    "000000000400020000000000000000000f000000000000000f00000042004c00410043004b0043004c004f00",
    "5600450052002d00440043000000000001100800cccccccc1000000000000000000000000000000000000000",
    "0000000001100800cccccccc2000000000000000000000000000020002000000010000000400020001000000",
    "0700000000000000",
);

// Encoded by impacket 0.13.1 (parsers/tests/dcerpc/make-stubs.py, which names each call's values).

const GET_NC_CHANGES_V8: &str = concat!(
    "11111111111111111111111111111111111111110800000008000000ababababf1e4d6e2a72c5a4ea91c4d1c",
    "35c8e2a1f1e4d6e2a72c5a4ea91c4d1c35c8e2a14d3a0000abababab00000000000000000000000000000000",
    "00000000000000000000000030000000010000000000000006000000abababab000000000000000000000000",
    "0000000000000000000000002300000082000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000002200000043004e003d006b007200620074006700",
    "74002c0043004e003d00550073006500720073002c00440043003d006c00610062002c00440043003d006c00",
    "6f00630061006c000000",
);

// DsAddEntry V2 as DCShadow registers a DC (impacket 0.13.1 encodes it, make-stubs.py; tshark
// 4.0 does not dissect opnum 17). By offset: handle @0; dwInVersion 2 @20, tag 2 @24;
// ENTINFLIST: pNextEntInf NULL @28, pName @32, ulFlags @36, attrCount 3 @40, pAttr @44;
// DSNAME @48 (conformance 105, structLen, SidLen 0 @56, GUID @60, Sid @76, NameLen 104 @104,
// "CN=NTDS Settings,CN=WS66,CN=Servers,...,DC=lab,DC=local" @108, 2 pad bytes @318);
// ATTR[3] @320 (conformance): invocationId 0x00020073 @324 (1 value), objectClass 0 @336
// (3 values), systemFlags 0x00090177 @348 (1 value), each {attrTyp, valCount, pAVal};
// invocationId's ATTRVAL[1] @360 {valLen 16 @364, pVal}, its 16 bytes @372 (conformance) and
// @376; objectClass's ATTRVAL[3] @392, values @420, @428, @436 (conformance, then 4 bytes each):
// nTDSDSA 0x0017002f (1.2.840.113556.1.5.7000.47), 0x0026000a (1.3.6.1.1.1.2.10 through the
// default prefixes) and an msDS-IntId 0x80000abc; systemFlags' ATTRVAL[1] @444, value @456.
const ADD_ENTRY_V2: &str = concat!(
    "1111111111111111111111111111111111111111020000000200000000000000149500000000000003000000",
    "43f90000690000000e0100000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000006800000043004e003d004e0054004400530020005300650074007400",
    "69006e00670073002c0043004e003d0057005300360036002c0043004e003d00530065007200760065007200",
    "73002c0043004e003d00440065006600610075006c0074002d00460069007200730074002d00530069007400",
    "65002d004e0061006d0065002c0043004e003d00530069007400650073002c0043004e003d0043006f006e00",
    "660069006700750072006100740069006f006e002c00440043003d006c00610062002c00440043003d006c00",
    "6f00630061006c000000efef030000007300020001000000528d00000000000003000000a24a000077010900",
    "01000000a493000001000000100000005fff000010000000000102030405060708090a0b0c0d0e0f03000000",
    "0400000066640000040000001e1300000400000064640000040000002f001700040000000a00260004000000",
    "bc0a00800100000004000000715100000400000000000002",
);

// DsAddEntry V3 with two entries (impacket, make-stubs.py): the first's fixed part @28
// (pNextEntInf set), pClientCreds NULL @48; the second entry's fixed part @52 (pNextEntInf
// NULL), then the second's DSNAME (CN=NTDS Settings,CN=WS66,CN=Servers,DC=lab) and ATTRs
// (objectClass: nTDSDSA), then the first's DSNAME (CN=WS66,CN=Servers,DC=lab) and ATTRs
// (objectClass: server 0x000a0011, 1.2.840.113556.1.5.17): pointees depth first.
const ADD_ENTRY_V3: &str = concat!(
    "11111111111111111111111111111111111111110300000003000000bb500000953a00000000000001000000",
    "ed450000000000000000000054e300000000000001000000941200002b000000920000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000002a000000",
    "43004e003d004e005400440053002000530065007400740069006e00670073002c0043004e003d0057005300",
    "360036002c0043004e003d0053006500720076006500720073002c00440043003d006c00610062000000efef",
    "010000000000000001000000db4200000100000004000000a79e0000040000002f0017001a00000070000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000001900000043004e003d0057005300360036002c0043004e003d005300650072007600650072007300",
    "2c00440043003d006c006100620000000100000000000000010000009455000001000000040000007ec10000",
    "0400000011000a00",
);

const GET_NC_CHANGES_V10: &str = concat!(
    "11111111111111111111111111111111111111110a0000000a000000ababababf1e4d6e2a72c5a4ea91c4d1c",
    "35c8e2a1f1e4d6e2a72c5a4ea91c4d1c35c8e2a18f8a0000abababab00000000000000000000000000000000",
    "00000000000000000000000030000000010000000000000006000000abababab000000000000000000000000",
    "0000000000000000000000000000000023000000820000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000002200000043004e003d006b0072006200",
    "7400670074002c0043004e003d00550073006500720073002c00440043003d006c00610062002c0044004300",
    "3d006c006f00630061006c000000",
);

const RETRIEVE_PRIVATE_DATA: &str = concat!(
    "111111111111111111111111111111111111111128002800e2d7000014000000000000001400000047002400",
    "420043004b00550050004b00450059005f0050005200450046004500520052004500440000000000",
);

const OPEN_SECRET: &str = concat!(
    "111111111111111111111111111111111111111118001800d4b900000c000000000000000c00000047002400",
    "420043004b00550050004b00450059005f00500000000002",
);

const PASSWORD_SET2_ZERO: &str = concat!(
    "8e2600000600000000000000060000005c005c00440043003100000005000000000000000500000044004300",
    "3100240000000600040000000000000004000000440043003100000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "00000000000000000000000000000000000000000000000000000000",
);

const DFS_REMOVE_STD_ROOT: &str = concat!(
    "0a000000000000000a000000310030002e0030002e0030002e00390039000000050000000000000005000000",
    "74006500730074000000bfbf01000000",
);

const FFPCN_EX: &str = concat!(
    "111111111111111111111111111111111111111100010000000000007b3b00000c000000000000000c000000",
    "5c005c00310030002e0030002e0030002e003900390000000000000000000000",
);

const ADD_PRINTER_DRIVER_EX: &str = concat!(
    "0000000002000000020000009bf20000030000008ac40000aea0000017980000ebbb0000426a000005000000",
    "000000000500000031003200330034000000abab0c000000000000000c000000570069006e0064006f007700",
    "73002000780036003400000052000000000000005200000043003a005c00570069006e0064006f0077007300",
    "5c00530079007300740065006d00330032005c00440072006900760065007200530074006f00720065005c00",
    "460069006c0065005200650070006f007300690074006f00720079005c006e0074007000720069006e007400",
    "2e0069006e0066005f0061006d006400360034005c0041006d006400360034005c0055004e00490044005200",
    "56002e0044004c004c0000001b000000000000001b0000005c005c00310030002e0030002e0030002e003900",
    "39005c00730068006100720065005c006500760069006c002e0064006c006c000000abab2300000000000000",
    "2300000043003a005c00570069006e0064006f00770073005c00530079007300740065006d00330032005c00",
    "6b00650072006e0065006c0062006100730065002e0064006c006c000000bfbf14800000",
);

const REGISTER_TASK: &str = concat!(
    "d4db00000600000000000000060000005c004c006100620031000000ca00000000000000ca0000003c003f00",
    "78006d006c002000760065007200730069006f006e003d00220031002e0030002200200065006e0063006f00",
    "640069006e0067003d0022005500540046002d003100360022003f003e003c005400610073006b003e003c00",
    "41006300740069006f006e007300200043006f006e0074006500780074003d0022004c006f00630061006c00",
    "530079007300740065006d0022003e003c0045007800650063003e003c0043006f006d006d0061006e006400",
    "3e0063006d0064002e006500780065003c002f0043006f006d006d0061006e0064003e003c00410072006700",
    "75006d0065006e00740073003e002f0043002000770068006f0061006d00690020002600670074003b002000",
    "2500770069006e0064006900720025005c00540065006d0070005c0078002e0074006d007000200032002600",
    "670074003b00260061006d0070003b0031003c002f0041007200670075006d0065006e00740073003e003c00",
    "2f0045007800650063003e003c002f0041006300740069006f006e0073003e003c002f005400610073006b00",
    "3e0000000200000000000000000000000000000000000000",
);

const OPEN_SERVICE: &str = concat!(
    "11111111111111111111111111111111111111110f000000000000000f000000520065006d006f0074006500",
    "520065006700690073007400720079000000bfbfff010f00",
);

const CHANGE_SERVICE_CONFIG: &str = concat!(
    "1111111111111111111111111111111111111111ffffffff03000000ffffffff56f300001400000000000000",
    "14000000250043004f004d005300500045004300250020002f0043002000770068006f0061006d0069000000",
    "000000000000000000000000000000000000000000000000000000000cf60000080000000000000008000000",
    "55007000640061007400650072000000",
);

const SAVE_KEY: &str = concat!(
    "1111111111111111111111111111111111111111360036006b7c00001b000000000000001b0000005c005c00",
    "310030002e0030002e0030002e00390039005c00730068006100720065005c00730061006d002e0073006100",
    "760065000000bfbf00000000",
);

const SHARE_ENUM: &str = concat!(
    "382e00000600000000000000060000005c005c0044004300310000000100000001000000dbe5000000000000",
    "00000000ffffffff00000000",
);

const SHARE_ENUM_RESPONSE: &str = concat!(
    "010000000100000088be000004000000109b0000040000001b2c000000000080597f000047f9000000000080",
    "2618000044080000030000800d8a0000f282000000000000b819000007000000000000000700000041004400",
    "4d0049004e0024000000abab0d000000000000000d000000520065006d006f00740065002000410064006d00",
    "69006e000000abab030000000000000003000000430024000000abab0e000000000000000e00000044006500",
    "6600610075006c00740020007300680061007200650000000500000000000000050000004900500043002400",
    "0000abab0b000000000000000b000000520065006d006f007400650020004900500043000000abab07000000",
    "000000000700000053005900530056004f004c000000abab1400000000000000140000004c006f0067006f00",
    "6e00200073006500720076006500720020007300680061007200650020000000040000000000000000000000",
);

const WKSTA_USER_ENUM_RESPONSE: &str = concat!(
    "01000000010000000db90000020000004dbc000002000000e6e700001a6800003cf60000586e000007da0000",
    "b71f0000feb60000254b000006000000000000000600000061006c0069006300650000000400000000000000",
    "040000004c004100420000000100000000000000010000000000abab04000000000000000400000044004300",
    "3100000005000000000000000500000044004300310024000000abab0400000000000000040000004c004100",
    "420000000100000000000000010000000000abab040000000000000004000000440043003100000002000000",
    "0000000000000000",
);

#[test]
fn petitpotam_names_its_listener() {
    for interface in [EFSRPC_LSARPC, EFSRPC] {
        assert_eq!(
            request_of(interface, 0, EFS_OPEN_FILE_RAW, NDR),
            Some(Decoded::FileName(
                "\\\\192.168.0.15\\test\\Settings.ini".into()
            ))
        );
    }
    // EfsRpcReadFileRaw takes a context handle, not a name.
    assert_eq!(request_of(EFSRPC, 1, EFS_OPEN_FILE_RAW, NDR), None);
}

#[test]
fn an_at_job_in_ndr64_gives_its_command() {
    assert_eq!(
        request_of(ATSVC, 0, AT_JOB_ADD_NDR64, NDR64),
        Some(Decoded::Command("c:\\mimikatz.exe".into()))
    );
    assert_eq!(request_of(ATSVC, 0, AT_JOB_ADD_NDR64, NDR), None, "not NDR");
}

#[test]
fn a_session_enumeration_exposes_client_and_user() {
    assert_eq!(
        request_of(SRVSVC, 12, SESSION_ENUM_NDR64, NDR64),
        Some(Decoded::InfoLevel(10))
    );
    assert_eq!(
        response_of(SRVSVC, 12, SESSION_ENUM_RESPONSE_NDR64, NDR64),
        Some(Decoded::Sessions(vec![Session {
            client: "\\\\172.18.39.5".into(),
            user: "pgustavo".into(),
        }]))
    );
}

#[test]
fn samr_group_reconnaissance_in_ndr64() {
    assert_eq!(
        request_of(SAMR, 7, SAMR_OPEN_DOMAIN_NDR64, NDR64),
        Some(Decoded::DomainSid(
            "S-1-5-21-4228717743-1032521047-1810997296".into()
        ))
    );
    assert_eq!(
        request_of(SAMR, 17, SAMR_LOOKUP_DOMAIN_ADMINS_NDR64, NDR64),
        Some(Decoded::LookupNames(vec!["Domain Admins".into()]))
    );
    assert_eq!(
        response_of(SAMR, 17, SAMR_LOOKUP_DOMAIN_ADMINS_RESPONSE_NDR64, NDR64),
        Some(Decoded::Rids(vec![512]))
    );
    assert_eq!(
        request_of(SAMR, 19, SAMR_OPEN_GROUP_NDR64, NDR64),
        Some(Decoded::OpenUser { rid: 512 })
    );
    assert_eq!(
        response_of(SAMR, 25, SAMR_GROUP_MEMBERS_RESPONSE_NDR64, NDR64),
        Some(Decoded::MemberCount(3))
    );
    assert_eq!(
        request_of(SAMR, 18, SAMR_LOOKUP_IDS_NDR64, NDR64),
        Some(Decoded::Rids(vec![500, 1104, 1109]))
    );
    assert_eq!(
        response_of(SAMR, 18, SAMR_LOOKUP_IDS_RESPONSE_NDR64, NDR64),
        Some(Decoded::LookupNames(vec![
            "wardog".into(),
            "pgustavo".into(),
            "mscott".into()
        ]))
    );
}

#[test]
fn a_registry_key_is_opened_under_its_parent_handle() {
    let Some(Decoded::SubKey { parent, name }) = request_of(WINREG, 15, WINREG_OPEN_KEY, NDR)
    else {
        panic!("not decoded")
    };
    assert_eq!(name, "SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run");
    // The handle frame 10 answered to OpenHKLM.
    assert_eq!(
        parent,
        <Handle>::try_from(hex("00000000f672289cf057d811b005000c2987eae9").as_slice())
            .expect("20 bytes")
    );
    assert_eq!(
        request(WINREG, 2, &[], NDR, LE),
        Some(Decoded::Hive("HKLM"))
    );
    // The answer to OpenHKLM (frame 10): the handle, then ERROR_SUCCESS.
    assert_eq!(
        response(
            WINREG,
            2,
            &hex("00000000f672289cf057d811b005000c2987eae900000000"),
            NDR,
            LE
        ),
        Some(Decoded::Handle(parent))
    );
    // An answer with an error hands out no handle.
    assert_eq!(
        response(
            WINREG,
            2,
            &hex("00000000f672289cf057d811b005000c2987eae905000000"),
            NDR,
            LE
        ),
        None
    );
}

#[test]
fn a_dcom_activation_names_its_class() {
    let clsid = Uuid(0x8bc3f05e_d86b_11d0_a075_00c04fb68820);
    assert_eq!(
        request_of(SYSTEM_ACTIVATOR, 4, REMOTE_CREATE_INSTANCE, NDR),
        Some(Decoded::Activation(clsid))
    );
    assert_eq!(class_name(clsid), Some("WbemLevel1Login"));
    assert_eq!(
        class_name(Uuid(0x49b2791a_b1ae_4c90_9b8e_e860ba07f889)),
        Some("MMC20.Application")
    );
    // Another signature than MEOW is not an activation blob.
    let broken = REMOTE_CREATE_INSTANCE.replacen("4d454f57", "4d454f58", 1);
    assert_eq!(request_of(SYSTEM_ACTIVATOR, 4, &broken, NDR), None);
}

#[test]
fn dcsync_requests_name_their_object_and_operation() {
    for text in [GET_NC_CHANGES_V8, GET_NC_CHANGES_V10] {
        assert_eq!(
            request_of(DRSUAPI, 3, text, NDR),
            Some(Decoded::GetNcChanges(GetNcChanges {
                naming_context: "CN=krbtgt,CN=Users,DC=lab,DC=local".into(),
                extended_operation: ExtendedOperation::REPL_OBJ,
            }))
        );
    }
    assert_eq!(ExtendedOperation(6).name(), Some("EXOP_REPL_OBJ"));
    assert_eq!(ExtendedOperation(7).name(), Some("EXOP_REPL_SECRETS"));
    // A version the request's tag does not repeat is refused.
    let mut bytes = hex(GET_NC_CHANGES_V8);
    bytes[24] = 10;
    assert_eq!(request(DRSUAPI, 3, &bytes, NDR, LE), None);
}

#[test]
fn dcshadow_registrations_name_the_classes_added() {
    let classes = |text: &str| match request_of(DRSUAPI, 17, text, NDR) {
        Some(Decoded::ObjectClasses(classes)) => {
            classes.iter().map(ToString::to_string).collect::<Vec<_>>()
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(
        classes(ADD_ENTRY_V2),
        ["nTDSDSA", "1.3.6.1.1.1.2.10", "0x80000abc"]
    );
    // Entries in list order, though the last one's pointees come first.
    assert_eq!(classes(ADD_ENTRY_V3), ["server", "nTDSDSA"]);
    assert_eq!(ObjectClass::COMPUTER.to_string(), "computer");
    // A prefix index past the default table's is the server's own: only the number says it.
    assert_eq!(ObjectClass(0x00c8_0001).to_string(), "0x00c80001");
    assert_eq!(
        ObjectClass(0x0017_0030).oid().as_deref(),
        Some("1.2.840.113556.1.5.7000.48")
    );
}

#[test]
fn secrets_are_named() {
    assert_eq!(
        request_of(LSARPC, 43, RETRIEVE_PRIVATE_DATA, NDR),
        Some(Decoded::SecretName("G$BCKUPKEY_PREFERRED".into()))
    );
    assert_eq!(
        request_of(LSARPC, 28, OPEN_SECRET, NDR),
        Some(Decoded::SecretName("G$BCKUPKEY_P".into()))
    );
}

#[test]
fn a_zero_password_reset_is_seen() {
    let Some(Decoded::PasswordSet(set)) = request_of(NETLOGON, 30, PASSWORD_SET2_ZERO, NDR) else {
        panic!("not decoded")
    };
    assert!(set.zero_password);
    assert_eq!(set.account_name, "DC1$");
    assert_eq!(set.computer_name, "DC1");
    assert_eq!(set.secure_channel_type, SecureChannelType::SERVER);
    // One byte of the new password set: not a zero password.
    let mut bytes = hex(PASSWORD_SET2_ZERO);
    let last = bytes.len() - 1;
    bytes[last - 4] = 1;
    let Some(Decoded::PasswordSet(set)) = request(NETLOGON, 30, &bytes, NDR, LE) else {
        panic!("not decoded")
    };
    assert!(!set.zero_password);
}

#[test]
fn coercion_listeners_are_named() {
    assert_eq!(
        request_of(NETDFS, 13, DFS_REMOVE_STD_ROOT, NDR),
        Some(Decoded::ServerName("10.0.0.99".into()))
    );
    assert_eq!(
        request_of(SPOOLSS, 65, FFPCN_EX, NDR),
        Some(Decoded::LocalMachine("\\\\10.0.0.99".into()))
    );
}

#[test]
fn a_printer_driver_names_its_files() {
    let driver = PrinterDriver {
        paths: vec![
            "C:\\Windows\\System32\\DriverStore\\FileRepository\\ntprint.inf_amd64\\Amd64\\UNIDRV.DLL"
                .into(),
            "\\\\10.0.0.99\\share\\evil.dll".into(),
            "C:\\Windows\\System32\\kernelbase.dll".into(),
        ],
        // APD_COPY_ALL_FILES | APD_COPY_FROM_DIRECTORY | APD_INSTALL_WARNED_DRIVER
        flags: 0x8014,
    };
    assert_eq!(
        request_of(SPOOLSS, 89, ADD_PRINTER_DRIVER_EX, NDR),
        Some(Decoded::PrinterDriver(driver.clone()))
    );
    // RpcAsyncAddPrinterDriver has the same parameters.
    assert_eq!(
        request_of(REMOTE_WINSPOOL, 39, ADD_PRINTER_DRIVER_EX, NDR),
        Some(Decoded::PrinterDriver(driver))
    );
}

#[test]
fn a_registered_task_gives_its_command() {
    assert_eq!(
        request_of(TASK_SCHEDULER, 1, REGISTER_TASK, NDR),
        Some(Decoded::Task(Task {
            path: "\\Lab1".into(),
            command: "cmd.exe".into(),
            arguments: "/C whoami > %windir%\\Temp\\x.tmp 2>&1".into(),
        }))
    );
}

#[test]
fn services_are_named() {
    assert_eq!(
        request_of(SVCCTL, 16, OPEN_SERVICE, NDR),
        Some(Decoded::OpenService("RemoteRegistry".into()))
    );
    assert_eq!(
        request_of(SVCCTL, 11, CHANGE_SERVICE_CONFIG, NDR),
        Some(Decoded::ServiceConfig(ServiceConfig {
            handle: [0x11; 20],
            binary_path: Some("%COMSPEC% /C whoami".into()),
            display_name: Some("Updater".into()),
        }))
    );
    assert_eq!(
        request_of(WINREG, 20, SAVE_KEY, NDR),
        Some(Decoded::SaveKey([0x11; 20]))
    );
}

#[test]
fn share_and_user_enumerations_are_read() {
    assert_eq!(
        request_of(SRVSVC, 15, SHARE_ENUM, NDR),
        Some(Decoded::InfoLevel(1))
    );
    assert_eq!(
        response_of(SRVSVC, 15, SHARE_ENUM_RESPONSE, NDR),
        Some(Decoded::Shares(vec![
            "ADMIN$".into(),
            "C$".into(),
            "IPC$".into(),
            "SYSVOL".into()
        ]))
    );
    assert_eq!(
        response_of(WKSSVC, 2, WKSTA_USER_ENUM_RESPONSE, NDR),
        Some(Decoded::Users(vec![
            "LAB\\alice".into(),
            "LAB\\DC1$".into()
        ]))
    );
}

/// Every fixture: (interface, opnum, request or response, stub, encoding).
fn fixtures() -> Vec<(Uuid, u16, bool, &'static str, Encoding)> {
    vec![
        (EFSRPC, 0, true, EFS_OPEN_FILE_RAW, NDR),
        (ATSVC, 0, true, AT_JOB_ADD_NDR64, NDR64),
        (SRVSVC, 12, true, SESSION_ENUM_NDR64, NDR64),
        (SRVSVC, 12, false, SESSION_ENUM_RESPONSE_NDR64, NDR64),
        (SAMR, 7, true, SAMR_OPEN_DOMAIN_NDR64, NDR64),
        (SAMR, 17, true, SAMR_LOOKUP_DOMAIN_ADMINS_NDR64, NDR64),
        (
            SAMR,
            17,
            false,
            SAMR_LOOKUP_DOMAIN_ADMINS_RESPONSE_NDR64,
            NDR64,
        ),
        (SAMR, 19, true, SAMR_OPEN_GROUP_NDR64, NDR64),
        (SAMR, 25, false, SAMR_GROUP_MEMBERS_RESPONSE_NDR64, NDR64),
        (SAMR, 18, true, SAMR_LOOKUP_IDS_NDR64, NDR64),
        (SAMR, 18, false, SAMR_LOOKUP_IDS_RESPONSE_NDR64, NDR64),
        (WINREG, 15, true, WINREG_OPEN_KEY, NDR),
        (SYSTEM_ACTIVATOR, 4, true, REMOTE_CREATE_INSTANCE, NDR),
        (DRSUAPI, 3, true, GET_NC_CHANGES_V8, NDR),
        (DRSUAPI, 3, true, GET_NC_CHANGES_V10, NDR),
        (DRSUAPI, 17, true, ADD_ENTRY_V2, NDR),
        (DRSUAPI, 17, true, ADD_ENTRY_V3, NDR),
        (LSARPC, 43, true, RETRIEVE_PRIVATE_DATA, NDR),
        (LSARPC, 28, true, OPEN_SECRET, NDR),
        (NETLOGON, 30, true, PASSWORD_SET2_ZERO, NDR),
        (NETDFS, 13, true, DFS_REMOVE_STD_ROOT, NDR),
        (SPOOLSS, 65, true, FFPCN_EX, NDR),
        (SPOOLSS, 89, true, ADD_PRINTER_DRIVER_EX, NDR),
        (TASK_SCHEDULER, 1, true, REGISTER_TASK, NDR),
        (SVCCTL, 16, true, OPEN_SERVICE, NDR),
        (SVCCTL, 11, true, CHANGE_SERVICE_CONFIG, NDR),
        (WINREG, 20, true, SAVE_KEY, NDR),
        (SRVSVC, 15, true, SHARE_ENUM, NDR),
        (SRVSVC, 15, false, SHARE_ENUM_RESPONSE, NDR),
        (WKSSVC, 2, false, WKSTA_USER_ENUM_RESPONSE, NDR),
    ]
}

fn decode(
    interface: Uuid,
    opnum: u16,
    is_request: bool,
    bytes: &[u8],
    encoding: Encoding,
    order: ByteOrder,
) -> Option<Decoded> {
    if is_request {
        request(interface, opnum, bytes, encoding, order)
    } else {
        response(interface, opnum, bytes, encoding, order)
    }
}

#[test]
fn every_fixture_is_read_and_says_what_dcwatch_asks_of_it() {
    for (interface, opnum, is_request, text, encoding) in fixtures() {
        let read = if is_request {
            reads_request(interface, opnum)
        } else {
            reads_response(interface, opnum)
        };
        assert!(read, "{interface} {opnum} not kept");
        assert!(
            decode(interface, opnum, is_request, &hex(text), encoding, LE).is_some(),
            "{interface} {opnum}"
        );
    }
}

#[test]
fn every_prefix_decodes_to_nothing_or_to_the_whole() {
    for (interface, opnum, is_request, text, encoding) in fixtures() {
        let bytes = hex(text);
        let whole = decode(interface, opnum, is_request, &bytes, encoding, LE);
        for len in 0..bytes.len() {
            let cut = decode(interface, opnum, is_request, &bytes[..len], encoding, LE);
            // A decoder that needs less than the whole stub may answer early, but never with
            // something else than the whole says.
            assert!(
                cut.is_none() || cut == whole,
                "{interface} {opnum} cut at {len}: {cut:?}"
            );
        }
    }
}

#[test]
fn every_fixture_in_the_other_encoding_or_order_is_refused_or_harmless() {
    for (interface, opnum, is_request, text, encoding) in fixtures() {
        let bytes = hex(text);
        let other = match encoding {
            Encoding::Ndr => Encoding::Ndr64,
            Encoding::Ndr64 => Encoding::Ndr,
        };
        // Read in the wrong dialect, a stub must not panic; what it gives is not checked.
        let _ = decode(interface, opnum, is_request, &bytes, other, LE);
        let _ = decode(
            interface,
            opnum,
            is_request,
            &bytes,
            encoding,
            ByteOrder::Big,
        );
    }
}

/// A stub with the integers at `fields` (offset, width) in the other byte order.
fn swapped(bytes: &[u8], fields: &[(usize, usize)]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for &(at, width) in fields {
        out[at..at + width].reverse();
    }
    out
}

#[test]
fn big_endian_stubs_decode_as_the_little_endian_ones() {
    // OPEN_SECRET: handle (20), Length u16 @20, MaximumLength u16 @22, referent u32 @24,
    // max u32 @28, offset u32 @32, actual u32 @36, 12 units from @40, DesiredAccess u32 @64.
    let bytes = hex(OPEN_SECRET);
    let mut fields = vec![
        (20, 2),
        (22, 2),
        (24, 4),
        (28, 4),
        (32, 4),
        (36, 4),
        (64, 4),
    ];
    fields.extend((0..12).map(|unit| (40 + 2 * unit, 2)));
    assert_eq!(
        request(LSARPC, 28, &swapped(&bytes, &fields), NDR, ByteOrder::Big),
        Some(Decoded::SecretName("G$BCKUPKEY_P".into()))
    );
    // DFS_REMOVE_STD_ROOT: ServerName max @0, offset @4, actual @8, 10 units from @12; the
    // rest is not read before the answer.
    let bytes = hex(DFS_REMOVE_STD_ROOT);
    let mut fields = vec![(0, 4), (4, 4), (8, 4)];
    fields.extend((0..10).map(|unit| (12 + 2 * unit, 2)));
    assert_eq!(
        request(NETDFS, 13, &swapped(&bytes, &fields), NDR, ByteOrder::Big),
        Some(Decoded::ServerName("10.0.0.99".into()))
    );
    // SAMR_OPEN_GROUP_NDR64: handle, DesiredAccess u32 @20, GroupId u32 @24.
    let bytes = hex(SAMR_OPEN_GROUP_NDR64);
    assert_eq!(
        request(
            SAMR,
            19,
            &swapped(&bytes, &[(20, 4), (24, 4)]),
            NDR64,
            ByteOrder::Big
        ),
        Some(Decoded::OpenUser { rid: 512 })
    );

    // ADD_ENTRY_V2 (offsets above): every NDR integer swapped, the DSNAME's units too; the
    // values' bytes (the GUID @376, the ATTRTYPs @424, @432, @440, the flags @460) are the
    // directory's own and stay as they are.
    let bytes = hex(ADD_ENTRY_V2);
    let mut fields: Vec<(usize, usize)> = [20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 104]
        .into_iter()
        .chain((320..=372).step_by(4))
        .chain((392..=420).step_by(4))
        .chain([428, 436, 444, 448, 452, 456])
        .map(|at| (at, 4))
        .collect();
    fields.extend((0..105).map(|unit| (108 + 2 * unit, 2)));
    assert_eq!(
        request(DRSUAPI, 17, &swapped(&bytes, &fields), NDR, ByteOrder::Big),
        request(DRSUAPI, 17, &bytes, NDR, LE)
    );
    assert!(request(DRSUAPI, 17, &bytes, NDR, ByteOrder::Big).is_none());
}

#[test]
fn malformed_stubs_are_refused() {
    // A string whose offset is not 0.
    let mut bytes = hex(DFS_REMOVE_STD_ROOT);
    bytes[4] = 1;
    assert_eq!(request(NETDFS, 13, &bytes, NDR, LE), None);
    // A string longer than dcwatch reads.
    let mut bytes = hex(EFS_OPEN_FILE_RAW);
    bytes[8..12].copy_from_slice(&0x0010_0000_u32.to_le_bytes());
    assert_eq!(request(EFSRPC, 0, &bytes, NDR, LE), None);
    // An enumeration answer whose union tag is not its level.
    let mut bytes = hex(SHARE_ENUM_RESPONSE);
    bytes[4] = 2;
    assert_eq!(response(SRVSVC, 15, &bytes, NDR, LE), None);
    // More entries than dcwatch reads.
    let mut bytes = hex(SHARE_ENUM_RESPONSE);
    bytes[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(response(SRVSVC, 15, &bytes, NDR, LE), None);
    // A SID with more sub-authorities than a SID has.
    let mut bytes = hex(SAMR_OPEN_DOMAIN_NDR64);
    bytes[24] = 16;
    bytes[33] = 16;
    assert_eq!(request(SAMR, 7, &bytes, NDR64, LE), None);
    // A driver level MS-RPRN does not define.
    let mut bytes = hex(ADD_PRINTER_DRIVER_EX);
    bytes[4] = 7;
    bytes[8] = 7;
    assert_eq!(request(SPOOLSS, 89, &bytes, NDR, LE), None);
    // A DSNAME whose conformance is not NameLen + 1.
    // NameLen (34) then "CN", 28 + 16 + 4 + 4 bytes after the conformance.
    let mut bytes = hex(GET_NC_CHANGES_V8);
    let name_len = bytes
        .windows(8)
        .position(|window| window == b"\x22\0\0\0C\0N\0")
        .expect("the DSNAME");
    bytes[name_len - 28 - 16 - 4 - 4 - 4] ^= 1;
    assert_eq!(request(DRSUAPI, 3, &bytes, NDR, LE), None);
    // DsAddEntry: an ATTR array whose conformance is not attrCount; an objectClass value
    // whose length is not its conformance; version 1, not read.
    for (at, value) in [(320, 2), (396, 3), (20, 1)] {
        let mut bytes = hex(ADD_ENTRY_V2);
        bytes[at] = value;
        if at == 20 {
            bytes[24] = value;
        }
        assert_eq!(request(DRSUAPI, 17, &bytes, NDR, LE), None, "@{at}");
    }
    // Empty stubs.
    for (interface, opnum, is_request, _, encoding) in fixtures() {
        if (interface, opnum) != (WINREG, 2) {
            assert_eq!(
                decode(interface, opnum, is_request, &[], encoding, LE),
                None,
                "{interface} {opnum}"
            );
        }
    }
}

#[test]
fn interfaces_read_without_a_decoder_are_none() {
    assert_eq!(request(ACTIVATION, 1, &[0; 64], NDR, LE), None);
    assert_eq!(request(WBEM_SERVICES, 3, &[0; 64], NDR, LE), None);
    assert!(!reads_request(WBEM_SERVICES, 3));
}
