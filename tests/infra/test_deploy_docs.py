"""Static checks of the deployment documentation and of requirements.txt: what a reader copies
from docs/ must work on a fresh clone, and the dependency floors must cover what the code relies on."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta
from importlib.metadata import version

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from .bicep import INFRA, ROOT

# Every place a deployment command can be documented: the README, docs/ and the infra scripts.
DOCUMENTED = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *INFRA.glob("*.sh")])
PUBLISH = re.compile(r"func\s+azure\s+functionapp\s+publish\b")


def _commands(text: str) -> list[str]:
    """Logical lines of text: a line ending in a backslash continues on the next one."""
    return re.sub(r"\\\n\s*", " ", text).splitlines()


def test_every_documented_publish_names_the_python_worker() -> None:
    # Core Tools takes the worker runtime from a --python (--node, ...) flag or else from
    # FUNCTIONS_WORKER_RUNTIME in local.settings.json, which a fresh clone does not have: without
    # either, `func azure functionapp publish` stops with "Worker runtime is not set".
    found = []
    for path in DOCUMENTED:
        for line in _commands(path.read_text(encoding="utf-8")):
            if PUBLISH.search(line):
                found.append((path.relative_to(ROOT).as_posix(), line.strip()))
    assert found, "no documented `func azure functionapp publish` command"
    missing = [f"{where}: {line}" for where, line in found if not re.search(r"(?<![\w-])--python\b", line)]
    assert not missing, "publish commands without --python:\n" + "\n".join(missing)


# msal 1.35.0 is the first release whose ConfidentialClientApplication accepts a PEM private key
# with a "public_certificate" and no "thumbprint" (it derives the SHA-256 and SHA-1 thumbprints
# from the certificate); 1.34.0 and older raise "client_credential needs to follow this format".
# collector/auth.py passes exactly that dict in certificate mode. tests/integration/test_auth_modes.py
# runs certificate mode against the simulator with the installed msal; this keeps the floor honest.
MSAL_THUMBPRINT_OPTIONAL = "1.35.0"


def _floor(package: str) -> tuple[Requirement, Version]:
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        if canonicalize_name(requirement.name) == package:
            floors = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==", "~=")]
            assert floors, f"requirements.txt gives {package} no lower bound"
            return requirement, max(floors)
    raise AssertionError(f"{package} is not in requirements.txt")


def test_msal_floor_derives_the_certificate_thumbprint() -> None:
    requirement, floor = _floor("msal")
    assert floor >= Version(MSAL_THUMBPRINT_OPTIONAL), f"{requirement}: certificate mode needs msal>={MSAL_THUMBPRINT_OPTIONAL}"
    assert requirement.specifier.contains(version("msal")), f"the installed msal {version('msal')} is outside {requirement}"
    comment = (ROOT / "collector" / "auth.py").read_text()
    assert re.search(r"msal ≥ " + re.escape(MSAL_THUMBPRINT_OPTIONAL.removesuffix(".0")) + r"\b", comment), \
        "collector/auth.py's comment on the thumbprint names another msal version"


class _FakeEntra:
    """Just enough of an msal http_client: the OpenID configuration and a token endpoint that
    records the client assertion it receives."""

    AUTHORITY = "https://login.example.test/00000000-0000-0000-0000-000000000001"

    def __init__(self) -> None:
        self.assertions: list[str] = []  # compact JWS, header.payload.signature

    class _Response:
        def __init__(self, body: dict[str, object]) -> None:
            self.status_code, self.headers, self.text = 200, {"Content-Type": "application/json"}, json.dumps(body)

        def raise_for_status(self) -> None:
            pass

    def get(self, url: str, **_: object) -> _Response:
        assert url.startswith(self.AUTHORITY) and "openid-configuration" in url, url
        return self._Response({"authorization_endpoint": f"{self.AUTHORITY}/oauth2/v2.0/authorize",
                               "token_endpoint": f"{self.AUTHORITY}/oauth2/v2.0/token",
                               "issuer": f"{self.AUTHORITY}/v2.0"})

    def post(self, url: str, data: dict[str, str] | None = None, **_: object) -> _Response:
        assert url == f"{self.AUTHORITY}/oauth2/v2.0/token", url
        assertion = (data or {})["client_assertion"]
        self.assertions.append(assertion.decode() if isinstance(assertion, bytes) else str(assertion))
        return self._Response({"access_token": "token", "token_type": "Bearer", "expires_in": 3600})


def test_installed_msal_accepts_a_certificate_without_thumbprint() -> None:
    import msal  # the installed version, the one the Function App's remote build resolves within the floor
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "AuditKeep test")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()

    entra = _FakeEntra()
    # The credential collector/auth.py builds in certificate mode: no "thumbprint".
    app = msal.ConfidentialClientApplication(
        "11111111-1111-1111-1111-111111111111", authority=entra.AUTHORITY, instance_discovery=False,
        client_credential={"private_key": key_pem, "public_certificate": cert_pem}, http_client=entra)
    result = app.acquire_token_for_client(scopes=["https://manage.office.com/.default"])
    assert result.get("access_token") == "token", result
    header = json.loads(base64.urlsafe_b64decode(entra.assertions[0].split(".")[0] + "=="))
    expected = base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA256())).rstrip(b"=").decode()
    assert str(header.get("x5t#S256", "")).rstrip("=") == expected, header  # msal keeps the base64 padding


def _table_rows(text: str, code: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|") and code in line.split("|")[1]]


def test_tenant_errors_follow_the_management_api_reference() -> None:
    # Office 365 Management Activity API reference, "Errors": AF20011 = tenant does not exist or was
    # deleted, AF20012 = tenant incorrectly configured. Audit logging off shows up as
    # "...DataServiceException: Tenant <id> does not exist" (the API's FAQs and troubleshooting page).
    text = (ROOT / "docs" / "tenant-setup.md").read_text(encoding="utf-8")
    for code, message in (("AF20011", "does not exist in the system or has been deleted"),
                          ("AF20012", "is incorrectly configured in the system")):
        rows = _table_rows(text, code)
        assert rows and all(message in row for row in rows), f"{code}: {rows}"
        assert not any("audit" in row.lower() for row in rows), f"{code} is not the audit-off error: {rows}"
    audit_off = _table_rows(text, "DataServiceException: Tenant")
    assert audit_off and "audit logging is off" in audit_off[0]
    section_1 = text.split("## 2.")[0]
    assert "does not exist" in section_1 and not re.search(r"or `AF20012`", section_1)


def test_managed_identity_tenant_is_documented() -> None:
    for name in ("deploy.md", "tenant-setup.md"):
        text = " ".join((ROOT / "docs" / name).read_text(encoding="utf-8").split())
        assert "tenant().tenantId" in text, name
        assert re.search(r"managed identity (belongs .{0,120} and )?cannot get a token for (any )?other tenant", text), name


def _m_blocks(text: str) -> list[str]:
    return re.findall(r"```m\n(.*?)```", text, re.S)


def test_power_bi_query_keeps_the_key_out_of_the_report() -> None:
    # Web.Contents' ApiKeyName names the URL parameter that carries the key; its value comes from the
    # "Web API" credential that Power BI stores, so the key is in neither the query nor the .pbix.
    text = (ROOT / "docs" / "powerbi.md").read_text(encoding="utf-8")
    blocks = _m_blocks(text)
    functions = [b for b in blocks if "Web.Contents(" in b]
    calls = [b for b in blocks if "AuditKeep(" in b and "Web.Contents(" not in b]
    assert len(functions) == 1 and calls, "powerbi.md: expected the AuditKeep function and a query that calls it"
    function = functions[0]
    signature = re.search(r"^\((.*)\) as table =>$", function, re.M)
    assert signature and signature.group(1) == "BaseUrl as text, optional Filters as nullable record", signature
    assert 'ApiKeyName = "code"' in function
    assert "x-functions-key" not in function and "FunctionKey" not in function and "Headers = [#" not in function
    # A nextLink repeats ?code=<key>: the query drops it, Power Query adds the credential's key.
    assert 'Query = Record.RemoveFields(query, {"code"}, MissingField.Ignore)' in function
    assert "Uri.Parts(page[#\"@odata.nextLink\"])[Query]" in function
    for call in calls:
        assert re.search(r"AuditKeep\(AuditKeepUrl,\s*\[", call), call
    assert "AuditKeepKey" not in text
    assert "**Web API**" in text and "**Key**" in text
    # The Entra front door is not offered as the way to protect the key for Power BI.
    assert not re.search(r"(?i)use an organizational account", text)
