"""Audit record builders per workload, with the field shapes and quirks of docs/api-behaviour.md "Record schema"
("Fields per workload", "Normalization pitfalls"; quoted headings below are sections of that page).

A `Population` holds precomputed pools (users, IPs, agents, sites, apps) so building a record is a
handful of dict literals and cheap random picks. Everything is fictitious: Microsoft's demo names,
documentation IP ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32).
"""

from __future__ import annotations

import bisect
import itertools
import json
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Record = dict[str, Any]

FIRST_NAMES = (
    "Alex", "Megan", "Adele", "Allan", "Christie", "Debra", "Diego", "Grady", "Henrietta", "Isaiah", "Johanna", "Joni",
    "Lee", "Lidia", "Lynne", "Miriam", "Nestor", "Patti", "Pradeep", "Irvin", "Emily", "Enrico", "Cameron", "Brian",
    "Raul", "Irene", "Ashley", "Mona", "Kaito", "Ingrid", "Samira", "Tomasz", "Aroha", "Olga", "Farid", "Beatriz",
)
LAST_NAMES = (
    "Wilber", "Bowen", "Vance", "Deyoung", "Cline", "Berger", "Siciliani", "Archie", "Mueller", "Langer", "Lorenz",
    "Sherman", "Gu", "Holloway", "Robbins", "Graham", "Wilke", "Fernandez", "Gupta", "Sayers", "Braun", "Cattaneo",
    "White", "Johnson", "Razi", "Kaur", "Banks", "Kane", "Tanaka", "Haugen", "Nasser", "Nowak", "Ngata", "Petrova",
)
GUEST_DOMAINS = ("fabrikam.com", "northwindtraders.com", "adatum.com", "tailspintoys.com")

BROWSER_AGENTS = (
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0",
     "Windows10", "Edge"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36",
     "Windows10", "Chrome"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
     "MacOs", "Safari"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:126.0) Gecko/20100101 Firefox/126.0", "Windows10", "Firefox"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
     "Ios", "Mobile Safari"),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
     "Android", "Chrome Mobile"),
)
CLIENT_AGENTS = (
    "Microsoft SkyDriveSync 24.076.0414.0005 ship; Windows NT 10.0 (22631)",
    "Microsoft Office Word 2014 (16.0.17531) Windows NT 10.0",
    "Microsoft Office Excel 2014 (16.0.17531) Windows NT 10.0",
    "Microsoft.Teams/24124.2314.2887.6452",
    "OneDriveiOSApp/15.13.1 (iPhone; iOS 17.4.1; Scale/3.00)",
    "python-requests/2.31.0",
    "",
)
CLIENT_INFO = (
    "Client=OWA;Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0;",
    "Client=REST;Client=RESTSystem;;",
    "Client=WebServices;Action=Sync;Microsoft Outlook 16.0.17531;",
    "Client=MSExchangeRPC",
    "Client=Microsoft.Exchange.ActiveSync;Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X);",
    "Client=REST;Client=RESTSystem;;;AppId=00000003-0000-0000-c000-000000000000;",
)
APPS = (  # (application id, display name, resource it signs in to)
    ("89bee1f7-5e6e-4d8a-9f3d-ecd601259da7", "Office365 Shell WCSS-Client", "00000003-0000-0ff1-ce00-000000000000"),
    ("d3590ed6-52b3-4102-aeff-aad2292ab01c", "Microsoft Office", "00000003-0000-0000-c000-000000000000"),
    ("1fec8e78-bce4-4aaf-ab1b-5451cc387264", "Microsoft Teams", "00000002-0000-0ff1-ce00-000000000000"),
    ("00000002-0000-0ff1-ce00-000000000000", "Office 365 Exchange Online", "00000002-0000-0ff1-ce00-000000000000"),
    ("ab9b8c07-8f02-4f72-87fa-80105867a763", "OneDrive SyncEngine", "00000003-0000-0ff1-ce00-000000000000"),
    ("04b07795-8ddb-461a-bbee-02f9e1bf7b46", "Microsoft Azure CLI", "797f4846-ba00-4fd7-ba43-dac1f8f63013"),
)
SITES = ("Finance", "HR", "Marketing", "Engineering", "Legal", "Sales", "ProjectAtlas", "Leadership", "ITHelpdesk", "Contoso")
FOLDERS = ("Shared Documents", "Shared Documents/Budget", "Shared Documents/Contracts", "Shared Documents/Reports/2024",
           "SiteAssets", "Shared Documents/Plans", "Shared Documents/Templates")
FILES = (("FY25 Forecast", "xlsx"), ("Board Deck", "pptx"), ("NDA-Fabrikam", "pdf"), ("Onboarding Checklist", "docx"),
         ("Q3 Pipeline", "xlsx"), ("Architecture Notes", "docx"), ("Team Photo", "jpg"), ("Incident Report", "docx"),
         ("Price List", "csv"), ("Roadmap", "pptx"), ("Meeting Notes", "one"), ("Release Plan", "xlsx"))
