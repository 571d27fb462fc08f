"""Attack stories among normal traffic: the records a detection rule exists for (docs/alerts.md).

Each story is a short list of records, shaped like the service's (the fields the published rules
read: `Parameters`, `ExtendedProperties`, `ModifiedProperties`...), placed at a given moment and
published as one or more content blobs of their content type. `STORIES` names them; the rule each
one should set off is its `rule`. The headline five: a forwarding rule to an outside domain
(`forwarding`), a mass download (`mass-download`), a password spray (`password-spray`), a Global
Administrator grant (`global-admin`) and audit logging switched off (`audit-disabled`).

    from simulator import stories
    stories.publish(sim, "password-spray", when)          # one story, its blobs added to the simulator
    stories.publish_all(sim, start)                       # every story, a few minutes apart
    python -m simulator --live --stories                  # the same on top of the live feed (make run)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .records import new_guid

if TYPE_CHECKING:
    from .state import Simulator

Record = dict[str, Any]
ATTACKER_IPS = ("198.51.100.66", "198.51.100.67", "198.51.100.68")


@dataclass(frozen=True)
class Story:
    name: str
    rule: str  # the built-in rule it sets off (collector/alerts/rules.json)
    content_type: str
    build: Callable[[Cast, datetime], list[Record]]


class Cast:
    """Who takes part: the tenant's domain and a few named people, ids drawn from a seeded RNG."""

    def __init__(self, tenant_id: str, domain: str, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.tenant_id = tenant_id.lower()
        self.mail_domain = domain.split(".", 1)[0] + ".com"
        self.victim = f"megan.bowen@{self.mail_domain}"
        self.admin = f"adele.vance@{self.mail_domain}"
        self.sp_host = f"https://{domain.split('.', 1)[0]}.sharepoint.com"
        self.od_host = f"https://{domain.split('.', 1)[0]}-my.sharepoint.com"

    def user(self, i: int) -> str:
        return f"staff{i:03d}@{self.mail_domain}"

    def base(self, when: datetime, operation: str, record_type: int, workload: str, user: str, *, user_type: int = 0,
             ip: str = ATTACKER_IPS[0], result: str = "Succeeded") -> Record:
        return {"CreationTime": when.strftime("%Y-%m-%dT%H:%M:%S"), "Id": new_guid(self.rng), "Operation": operation,
                "OrganizationId": self.tenant_id, "RecordType": record_type, "ResultStatus": result, "UserKey": user,
                "UserType": user_type, "Version": 1, "Workload": workload, "ClientIP": ip, "UserId": user}


def _params(**values: Any) -> list[dict[str, Any]]:
    return [{"Name": name, "Value": value} for name, value in values.items()]


def _admin(cast: Cast, when: datetime, cmdlet: str, user: str | None = None, **parameters: Any) -> Record:
    record = cast.base(when, cmdlet, 1, "Exchange", user or cast.admin, user_type=2, result="True")
    record.update({"ObjectId": parameters.get("Identity", ""), "Parameters": _params(**parameters),
                   "OrganizationName": cast.mail_domain, "AppId": "fb78d390-0c51-40cd-8e17-fdbfab77341b"})
    return record


def forwarding(cast: Cast, when: datetime) -> list[Record]:
    return [_admin(cast, when, "New-InboxRule", cast.victim, Mailbox=cast.victim, Name="sync",
                   ForwardTo="collector@protonmail.example", StopProcessingRules="True")]


def phishing_rule(cast: Cast, when: datetime) -> list[Record]:
    return [_admin(cast, when, "New-InboxRule", cast.victim, Mailbox=cast.victim, Name=".",
                   SubjectOrBodyContainsWords="invoice;payment;security", MoveToFolder="RSS Subscriptions")]


def transport_rule(cast: Cast, when: datetime) -> list[Record]:
    return [_admin(cast, when, "New-TransportRule", Name="Compliance copy", BlindCopyTo=f"archive@{cast.mail_domain}",
                   SentToScope="InOrganization")]


def delegation(cast: Cast, when: datetime) -> list[Record]:
    return [_admin(cast, when, "Add-MailboxPermission", Identity=cast.victim, User=cast.user(9), AccessRights="FullAccess",
                   InheritanceType="All")]


def global_admin(cast: Cast, when: datetime) -> list[Record]:
    record = cast.base(when, "Add member to role.", 8, "AzureActiveDirectory", cast.admin, ip="")
    record.update({"ObjectId": cast.user(13), "ResultStatus": "Success", "AzureActiveDirectoryEventType": 1,
                   "ModifiedProperties": [
                       {"Name": "Role.ObjectID", "NewValue": "62e90394-69f5-4237-9190-012177145e10", "OldValue": ""},
                       {"Name": "Role.DisplayName", "NewValue": "Global Administrator", "OldValue": ""},
                       {"Name": "Role.TemplateId", "NewValue": "62e90394-69f5-4237-9190-012177145e10", "OldValue": ""}],
                   "Target": [{"ID": cast.user(13), "Type": 5}], "Actor": [{"ID": cast.admin, "Type": 5}]})
    return [record]


def audit_disabled(cast: Cast, when: datetime) -> list[Record]:
    return [_admin(cast, when, "Set-AdminAuditLogConfig", UnifiedAuditLogIngestionEnabled="False")]


def policy_tampering(cast: Cast, when: datetime) -> list[Record]:
    return [_admin(cast, when, "Remove-AntiPhishPolicy", Identity="Office365 AntiPhish Default", Confirm="False")]


def domain_change(cast: Cast, when: datetime) -> list[Record]:
    return [_admin(cast, when, "Set-AcceptedDomain", Identity=cast.mail_domain, DomainType="InternalRelay")]


def _file(cast: Cast, when: datetime, operation: str, user: str, name: str, *, agent: str, session: str,
          ip: str = ATTACKER_IPS[1]) -> Record:
    owner = user.split("@")[0].replace(".", "_") + "_" + cast.mail_domain.replace(".", "_")
    site = f"{cast.od_host}/personal/{owner}/"
    record = cast.base(when, operation, 6, "OneDrive", user, ip=ip)
    del record["ResultStatus"]
    record.update({"ObjectId": f"{site}Documents/{name}", "SiteUrl": site, "SourceFileName": name,
                   "SourceFileExtension": name.rsplit(".", 1)[-1], "SourceRelativeUrl": "Documents", "UserAgent": agent,
                   "ItemType": "File", "EventSource": "SharePoint", "AppAccessContext": {"AADSessionId": session}})
    return record


def mass_download(cast: Cast, when: datetime) -> list[Record]:
    session = new_guid(cast.rng)
    return [_file(cast, when + timedelta(seconds=4 * i), "FileDownloaded", cast.victim, f"Contract-{i:03d}.pdf",
                  agent="Mozilla/5.0 (X11; Linux x86_64) rclone/v1.66", session=session) for i in range(30)]


def powershell_access(cast: Cast, when: datetime) -> list[Record]:
    return [_file(cast, when, "FileAccessed", cast.victim, "Salaries.xlsx", session=new_guid(cast.rng),
                  agent="Mozilla/5.0 (Windows NT; Windows NT 10.0; en-US) WindowsPowerShell/5.1.22621.2506")]


def malware(cast: Cast, when: datetime) -> list[Record]:
    record = _file(cast, when, "FileMalwareDetected", cast.victim, "invoice.exe", agent="", session=new_guid(cast.rng))
    record["VirusInfo"] = "Trojan:Win32/Wacatac"
    return [record]


def _mail_read(cast: Cast, when: datetime, count: int, throttled: bool) -> Record:
    record = cast.base(when, "MailItemsAccessed", 50, "Exchange", cast.victim, ip=ATTACKER_IPS[2])
    record.update({"MailboxOwnerUPN": cast.victim, "ClientAppId": "00000003-0000-0000-c000-000000000000",
                   "OperationCount": count, "LogonType": 0,
                   "OperationProperties": _params(MailAccessType="Bind", IsThrottled="True" if throttled else "False"),
                   "Folders": [{"Path": "\\Inbox", "FolderItems": [{"InternetMessageId": f"<m{i}@x>"} for i in range(3)]}]})
    return record


def mail_throttled(cast: Cast, when: datetime) -> list[Record]:
    return [_mail_read(cast, when, 1000, True)]


def mail_bulk_read(cast: Cast, when: datetime) -> list[Record]:
    return [_mail_read(cast, when + timedelta(minutes=i), 30, False) for i in range(4)]


def _failed_login(cast: Cast, when: datetime, user: str, ip: str, error: str = "InvalidUserNameOrPassword") -> Record:
    record = cast.base(when, "UserLoginFailed", 15, "AzureActiveDirectory", user, ip=ip, result="Failed")
    record.update({"ObjectId": "00000003-0000-0000-c000-000000000000", "LogonError": error, "ErrorNumber": "50126",
                   "ExtendedProperties": _params(RequestType="OAuth2:Token", ResultStatusDetail="Success",
                                                 UserAgent="python-requests/2.31.0"),
                   "ApplicationId": "1b730954-1685-4b74-9bfd-dac224a7b894"})
    return record


def password_spray(cast: Cast, when: datetime) -> list[Record]:
    return [_failed_login(cast, when + timedelta(seconds=5 * i), cast.user(i), ATTACKER_IPS[0]) for i in range(20)]


def credential_stuffing(cast: Cast, when: datetime) -> list[Record]:
    return [_failed_login(cast, when + timedelta(seconds=10 * i), cast.user(100 + i % 10), ATTACKER_IPS[i % 3])
            for i in range(18)]


def password_guessing(cast: Cast, when: datetime) -> list[Record]:
    return [_failed_login(cast, when + timedelta(seconds=6 * i), cast.victim, ATTACKER_IPS[1]) for i in range(22)]


def lockouts(cast: Cast, when: datetime) -> list[Record]:
    return [_failed_login(cast, when + timedelta(seconds=8 * i), cast.user(200 + i), f"192.0.2.{10 + i}", "IdsLocked")
            for i in range(12)]


def _login(cast: Cast, when: datetime, user: str, **extended: str) -> Record:
    record = cast.base(when, "UserLoggedIn", 15, "AzureActiveDirectory", user, ip=ATTACKER_IPS[2])
    record.update({"ObjectId": "00000002-0000-0ff1-ce00-000000000000", "ExtendedProperties": _params(**extended),
                   "DeviceProperties": _params(OS="Windows", IsCompliant="False", IsCompliantAndManaged="False"),
                   "ApplicationId": "d3590ed6-52b3-4102-aeff-aad2292ab01c"})
    return record


def ropc(cast: Cast, when: datetime) -> list[Record]:
    return [_login(cast, when, cast.user(31), RequestType="OAuth2:Token", UserAgent="BAV2ROPC")]


def device_code(cast: Cast, when: datetime) -> list[Record]:
    return [_login(cast, when, cast.user(32), RequestType="Cmsi:Cmsi", UserAgent="Mozilla/5.0")]


def consent(cast: Cast, when: datetime) -> list[Record]:
    record = cast.base(when, "Consent to application.", 8, "AzureActiveDirectory", cast.user(33), ip="")
    record.update({"ObjectId": "MailSync Pro", "ResultStatus": "Success",
                   "ModifiedProperties": [{"Name": "ConsentAction.Permissions", "NewValue": "Mail.ReadWrite offline_access",
                                           "OldValue": ""}]})
    return [record]


def teams_deleted(cast: Cast, when: datetime) -> list[Record]:
    out = []
    for i, team in enumerate(("Finance", "Legal", "Board", "M&A", "Payroll")):
        record = cast.base(when + timedelta(minutes=3 * i), "TeamDeleted", 25, "MicrosoftTeams", cast.admin)
        record.update({"TeamName": team, "TeamGuid": f"19:{new_guid(cast.rng)}@thread.tacv2"})
        out.append(record)
    return out


def sharing_opened(cast: Cast, when: datetime) -> list[Record]:
    record = cast.base(when, "SharingPolicyChanged", 4, "SharePoint", cast.admin)
    record.update({"ObjectId": cast.sp_host, "ModifiedProperties": [
        {"Name": "ShareUsingAnonymousLinks", "OldValue": "False", "NewValue": "True"}]})
    return [record]


def site_admin(cast: Cast, when: datetime) -> list[Record]:
    record = cast.base(when, "SiteCollectionAdminAdded", 14, "SharePoint", cast.admin)
    record.update({"ObjectId": f"{cast.sp_host}/sites/Finance", "TargetUserOrGroupName": cast.user(40)})
    return [record]


def _copilot(cast: Cast, when: datetime, user: str, host: str, ip: str) -> Record:
    record = cast.base(when, "CopilotInteraction", 261, "Copilot", user, ip=ip)
    del record["ResultStatus"]
    record.update({"AppIdentity": "Copilot.MicrosoftCopilot.BizChat",
                   "CopilotEventData": {"AppHost": host, "ThreadId": f"19:{new_guid(cast.rng)}@thread.v2",
                                        "Messages": [{"Id": "1", "isPrompt": True}]}})
    return record


def copilot_burst(cast: Cast, when: datetime) -> list[Record]:
    return [_copilot(cast, when + timedelta(seconds=6 * i), cast.user(50), "BizChat", "192.0.2.50") for i in range(35)]


def copilot_spread(cast: Cast, when: datetime) -> list[Record]:
    hosts = ("Word", "Excel", "Teams", "Outlook", "BizChat")
    return [_copilot(cast, when + timedelta(minutes=6 * i), cast.user(51), hosts[i % 5], f"198.51.100.{100 + i}")
            for i in range(8)]


STORIES: dict[str, Story] = {story.name: story for story in (
    Story("forwarding", "inbox-forwarding-external", "Audit.Exchange", forwarding),
    Story("phishing-rule", "phishing-evasion-inbox-rule", "Audit.Exchange", phishing_rule),
    Story("transport-rule", "mail-flow-rule-changed", "Audit.Exchange", transport_rule),
    Story("delegation", "mailbox-permission-delegated", "Audit.Exchange", delegation),
    Story("global-admin", "privileged-role-granted", "Audit.AzureActiveDirectory", global_admin),
    Story("audit-disabled", "audit-logging-disabled", "Audit.Exchange", audit_disabled),
    Story("policy-tampering", "protection-policy-tampering", "Audit.Exchange", policy_tampering),
    Story("domain-change", "accepted-domain-changed", "Audit.Exchange", domain_change),
    Story("mass-download", "mass-download", "Audit.SharePoint", mass_download),
    Story("powershell-access", "powershell-file-access", "Audit.SharePoint", powershell_access),
    Story("malware", "malware-uploaded", "Audit.SharePoint", malware),
    Story("mail-throttled", "mail-items-throttled", "Audit.Exchange", mail_throttled),
    Story("mail-bulk-read", "mail-items-excessive", "Audit.Exchange", mail_bulk_read),
    Story("password-spray", "password-spray", "Audit.AzureActiveDirectory", password_spray),
    Story("credential-stuffing", "credential-stuffing", "Audit.AzureActiveDirectory", credential_stuffing),
    Story("password-guessing", "password-guessing", "Audit.AzureActiveDirectory", password_guessing),
    Story("lockouts", "account-lockouts", "Audit.AzureActiveDirectory", lockouts),
    Story("ropc", "legacy-auth-ropc", "Audit.AzureActiveDirectory", ropc),
    Story("device-code", "device-code-noncompliant", "Audit.AzureActiveDirectory", device_code),
    Story("consent", "illicit-consent", "Audit.AzureActiveDirectory", consent),
    Story("teams-deleted", "teams-mass-deletion", "Audit.General", teams_deleted),
    Story("sharing-opened", "sharing-policy-opened", "Audit.SharePoint", sharing_opened),
    Story("site-admin", "site-collection-admin-added", "Audit.SharePoint", site_admin),
    Story("copilot-burst", "copilot-burst", "Audit.General", copilot_burst),
    Story("copilot-spread", "copilot-spread", "Audit.General", copilot_spread),
)}
HEADLINE = ("forwarding", "mass-download", "password-spray", "global-admin", "audit-disabled")


def records(name: str, when: datetime, tenant_id: str, domain: str = "contoso.onmicrosoft.com", seed: int = 7) -> list[Record]:
    """The records of one story starting at `when` (aware UTC)."""
    return STORIES[name].build(Cast(tenant_id, domain, seed), when)


# Stories that take most of an hour: they start on the hour (their rule counts per hour or day).
HOURLY = frozenset({"copilot-spread", "mail-bulk-read", "teams-deleted"})


def _aligned(name: str, when: datetime) -> datetime:
    # Threshold rules count in fixed buckets (5 minutes and up): a story starts at a bucket's start
    # so that its records fall into one bucket, as an attack inside one bucket would.
    if name in HOURLY:
        return when.replace(minute=0, second=0, microsecond=0)
    return when.replace(minute=when.minute - when.minute % 5, second=0, microsecond=0)


def publish(sim: Simulator, name: str, when: datetime, *, tenant_id: str | None = None, seed: int = 7,
            latency: timedelta = timedelta(minutes=3)) -> list[Record]:
    """Add one story's records to the simulator as a blob of its content type, available `latency` later."""
    story = STORIES[name]
    tenant = sim.tenant(tenant_id)
    found = records(name, _aligned(name, when), tenant.tenant_id, tenant.domain, seed)
    last = max(found, key=lambda r: r["CreationTime"])["CreationTime"]
    created = datetime.strptime(last, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=when.tzinfo) + latency
    sim.add_blob(story.content_type, created, found, tenant_id=tenant.tenant_id)
    return found


def publish_all(sim: Simulator, start: datetime, *, names: Iterator[str] | tuple[str, ...] | None = None,
                spacing: timedelta = timedelta(minutes=65), tenant_id: str | None = None) -> dict[str, list[Record]]:
    """Every story (or `names`), one after the other `spacing` apart from `start`."""
    out = {}
    for index, name in enumerate(names or tuple(STORIES)):
        out[name] = publish(sim, name, start + index * spacing, tenant_id=tenant_id, seed=7 + index)
    return out
