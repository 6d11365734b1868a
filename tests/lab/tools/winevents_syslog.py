#!/usr/bin/env python3
"""Windows events a SIEM forwards, sent over UDP syslog in the four layouts Defender for Identity
accepts (RSA Security Analytics, HP ArcSight CEF, Splunk, QRadar): Samba writes no Windows event
log, so the lab stands in for the DC's forwarder.

usage: winevents_syslog.py HOST PORT DOMAIN DNS_DOMAIN DOMAIN_SID DC_NAME

The events, each in every layout (README.md "Windows events over syslog", the builders of
parsers/src/winevent/tests.rs):
  7045  a service installed: BTOBTO, `%COMSPEC% /Q /c echo ...` (smbexec's service)
  4728  alice added to Domain Admins (global group, RID 512)
  4732  alice added to Administrators (builtin local group, S-1-5-32-544)
  4756  alice added to Enterprise Admins (universal group, RID 519)
  4726  DELETED users deleted, old_user01.. (RIDs from 1200): a mass deletion
all by Administrator, with the time the script runs (milliseconds kept) as the event time.
"""
import socket
import sys
import time

# Over the 20 deletions in a day that stand for "5% of the accounts" when the detectors have no
# directory to count them.
DELETED = 30
SECURITY = "Microsoft-Windows-Security-Auditing"
SCM = "Service Control Manager"
SERVICE = "BTOBTO"
SERVICE_FILE = (
    "%COMSPEC% /Q /c echo cd ^> \\\\127.0.0.1\\C$\\__output 2^>^&1 > %TEMP%\\execute.bat & "
    "%COMSPEC% /Q /c %TEMP%\\execute.bat & del %TEMP%\\execute.bat"
)


class Event:
    def __init__(self, event_id, provider, log, text, user):
        self.event_id, self.provider, self.log, self.text, self.user = event_id, provider, log, text, user


def subject(domain, sid):
    return (
        f"Subject:\n\tSecurity ID:\t\t{sid}-500\n\tAccount Name:\t\tAdministrator\n"
        f"\tAccount Domain:\t\t{domain}\n\tLogon ID:\t\t0x3E7\n"
    )


def membership(event_id, what, domain, sid, base, group, group_sid, group_domain):
    text = (
        f"{what}.\n\n{subject(domain, sid)}\nMember:\n\tSecurity ID:\t\t{sid}-1103\n"
        f"\tAccount Name:\t\tCN=Alice Lab,CN=Users,{base}\n\nGroup:\n\tSecurity ID:\t\t{group_sid}\n"
        f"\tGroup Name:\t\t{group}\n\tGroup Domain:\t\t{group_domain}\n\nAdditional Information:\n\tPrivileges:\t\t-"
    )
    return Event(event_id, SECURITY, "Security", text, "Administrator")


def events(domain, dns_domain, sid):
    base = ",".join(f"DC={part}" for part in dns_domain.split("."))
    service = Event(
        7045,
        SCM,
        "System",
        f"A service was installed in the system.\n\nService Name:  {SERVICE}\nService File Name:  {SERVICE_FILE}\n"
        "Service Type:  user mode service\nService Start Type:  demand start\nService Account:  LocalSystem",
        "Administrator",
    )
    found = [
        service,
        membership(4728, "A member was added to a security-enabled global group", domain, sid, base,
                   "Domain Admins", f"{sid}-512", domain),
        membership(4732, "A member was added to a security-enabled local group", domain, sid, base,
                   "Administrators", "S-1-5-32-544", "Builtin"),
        membership(4756, "A member was added to a security-enabled universal group", domain, sid, base,
                   "Enterprise Admins", f"{sid}-519", domain),
    ]
    for number in range(1, DELETED + 1):
        name = f"old_user{number:02}"
        found.append(Event(
            4726,
            SECURITY,
            "Security",
            f"A user account was deleted.\n\n{subject(domain, sid)}\nTarget Account:\n\tSecurity ID:\t\t{sid}-{1199 + number}\n"
            f"\tAccount Name:\t\t{name}\n\tAccount Domain:\t\t{domain}\n\nAdditional Information:\n\tPrivileges:\t\t-",
            name,
        ))
    return found


def cef_escape(text):
    return text.replace("\\", "\\\\").replace("=", "\\=").replace("\n", "\\n")


NAMES = {7045: "A service was installed in the system", 4728: "A member was added to a security-enabled global group",
         4732: "A member was added to a security-enabled local group",
         4756: "A member was added to a security-enabled universal group", 4726: "A user account was deleted"}


def rsa(event, now, dc):
    stamp = time.strftime("%Y-%b-%d %H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03}"
    return (f"<13>{time.strftime('%b %d %H:%M:%S', time.gmtime(now))} siem RsaSA\n{stamp}\n{event.event_id}\n"
            f"{event.provider}\n{event.log}\n{dc}\n{event.user}\nCLIENT1\n0x0")


def cef(event, now, dc):
    return (f"CEF:0|Microsoft|Microsoft Windows||{event.provider}:{event.event_id}|{NAMES[event.event_id]}|Low| "
            f"externalId={event.event_id} cat={event.log} rt={int(now * 1000)} shost=CLIENT1 dhost={dc} "
            f"duser={event.user} cs2={event.log} cs3={cef_escape(event.provider)} cs4=0x0 cs3Label=EventSource "
            f"cs4Label=Reason or Error Code msg={cef_escape(event.text)}")


def splunk(event, now, dc):
    generated = time.strftime("%Y%m%d%H%M%S", time.gmtime(now)) + f".{int(now * 1_000_000) % 1_000_000:06}-000"
    rfc5424 = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03}Z"
    text = event.text.replace("\n", "\r\n")
    return (f"<14>1 {rfc5424} siem splunk - - - \r\nEventCode={event.event_id}\r\nLogfile={event.log}\r\n"
            f"SourceName={event.provider}\r\nTimeGenerated={generated}\r\nComputerName={dc}\r\nMessage={text}")


def qradar(event, now, dc):
    flat = " ".join(event.text.split())
    millis = int(now * 1000)
    return (f"<13>{time.strftime('%b %d %H:%M:%S', time.gmtime(now))} 10.98.0.1 AgentDevice=WindowsLog\t"
            f"AgentLogFile={event.log}\tSource={event.provider}\tComputer={dc}\tUser=\tDomain=\t"
            f"EventID={event.event_id}\tEventIDCode={event.event_id}\tEventType=8\tEventCategory=14336\t"
            f"RecordNumber=1961417\tTimeGenerated={millis}\tTimeWritten={millis}\tMessage={flat}")


LAYOUTS = {"rsa": rsa, "cef": cef, "splunk": splunk, "qradar": qradar}


def main():
    if len(sys.argv) != 7:
        sys.exit(__doc__)
    host, port, domain, dns_domain, sid, dc_name = sys.argv[1:]
    dc = f"{dc_name.upper()}.{dns_domain}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for layout, build in LAYOUTS.items():
            for event in events(domain, dns_domain, sid):
                sock.sendto(build(event, time.time(), dc).encode(), (host, int(port)))
                print(f"{layout} {event.event_id} {event.user}")
                # A forwarder's pace: a burst of datagrams faster than the receiver reads is lost.
                time.sleep(0.01)


if __name__ == "__main__":
    main()