MAIL_FOLDERS = ("\\Inbox", "\\Sent Items", "\\Archive", "\\Inbox\\Projects", "\\Deleted Items", "\\Drafts")
SUBJECTS = ("Quarterly results", "Re: Contract renewal", "Lunch on Friday?", "Action required: expense report",
            "FW: Security review", "Project Atlas status", "Invoice 2024-0412", "Welcome aboard")
SERVERS = ("AM0PR09MB1234 (15.20.7544.000)", "BN8PR12MB3345 (15.20.7587.021)", "SN7PR18MB5123 (15.20.7587.030)")
LOGON_ERRORS = (("InvalidUserNameOrPassword", "50126"), ("UserStrongAuthClientAuthNRequiredInterrupt", "50074"),
                ("DeviceAuthenticationRequired", "50097"), ("UserAccountNotFound", "50034"), ("InvalidPasswordExpiredPassword", "50055"))
ADMIN_CMDLETS = (
    ("Set-Mailbox", ("Identity", "ForwardingSmtpAddress", "DeliverToMailboxAndForward")),
    ("Add-MailboxPermission", ("Identity", "User", "AccessRights", "InheritanceType")),
    ("New-InboxRule", ("Mailbox", "Name", "MoveToFolder", "From")),
    ("Set-TransportRule", ("Identity", "Priority", "SetSCL")),
    ("Set-CASMailbox", ("Identity", "OWAEnabled")),  # role grants are attack stories (simulator/stories.py)
    ("Set-OrganizationConfig", ("AuditDisabled",)),
)
DIRECTORY_OPERATIONS = ("Add user.", "Update user.", "Add member to group.", "Reset user password.", "Update application.",
                        "Add service principal.", "Update group.", "Delete user.")  # consent: simulator/stories.py
SYSTEM_USER_SHAREPOINT = "SHAREPOINT\\system"
SYSTEM_USER_EXCHANGE = "NT AUTHORITY\\SYSTEM (Microsoft.Exchange.ServiceHost)"


@dataclass(frozen=True)
class Quirks:
    """Probabilities of the shape variations of "Normalization pitfalls" (all per record)."""

    ipv6_rate: float = 0.15
    ip_port_rate: float = 0.12  # "203.0.113.5:51000" / "[2001:db8::5]:443" on workloads that do it
    null_client_ip_rate: float = 0.05  # Entra directory events with ClientIP null
    system_user_rate: float = 0.03
    string_parameters_rate: float = 0.1  # Exchange admin Parameters as one string
    unknown_record_type_rate: float = 0.02  # of Audit.General
    hostname_ip_rate: float = 0.01  # ClientIP holding a host name


class User:
    __slots__ = ("upn", "display", "puid", "sid", "oid", "mailbox", "ips", "agent", "os", "browser", "admin", "guest")

    def __init__(self, **values: Any) -> None:
        for name, value in values.items():
            setattr(self, name, value)


def new_guid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


class Population:
    """Pools drawn once per generator from its seeded RNG; `pick_user` is Zipf-skewed."""

    def __init__(self, rng: random.Random, tenant_id: str, domain: str, users: int, zipf_exponent: float, quirks: Quirks) -> None:
        self.rng = rng
        self.tenant_id = tenant_id
        self.domain = domain  # e.g. contoso.onmicrosoft.com
        self.mail_domain = domain.split(".", 1)[0] + ".com"  # contoso.com
        self.sp_host = f"https://{domain.split('.', 1)[0]}.sharepoint.com"
        self.od_host = f"https://{domain.split('.', 1)[0]}-my.sharepoint.com"
        self.quirks = quirks
        self.users = [self._user(i) for i in range(max(users, 2))]
        admins = rng.sample(range(len(self.users)), max(1, len(self.users) // 50))
        for index in admins:
            self.users[index].admin = True
        self.admins = [self.users[i] for i in admins]
        weights = [1.0 / (rank + 1) ** zipf_exponent for rank in range(len(self.users))]
        self.user_cum = list(itertools.accumulate(weights))
        self.site_ids = {site: (new_guid(rng), new_guid(rng), new_guid(rng)) for site in SITES}  # site, web, list
        self.public_ips = [f"203.0.113.{rng.randrange(1, 255)}" for _ in range(40)]  # unfamiliar, for spray attempts

    def _user(self, index: int) -> User:
        rng = self.rng
        first = FIRST_NAMES[index % len(FIRST_NAMES)]
        last = LAST_NAMES[(index // len(FIRST_NAMES) + index) % len(LAST_NAMES)]
        suffix = "" if index < len(FIRST_NAMES) * len(LAST_NAMES) else str(index // (len(FIRST_NAMES) * len(LAST_NAMES)))
        guest = rng.random() < 0.03
        if guest:
            upn = f"{first.lower()}.{last.lower()}{suffix}_{rng.choice(GUEST_DOMAINS)}#EXT#@{self.domain}"
        else:
            upn = f"{first.lower()}.{last.lower()}{suffix}@{self.mail_domain}"
        ips = [f"{rng.choice(('192.0.2', '198.51.100', '203.0.113'))}.{rng.randrange(1, 255)}" for _ in range(rng.randint(1, 3))]
        if rng.random() < self.quirks.ipv6_rate * 2:
            ips.append(f"2001:db8:{rng.randrange(1, 0xffff):x}:{rng.randrange(0, 0xff):x}::{rng.randrange(1, 0xfff):x}")
        agent, os_name, browser = rng.choice(BROWSER_AGENTS)
        return User(
            upn=upn, display=f"{first} {last}", puid=f"1003{rng.getrandbits(48):012X}",
            sid=f"S-1-5-21-{rng.randrange(10**9, 4 * 10**9)}-{rng.randrange(10**9, 4 * 10**9)}-{rng.randrange(10**9, 4 * 10**9)}-{1000 + index}",
            oid=new_guid(rng), mailbox=new_guid(rng), ips=ips, agent=agent, os=os_name, browser=browser, admin=False, guest=guest,
        )

    def pick_user(self) -> User:
        rng = self.rng
        return self.users[bisect.bisect_left(self.user_cum, rng.random() * self.user_cum[-1])]

    def ip(self, user: User, ports: bool) -> str:
        """A client IP in one of the "Normalization pitfalls" shapes (ports/brackets only where the workload shows them)."""
        rng = self.rng
        ip = rng.choice(user.ips)
        if ports and rng.random() < self.quirks.ip_port_rate:
            return f"[{ip}]:{rng.randrange(1024, 65535)}" if ":" in ip else f"{ip}:{rng.randrange(1024, 65535)}"
        return ip


def _props(**values: Any) -> list[dict[str, str]]:
    return [{"Name": name, "Value": value} for name, value in values.items()]


def _base(p: Population, record_type: int, operation: str, workload: str, user_id: str, user_key: str, user_type: int,
          when: str, rid: str, client_ip: str | None) -> Record:
    # Key order mirrors real records: the common schema first ("Common fields").
    return {"CreationTime": when, "Id": rid, "Operation": operation, "OrganizationId": p.tenant_id, "RecordType": record_type,
            "UserKey": user_key, "UserType": user_type, "Version": 1, "Workload": workload, "ClientIP": client_ip, "UserId": user_id}


# ---------------------------------------------------------------------------- Entra ID ("Fields per workload")
def aad_logon(p: Population, u: User, when: str, rid: str) -> Record:
    rng = p.rng
    failed = rng.random() < 0.14
    app_id, _app_name, resource = rng.choice(APPS)
    unknown = failed and rng.random() < 0.2  # password spray against a name that does not exist
    ip = rng.choice(p.public_ips) if unknown else p.ip(u, ports=False)
    error, number = rng.choice(LOGON_ERRORS[:3]) if failed else ("", "0")
    if unknown:
        error, number = LOGON_ERRORS[3]
    user_id = f"{rng.choice(FIRST_NAMES).lower()}{rng.randrange(100)}@{p.mail_domain}" if unknown else u.upn
    record = _base(p, 15, "UserLoginFailed" if failed else "UserLoggedIn", "AzureActiveDirectory", user_id,
                   "Not Available" if unknown else f"{u.puid}@{p.domain}", 0, when, rid, ip)
    record["ResultStatus"] = "Failed" if failed else "Succeeded"
    record.update({
        "ObjectId": resource,
        "AzureActiveDirectoryEventType": 1,
        "ExtendedProperties": _props(ResultStatusDetail="Success" if not failed else "Redirect", UserAgent=u.agent,
                                     UserAuthenticationMethod=str(rng.choice((1, 3, 4, 16))), RequestType="OAuth2:Authorize",
                                     KeepMeSignedIn=rng.choice(("True", "False"))),
        "ModifiedProperties": [],
        "Actor": [{"ID": u.oid, "Type": 0}, {"ID": user_id, "Type": 5}] + ([] if unknown else [{"ID": u.puid, "Type": 3}]),
        "ActorContextId": p.tenant_id,
        "ActorIpAddress": ip,
        "InterSystemsId": new_guid(rng),
        "IntraSystemId": new_guid(rng),
        "SupportTicketId": "",
        "Target": [{"ID": resource, "Type": 0}],
        "TargetContextId": p.tenant_id,
        "ApplicationId": app_id,
        "DeviceProperties": _props(OS=u.os, BrowserType=u.browser, IsCompliantAndManaged=rng.choice(("True", "False")),
                                   SessionId=new_guid(rng)),
        "ErrorNumber": number,
    })
    if failed:
        record["LogonError"] = error
    return record


def aad_directory(p: Population, u: User, when: str, rid: str) -> Record:
    rng = p.rng
    actor = rng.choice(p.admins)
    target = p.pick_user()
    operation = rng.choice(DIRECTORY_OPERATIONS)
    by_service = rng.random() < p.quirks.system_user_rate * 3
    actor_id = "ServicePrincipal_" + new_guid(rng) if by_service else actor.upn
    # "Common fields": "null for some Entra events" — directory changes often carry no client IP.
    ip = None if rng.random() < max(p.quirks.null_client_ip_rate, 0.0) * 6 else (p.ip(actor, ports=False) if rng.random() < 0.5 else "")
    record = _base(p, 8, operation, "AzureActiveDirectory", actor_id, "Not Available" if by_service else f"{actor.puid}@{p.domain}",
                   4 if by_service else 0, when, rid, ip)
    record["ResultStatus"] = "Success"
    # Entra writes JSON-in-a-string values with CRLF indentation.
    new_value = rng.choice(("[\r\n  true\r\n]", f"[\r\n  \"{target.display}\"\r\n]", f"[\r\n  \"{u.display}\"\r\n]"))
    record.update({
        "ObjectId": target.upn,
        "AzureActiveDirectoryEventType": 1,
        "ExtendedProperties": _props(additionalDetails="{\"UserType\":\"Member\"}", extendedAuditEventCategory="User"),
        "ModifiedProperties": [
            {"Name": "AccountEnabled", "NewValue": new_value, "OldValue": "[]"},
            {"Name": "Included Updated Properties", "NewValue": "AccountEnabled, DisplayName", "OldValue": ""},
            {"Name": "TargetId.UserType", "NewValue": "Member", "OldValue": ""},
        ],
        "Actor": [{"ID": actor_id, "Type": 5}, {"ID": actor.puid, "Type": 3}, {"ID": f"User_{actor.oid}", "Type": 2}],
        "ActorContextId": p.tenant_id,
        "InterSystemsId": new_guid(rng),
        "IntraSystemId": new_guid(rng),
        "SupportTicketId": "",
        "Target": [{"ID": f"User_{target.oid}", "Type": 2}, {"ID": target.oid, "Type": 2}, {"ID": "User", "Type": 2},
                   {"ID": target.upn, "Type": 5}, {"ID": target.puid, "Type": 3}],
        "TargetContextId": p.tenant_id,
    })
    return record


# ---------------------------------------------------------------------------- Exchange ("Fields per workload")
def _mailbox_fields(p: Population, u: User, ip: str) -> Record:
    rng = p.rng
    return {
        "AppId": rng.choice(("00000002-0000-0ff1-ce00-000000000000", "d3590ed6-52b3-4102-aeff-aad2292ab01c", "")),
        "ClientAppId": "",
        "ClientIPAddress": ip,
        "ClientInfoString": rng.choice(CLIENT_INFO),
        "ExternalAccess": False,
        "InternalLogonType": 0,
        "LogonType": 0,
        "LogonUserSid": u.sid,
        "MailboxGuid": u.mailbox,
        "MailboxOwnerSid": u.sid,
        "MailboxOwnerUPN": u.upn,
        "OrganizationName": p.domain,
        "OriginatingServer": rng.choice(SERVERS) + "\r\n",  # "Normalization pitfalls": ends with CRLF
        "SessionId": new_guid(rng),
    }


def _message_id(p: Population) -> str:
    server = p.rng.choice(SERVERS).split(" ", 1)[0]
    return f"<{server}{p.rng.getrandbits(40):010X}@{server}.eurprd09.prod.outlook.com>"


def exchange_mail_items_accessed(p: Population, u: User, when: str, rid: str) -> Record:
    rng = p.rng
    ip = p.ip(u, ports=False)
    record = _base(p, 50, "MailItemsAccessed", "Exchange", u.upn, u.puid, 0, when, rid, ip)
    record["ResultStatus"] = "Succeeded"
    record["AppAccessContext"] = {"AADSessionId": new_guid(rng), "IssuedAtTime": when, "UniqueTokenId": f"{rng.getrandbits(96):024x}"}
    record.update(_mailbox_fields(p, u, ip))
    sync = rng.random() < 0.25
    record["OperationProperties"] = _props(MailAccessType="Sync" if sync else "Bind", IsThrottled="False")
    folder = rng.choice(MAIL_FOLDERS)
    if sync:  # "Fields per workload": for Sync, FolderItems is absent
        record["Folders"] = [{"Id": f"LgAAAAD{rng.getrandbits(64):016x}", "Path": folder}]
    else:
        items = [{"Id": f"RgAAAAD{rng.getrandbits(64):016x}", "InternetMessageId": _message_id(p), "SizeInBytes": rng.randrange(2_000, 400_000)}
                 for _ in range(rng.randint(1, 3))]
        record["Folders"] = [{"Id": f"LgAAAAD{rng.getrandbits(64):016x}", "Path": folder, "FolderItems": items}]
    record["OperationCount"] = len(record["Folders"][0].get("FolderItems", [])) or 1
    return record


def exchange_item(p: Population, u: User, when: str, rid: str) -> Record:
    rng = p.rng
    ip = p.ip(u, ports=rng.random() < 0.3)
    operation = rng.choice(("Send", "Update", "Create", "SendAs", "MailboxLogin"))
    record = _base(p, 2, operation, "Exchange", u.upn, u.puid, 0, when, rid, ip)
    record["ResultStatus"] = "Succeeded"
    record.update(_mailbox_fields(p, u, ip))
    record["Item"] = {"Id": f"RgAAAAD{rng.getrandbits(64):016x}", "InternetMessageId": _message_id(p), "IsRecord": False,
                      "ParentFolder": {"Id": f"LgAAAAD{rng.getrandbits(64):016x}", "Path": rng.choice(MAIL_FOLDERS)},
                      "SizeInBytes": rng.randrange(2_000, 200_000), "Subject": rng.choice(SUBJECTS)}
    if operation == "Update":
        record["ModifiedProperties"] = rng.sample(("Subject", "Body", "Importance", "Categories"), 2)  # "Normalization pitfalls": list of strings
    return record


def exchange_item_group(p: Population, u: User, when: str, rid: str) -> Record:
    rng = p.rng
    ip = p.ip(u, ports=False)
    operation = rng.choice(("MoveToDeletedItems", "SoftDelete", "HardDelete", "Move"))
    record = _base(p, 3, operation, "Exchange", u.upn, u.puid, 0, when, rid, ip)
    record["ResultStatus"] = "Succeeded"
    record.update(_mailbox_fields(p, u, ip))
    folder = {"Id": f"LgAAAAD{rng.getrandbits(64):016x}", "Path": "\\Inbox"}
    record["AffectedItems"] = [{"Id": f"RgAAAAD{rng.getrandbits(64):016x}", "InternetMessageId": _message_id(p), "ParentFolder": folder,
                                "Subject": rng.choice(SUBJECTS)} for _ in range(rng.randint(1, 3))]
    record["CrossMailboxOperation"] = False
    record["DestFolder"] = {"Id": f"LgAAAAD{rng.getrandbits(64):016x}", "Path": "\\Deleted Items"}
    record["Folder"] = folder
    return record


def exchange_admin(p: Population, u: User, when: str, rid: str) -> Record:
    """RecordType 1: ResultStatus "True"/"False" strings, Parameters a list — or one string ("Normalization pitfalls")."""
    rng = p.rng
    cmdlet, names = rng.choice(ADMIN_CMDLETS)
    system = rng.random() < p.quirks.system_user_rate * 4
    actor = rng.choice(p.admins)
    target = p.pick_user()
    values = {"Identity": target.upn, "Mailbox": target.upn, "User": actor.upn, "ForwardingSmtpAddress": f"smtp:{target.display.replace(' ', '.').lower()}@{p.mail_domain}",
              "DeliverToMailboxAndForward": "True", "AccessRights": "ReadPermission", "InheritanceType": "All", "Name": "Move newsletters",
              "MoveToFolder": "Archive", "From": "news@adatum.com", "Priority": "0", "SetSCL": "-1", "Role": "Mail Recipients",
              "AuditDisabled": "False", "OWAEnabled": "True"}
    parameters: Any = [{"Name": name, "Value": values[name]} for name in names]
    if rng.random() < p.quirks.string_parameters_rate:
        parameters = " ".join(f"-{name} \"{values[name]}\"" for name in names)
    ip = "" if system else p.ip(actor, ports=True)
    record = _base(p, 1, cmdlet, "Exchange", SYSTEM_USER_EXCHANGE if system else actor.upn,
                   SYSTEM_USER_EXCHANGE if system else actor.puid, 3 if system else 2, when, rid, ip)
    record["ResultStatus"] = "False" if rng.random() < 0.04 else "True"
    record.update({
        "ObjectId": target.upn if names[0] in ("Identity", "Mailbox") else "",
        "AppId": "fb78d390-0c51-40cd-8e17-fdbfab77341b" if not system else "",
        "ClientAppId": "",
        "ExternalAccess": system,
        "OrganizationName": p.domain,
        "OriginatingServer": rng.choice(SERVERS) + "\r\n",
        "Parameters": parameters,
        "SessionId": new_guid(rng),
        "RequestId": new_guid(rng),
    })
    return record


# ---------------------------------------------------------------------------- SharePoint / OneDrive ("Fields per workload")
SP_OPERATIONS = (
    ("FileAccessed", 6, "File", 30), ("FileModified", 6, "File", 10), ("FileDownloaded", 6, "File", 8), ("FileUploaded", 6, "File", 6),
    ("FilePreviewed", 6, "File", 8), ("FileDeleted", 6, "File", 2), ("FileSyncDownloadedFull", 6, "File", 4), ("PageViewed", 4, "Page", 14),
    ("SharingSet", 14, "File", 2), ("AnonymousLinkCreated", 14, "File", 1), ("ListItemUpdated", 36, "File", 3),
    ("SearchQueryPerformed", 4, "Web", 2), ("FolderCreated", 6, "Folder", 1),
)
_SP_CUM = list(itertools.accumulate(w for *_, w in SP_OPERATIONS))


def sharepoint(p: Population, u: User, when: str, rid: str) -> Record:
    """No ResultStatus; top-level UserAgent; IPv4/IPv6 with ports and brackets ("Fields per workload", "Normalization pitfalls")."""
    rng = p.rng
    operation, record_type, item_type, _ = SP_OPERATIONS[bisect.bisect_left(_SP_CUM, rng.random() * _SP_CUM[-1])]
    onedrive = rng.random() < 0.4
    system = rng.random() < p.quirks.system_user_rate
    name, ext = rng.choice(FILES)
    folder = rng.choice(FOLDERS)
    if onedrive:
        owner = u.upn.split("@")[0].replace(".", "_").replace("#", "_") + "_" + p.mail_domain.replace(".", "_")
        site_url = f"{p.od_host}/personal/{owner}/"
        folder = folder.replace("Shared Documents", "Documents")
        site_id, web_id, list_id = p.site_ids[SITES[zlib.crc32(owner.encode()) % len(SITES)]]
    else:
        site = rng.choice(SITES)
        site_url = f"{p.sp_host}/sites/{site}/"
        site_id, web_id, list_id = p.site_ids[site]
    file_name = f"{name}.{ext}"
    ip = "client.example.net" if rng.random() < p.quirks.hostname_ip_rate else p.ip(u, ports=True)
    agent = u.agent if rng.random() < 0.6 else rng.choice(CLIENT_AGENTS)
    if system:
        record = _base(p, record_type, operation, "OneDrive" if onedrive else "SharePoint", SYSTEM_USER_SHAREPOINT,
                       SYSTEM_USER_SHAREPOINT, 4, when, rid, "")
        agent = ""
    else:
        record = _base(p, record_type, operation, "OneDrive" if onedrive else "SharePoint", u.upn,
                       f"i:0h.f|membership|{u.puid.lower()}@live.com", 0, when, rid, ip)
    record.update({
        "ObjectId": f"{site_url}{folder}/{file_name}" if item_type != "Page" else f"{site_url}SitePages/Home.aspx",
        "CorrelationId": new_guid(rng),
        "EventSource": "ObjectModel" if record_type == 36 else "SharePoint",
        "ItemType": item_type,  # "Enums": documented as int, emitted as a string
        "ListId": list_id,
        "ListItemUniqueId": new_guid(rng),
        "Site": site_id,
        "UserAgent": agent,
        "WebId": web_id,
        "HighPriorityMediaProcessing": False,
        "SourceFileExtension": ext,
        "SiteUrl": site_url,
        "SourceFileName": file_name,
        "SourceRelativeUrl": folder,
        "ApplicationDisplayName": rng.choice(("Microsoft Office Online", "OneDrive SyncEngine", "Microsoft Teams", "SharePoint Online Web Client Extensibility")),
        "AuthenticationType": rng.choice(("OAuth", "FormsCookie")),
        "GeoLocation": "NAM",
        "IsManagedDevice": rng.random() < 0.6,
        "BrowserName": u.browser,
        "Platform": "WinDesktop" if u.os.startswith("Windows") else u.os,
    })
    if record_type == 14:
        guest = rng.choice(GUEST_DOMAINS)
        record.update({"TargetUserOrGroupName": f"partner@{guest}", "TargetUserOrGroupType": "Guest",
                       "EventData": "<Type>Edit</Type><MembersCanShare>Yes</MembersCanShare>"})
    if operation in ("FileDownloaded", "FileUploaded", "FileSyncDownloadedFull"):
        record["FileSizeBytes"] = rng.randrange(10_000, 5_000_000)
    return record


# ---------------------------------------------------------------------------- Audit.General ("Content types")
def teams(p: Population, u: User, when: str, rid: str) -> Record:
    rng = p.rng
    operation = rng.choice(("TeamsSessionStarted", "MessageCreatedHasLink", "ChatCreated", "MemberAdded", "MeetingParticipantDetail", "ChannelAdded"))
    record = _base(p, 25, operation, "MicrosoftTeams", u.upn, new_guid(rng), 0, when, rid, p.ip(u, ports=False))
    other = p.pick_user()
    team = rng.choice(SITES)
    record.update({
        "CommunicationType": rng.choice(("Team", "OneOnOne", "GroupChat")),
        "Members": [{"DisplayName": other.display, "Role": 1, "UPN": other.upn}],
        "TeamName": team,
        "TeamGuid": f"19:{rng.getrandbits(64):016x}@thread.tacv2",
        "AADGroupId": p.site_ids[team][0],
        "ChatThreadId": f"19:{rng.getrandbits(80):020x}@thread.v2",
        "ItemName": rng.choice(("General", "Planning", "Announcements")),
        # "Normalization pitfalls": numbers as strings inside nested payloads
        "ExtraProperties": [{"Key": "TimeZone", "Value": "Europe/Berlin"}, {"Key": "OsName", "Value": u.os},
                            {"Key": "OsVersion", "Value": "10.0.22631"}, {"Key": "Country", "Value": "us"}],
        "AppAccessContext": {"AADSessionId": new_guid(rng), "ClientAppId": "1fec8e78-bce4-4aaf-ab1b-5451cc387264",
                             "ClientAppName": "Microsoft Teams", "CorrelationId": new_guid(rng), "UniqueTokenId": f"{rng.getrandbits(96):024x}"},
    })
    return record


def power_bi(p: Population, u: User, when: str, rid: str) -> Record:
    rng = p.rng
    activity = rng.choice(("ViewReport", "ViewDashboard", "ExportReport", "ViewTile", "GetDatasets"))
    record = _base(p, 20, activity, "PowerBI", u.upn, u.puid, 0, when, rid, p.ip(u, ports=False))
    report = rng.choice(("Sales Overview", "Headcount", "Pipeline by Region", "Cost Centers"))
    record.update({
        "UserAgent": u.agent,
        "Activity": activity,
        "ItemName": report,
        "WorkSpaceName": rng.choice(SITES),
        "DatasetName": report + " Model",
        "ReportName": report,
        "CapacityId": "A1B2C3D4-0000-4000-8000-0000000000C1",
        "CapacityName": "Premium Per User - Reserved",
        "WorkspaceId": new_guid(rng),
        "ObjectId": report,
        "DatasetId": new_guid(rng),
        "ReportId": new_guid(rng),
        "ArtifactId": new_guid(rng),
        "ArtifactName": report,
        "IsSuccess": True,
        "ReportType": "PowerBIReport",
        "RequestId": new_guid(rng),
        "ActivityId": new_guid(rng),
        "DistributionMethod": "Workspace",
        "ConsumptionMethod": "Power BI Web",
        "ArtifactKind": "Report",
        "RefreshEnforcementPolicy": 0,
    })
    return record


def security_alert(p: Population, u: User, when: str, rid: str) -> Record:
    """Alerts: a system user and a JSON-in-a-string `Data` with a duplicated key ("Normalization pitfalls")."""
    rng = p.rng
    alert = new_guid(rng)
    record = _base(p, 40, "AlertTriggered", "SecurityComplianceCenter", "SecurityComplianceAlerts", "SecurityComplianceAlerts", 4, when, rid, None)
    del record["ClientIP"]
    name = rng.choice(("Suspicious email forwarding activity", "Unusual volume of file deletion", "User restricted from sending email"))
    record.update({
        "ResultStatus": "Succeeded",
        "ObjectId": alert,
        "AlertId": alert,
        "AlertType": "System",
        "Name": name,
        "PolicyId": new_guid(rng),
        "Status": "Active",
        "Severity": rng.choice(("Low", "Medium", "High")),
        "Category": "ThreatManagement",
        "Source": "Office 365 Security & Compliance",
        "Comments": "New alert",
        "Data": (f"{{\"etype\":\"User\",\"eid\":\"{u.upn}\",\"op\":\"{name}\",\"tdc\":\"1\",\"ts\":\"{when}.0000000Z\","
                 f"\"ts\":\"{when}Z\",\"ad\":\"{name} by {u.display}\",\"lon\":\"AlertTriggered\"}}"),
        "AlertEntityId": u.upn,
        "EntityType": "User",
    })
    return record


def threat_intelligence(p: Population, u: User, when: str, rid: str) -> Record:
    rng = p.rng
    record = _base(p, 28, "TIMailData", "ThreatIntelligence", "ThreatIntel", "ThreatIntel", 4, when, rid, None)
    del record["ClientIP"]
    record.update({
        "AttachmentData": [{"FileName": "invoice.html", "FileType": "html", "FileVerdict": 1, "SHA256": f"{rng.getrandbits(256):064x}"}],
        "DeliveryAction": rng.choice(("Blocked", "Delivered", "Junked")),
        "Directionality": "Inbound",
        "InternetMessageId": _message_id(p),
        "MessageTime": when,
        "NetworkMessageId": new_guid(rng),
        "P1Sender": "billing@adatum.com",
        "P2Sender": "billing@adatum.com",
        "Recipients": [u.upn],
        "SenderIp": rng.choice(p.public_ips),
        "Subject": rng.choice(SUBJECTS),
        "Verdict": rng.choice(("Phish", "Malware", "Spam")),
        "PolicyAction": "MoveToJmf",
    })
    return record


def copilot(p: Population, u: User, when: str, rid: str) -> Record:
    rng = p.rng
    record = _base(p, 261, "CopilotInteraction", "Copilot", u.upn, u.puid, 0, when, rid, p.ip(u, ports=False))
    name, ext = rng.choice(FILES)
    record["CopilotEventData"] = {
        "AppHost": rng.choice(("Word", "Teams", "Outlook", "BizChat")),
        "Contexts": [{"Id": f"{p.sp_host}/sites/{rng.choice(SITES)}/Shared Documents/{name}.{ext}", "Type": ext}],
        "ThreadId": f"19:{rng.getrandbits(80):020x}@thread.v2",
        "AccessedResources": [{"Id": new_guid(rng), "Name": f"{name}.{ext}", "Type": ext, "Action": "Read"}],
        "Messages": [{"Id": str(rng.getrandbits(40)), "isPrompt": True}, {"Id": str(rng.getrandbits(40)), "isPrompt": False}],
    }
    return record


def forms(p: Population, u: User, when: str, rid: str) -> Record:
    rng = p.rng
    record = _base(p, 66, rng.choice(("ViewForm", "CreateForm", "ViewResponses")), "MicrosoftForms", u.upn, u.puid, 0, when, rid, p.ip(u, ports=False))
    record.update({"FormId": f"{rng.getrandbits(120):030x}", "FormName": rng.choice(("Team offsite survey", "IT satisfaction")),
                   "FormsUserType": rng.choice(("Admin", "Responder", "Viewer")), "SourceApp": "Microsoft Forms"})
    return record


def unknown_type(p: Population, u: User, when: str, rid: str) -> Record:
    """"RecordType values": new RecordTypes appear continually; clients must keep them. ClientIP may even be a host name."""
    rng = p.rng
    record = _base(p, 99999, "ExperimentalOperation", "FutureWorkload", u.upn, u.puid, 0, when, rid,
                   "client.example.net" if rng.random() < 0.3 else p.ip(u, ports=True))
    record.update({"FutureField": {"Nested": [1, "2", 3.5], "Flag": "true"}, "ResultStatus": "Success"})
    return record


# ---------------------------------------------------------------------------- DLP.All ("Content types")
def dlp(p: Population, u: User, when: str, rid: str) -> Record:
    """DlpRuleMatch / DlpRuleUndo / DlpInfo; UserKey is always "DlpAgent"."""
    rng = p.rng
    roll = rng.random()
    operation = "DlpRuleMatch" if roll < 0.85 else ("DlpRuleUndo" if roll < 0.9 else "DlpInfo")
    where = rng.choice(("Exchange", "SharePoint", "OneDrive", "Endpoint"))
    record_type = {"Exchange": 13, "SharePoint": 11, "OneDrive": 11, "Endpoint": 63}[where]
    record = _base(p, record_type, operation, where, u.upn, "DlpAgent", 4, when, rid, p.ip(u, ports=False))
    name, ext = rng.choice(FILES)
    policy = {
        "PolicyId": new_guid(rng), "PolicyName": "U.S. Financial Data",
        "Rules": [{
            "RuleId": new_guid(rng), "RuleName": "Low volume of content detected", "Actions": ["NotifyUser"],
            "ConditionsMatched": {"ConditionMatchedInNewScheme": True, "SensitiveInformation": [{
                "ClassifierType": "Content", "Confidence": 85, "Count": rng.randint(1, 5), "Location": "",
                "SensitiveInformationDetections": {"DetectedValues": [{"Name": "Credit Card Number", "Value": "4111111111111111"}],
                                                   "ResultsTruncated": False},
                "SensitiveInformationTypeName": "Credit Card Number", "SensitiveType": "50842eb7-edc8-4019-85dd-5a5c1f2bb085"}]},
            "ManagementRuleId": new_guid(rng), "RuleMode": "Enable", "Severity": rng.choice(("Low", "High"))}],
    }
    record.update({"IncidentId": new_guid(rng), "SensitiveInfoDetectionIsIncluded": True})
    if operation != "DlpInfo":
        record["PolicyDetails"] = [policy]
    if where == "Exchange":
        record["ObjectId"] = _message_id(p)
        record["ExchangeMetaData"] = {"BCC": [], "CC": [], "FileSize": rng.randrange(5_000, 90_000), "From": u.upn, "MessageID": record["ObjectId"],
                                      "RecipientCount": 1, "Sent": when, "Subject": rng.choice(SUBJECTS), "To": [p.pick_user().upn],
                                      "UniqueID": new_guid(rng)}
    else:
        url = f"{p.sp_host}/sites/{rng.choice(SITES)}/Shared Documents/{name}.{ext}"
        record["ObjectId"] = url
        record["SharePointMetaData"] = {"FileID": new_guid(rng), "FileName": f"{name}.{ext}", "FilePathUrl": url, "FileOwner": u.upn,
                                        "From": u.upn, "IsViewableByExternalUsers": False, "ItemCreationTime": when,
                                        "ItemLastModifiedTime": when, "SiteCollectionGuid": new_guid(rng), "UniqueId": new_guid(rng)}
    return record


Builder = Callable[[Population, User, str, str], Record]

# Per content type: (builder, weight). Weights are rough shares seen in busy tenants.
MIXES: dict[str, tuple[tuple[Builder, float], ...]] = {
    "Audit.AzureActiveDirectory": ((aad_logon, 0.85), (aad_directory, 0.15)),
    "Audit.Exchange": ((exchange_mail_items_accessed, 0.55), (exchange_item, 0.22), (exchange_item_group, 0.13), (exchange_admin, 0.10)),
    "Audit.SharePoint": ((sharepoint, 1.0),),
    "Audit.General": ((teams, 0.45), (power_bi, 0.2), (security_alert, 0.05), (threat_intelligence, 0.12), (copilot, 0.1),
                      (forms, 0.06), (unknown_type, 0.02)),
    "DLP.All": ((dlp, 1.0),),
}


class Mix:
    """Weighted builder choice for one content type."""

    def __init__(self, content_type: str, quirks: Quirks) -> None:
        entries = list(MIXES[content_type])
        if content_type == "Audit.General":
            entries = [(b, (quirks.unknown_record_type_rate if b is unknown_type else w)) for b, w in entries]
        self.builders = [b for b, _ in entries]
        self.cum = list(itertools.accumulate(w for _, w in entries))

    def pick(self, rng: random.Random) -> Builder:
        return self.builders[bisect.bisect_left(self.cum, rng.random() * self.cum[-1])]


def record_size(record: Record) -> int:
    return len(json.dumps(record, separators=(",", ":")))
