"""Static checks of infra/: every template parses, documents its parameters and outputs, holds no
key material, and grants roles as data named guid(scope, principal, role)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .bicep import INFRA, MODULES, bicep_files, parse

FILES = bicep_files()


def test_the_expected_templates_exist() -> None:
    names = {p.relative_to(INFRA).as_posix() for p in FILES}
    assert {"main.bicep", "modules/functionapp.bicep", "modules/storage-data.bicep",
            "modules/storage-host.bicep", "modules/keyvault.bicep", "modules/monitoring.bicep",
            "modules/identity.bicep", "modules/role-assignments.bicep"} <= names
    assert (INFRA / "main.bicepparam").is_file()


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_template_parses(path: Path) -> None:
    parsed = parse(path)
    assert parsed.get("parameters") or parsed.get("resources") or parsed.get("modules")


def test_a_syntax_error_fails_the_parse(tmp_path: Path) -> None:
    # checkov exits 0 when it cannot parse a file, so the parse test above is the syntax gate:
    # prove once that it really fails on a broken template.
    broken = tmp_path / "broken.bicep"
    good = (MODULES / "identity.bicep").read_text()
    broken.write_text(good.replace("resource identity", "resource identity identity = {{", 1))
    with pytest.raises(Exception):  # noqa: B017 - lark raises several exception types
        parse(broken)
    unclosed = tmp_path / "unclosed.bicep"
    unclosed.write_text("param name string\nresource x 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name: name\n")
    with pytest.raises(Exception):  # noqa: B017
        parse(unclosed)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_every_parameter_and_output_has_a_description(path: Path) -> None:
    parsed = parse(path)
    for kind in ("parameters", "outputs"):
        for name, element in (parsed.get(kind) or {}).items():
            descriptions = [d for d in element.get("decorators", []) if d.get("type") == "description"]
            assert descriptions and str(descriptions[0].get("argument", "")).strip(), f"{kind[:-1]} {name} has no @description"


def test_parameters_are_camel_case() -> None:
    for path in FILES:
        for name in parse(path).get("parameters") or {}:
            assert re.fullmatch(r"[a-z][A-Za-z0-9]*", name), f"{path.name}: parameter {name} is not camelCase"


@pytest.mark.parametrize("forbidden", ["listKeys(", "AccountKey=", "allowSharedKeyAccess: true",
                                       "secretsExportConfiguration", "@secure()", "br/public:", "br:"])
def test_forbidden_strings_are_absent(forbidden: str) -> None:
    for path in [*FILES, INFRA / "main.bicepparam"]:
        assert forbidden not in path.read_text(), f"{path.relative_to(INFRA)} contains {forbidden!r}"


def test_every_storage_account_is_keyless_and_private() -> None:
    accounts = 0
    for path in FILES:
        for name, resource in (parse(path).get("resources") or {}).items():
            if resource["type"] != "Microsoft.Storage/storageAccounts" or resource.get("existing"):
                continue
            accounts += 1
            props = resource["config"]["properties"]
            assert props["allowSharedKeyAccess"] is False, name
            assert props["allowBlobPublicAccess"] is False, name
            assert props["minimumTlsVersion"] == "TLS1_2", name
            assert props["supportsHttpsTrafficOnly"] is True, name
            assert "defaultAction" in props["networkAcls"], name
    assert accounts == 2  # host and data


def test_data_account_only_allows_archive_capable_skus() -> None:
    sku = parse(MODULES / "storage-data.bicep")["parameters"]["skuName"]
    allowed = next(d["argument"] for d in sku["decorators"] if d["type"] == "allowed")
    assert set(allowed) == {"Standard_LRS", "Standard_GRS", "Standard_RAGRS"}


def test_role_assignments_are_named_with_guid() -> None:
    count = 0
    for path in FILES:
        text = path.read_text()
        for match in re.finditer(r"^resource \w+ 'Microsoft\.Authorization/roleAssignments@[^']+' = (.*?)^}", text, re.M | re.S):
            count += 1
            name_line = re.search(r"^\s+name: (.*)$", match.group(1), re.M)
            assert name_line and name_line.group(1).startswith("guid("), f"{path.name}: role assignment not named guid(...)"
            assert "principalType: 'ServicePrincipal'" in match.group(1)
    assert count > 0


def test_role_grants_are_data_with_least_privilege() -> None:
    parsed = parse(MODULES / "role-assignments.bicep")
    variables = parsed["variables"]
    # Every role GUID is a named variable with the role name in a comment.
    text = (MODULES / "role-assignments.bicep").read_text()
    guid_vars = re.findall(r"^var (\w+) = '([0-9a-f-]{36})' // (.+)$", text, re.M)
    assert len(guid_vars) >= 6
    grants = {(g["scope"], g["role"]) for g in variables["grants"]["value"]}
    assert grants == {
        ("hostStorage", "storageBlobDataOwner"),
        ("hostStorage", "storageTableDataContributor"),
        ("archiveContainer", "storageBlobDataContributor"),
        ("coldContainer", "storageBlobDataContributor"),  # the cold tier (docs/cold-tier.md)
        ("dataStorage", "storageQueueDataContributor"),
        ("dataStorage", "storageTableDataContributor"),
        ("keyVault", "keyVaultSecretsUser"),
        ("appInsights", "monitoringMetricsPublisher"),
    }
    # No blob data role on the whole data account, and no management-plane role anywhere.
    assert ("dataStorage", "storageBlobDataContributor") not in grants
    assert not re.search(r"'(8e3af657-a8ff-443c-a75c-2fe8c4bcb635|b24988ac-6180-42a0-ab88-20f7382dd24c)'", text)  # Owner, Contributor
    # Each scope kind in the data has a loop that applies it.
    for scope in {s for s, _ in grants}:
        assert f"filter(grants, g => g.scope == '{scope}')" in text


def test_lifecycle_days_are_validated_in_order() -> None:
    text = (MODULES / "storage-data.bicep").read_text()
    assert re.search(r"var lifecycleCheck = lifecycleOrderValid \? 0 : int\('Invalid retention", text)
    for action in ("tierToCool", "tierToCold", "tierToArchive", "delete"):
        assert re.search(action + r": \{ daysAfterCreationGreaterThan: \w+ \+ lifecycleCheck \}", text), action
    assert "prefixMatch" in text and "'${archiveContainerName}/'" in text
    main = parse(INFRA / "main.bicep")
    defaults = main["parameters"]
    # archiveDeleteAfterDays defaults to -1: the retention preset's (default: 7 years; docs/retention.md)
    assert defaults["archiveDeleteAfterDays"]["default"] == {"operator": {"operands": {"integer_value": 1}, "type": "minus"}}
    assert defaults["retentionPreset"]["default"] == "default"
    preset = main["variables"]["retentionPresets"]["value"]["default"]
    assert preset["archive"] == 2557  # 7 years
    days = [defaults[p]["default"] for p in ("archiveDaysToCool", "archiveDaysToCold", "archiveDaysToArchive")] + [preset["archive"]]
    assert days == sorted(days) and len(set(days)) == 4


def test_worm_policy_is_optional_and_skipped_once_locked() -> None:
    resources = parse(MODULES / "storage-data.bicep")["resources"]
    worm = resources["archiveImmutability"]
    assert worm["type"] == "Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies"
    text = (MODULES / "storage-data.bicep").read_text()
    assert "= if (immutabilityDays > 0 && !immutabilityLocked)" in text
    main = parse(INFRA / "main.bicep")
    # -1: the retention preset's; only sec sets a WORM period (docs/retention.md)
    assert main["parameters"]["archiveImmutabilityDays"]["default"] == {"operator": {"operands": {"integer_value": 1}, "type": "minus"}}
    assert main["variables"]["retentionPresets"]["value"]["default"]["immutability"] == 0


def test_key_vault_is_rbac_with_purge_protection() -> None:
    props = parse(MODULES / "keyvault.bicep")["resources"]["vault"]["config"]["properties"]
    assert props["enableRbacAuthorization"] is True
    assert props["enableSoftDelete"] is True
    assert props["enablePurgeProtection"] is True
    assert props["sku"]["name"] == "standard"


def test_application_insights_accepts_only_entra_ingestion() -> None:
    props = parse(MODULES / "monitoring.bicep")["resources"]["appInsights"]["config"]["properties"]
    assert props["DisableLocalAuth"] is True


def test_function_app_is_flex_python_https_only() -> None:
    resources = parse(MODULES / "functionapp.bicep")["resources"]
    assert resources["plan"]["config"]["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    site = resources["site"]["config"]
    assert site["kind"] == "functionapp,linux"
    assert site["identity"]["type"] == "UserAssigned"
    props = site["properties"]
    assert props["httpsOnly"] is True
    assert props["keyVaultReferenceIdentity"] == "identityResourceId"
    assert props["siteConfig"]["minTlsVersion"] == "1.2"
    assert props["functionAppConfig"]["runtime"] == {"name": "python", "version": "3.11"}
    assert props["functionAppConfig"]["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"
    for policy in ("ftpBasicAuth", "scmBasicAuth"):
        assert resources[policy]["config"]["properties"]["allow"] is False


def test_main_outputs_carry_no_secrets() -> None:
    outputs = parse(INFRA / "main.bicep")["outputs"]
    assert {"functionAppName", "functionAppDefaultHostname", "dataStorageAccountName", "keyVaultName",
            "managedIdentityClientId"} <= set(outputs)
    for name in outputs:
        assert not re.search(r"(?i)key$|secret|password|connectionstring|token", name), name


def test_main_is_composition_only() -> None:
    parsed = parse(INFRA / "main.bicep")
    assert not parsed.get("resources"), "main.bicep declares resources; put them in a module"
    modules = re.findall(r"^module \w+ '([^']+)'", (INFRA / "main.bicep").read_text(), re.M)
    assert modules and all(m.startswith("modules/") and (INFRA / m).is_file() for m in modules)


def test_parameters_file_matches_main() -> None:
    text = (INFRA / "main.bicepparam").read_text()
    assert re.search(r"^using 'main\.bicep'$", text, re.M)
    declared = parse(INFRA / "main.bicep")["parameters"]
    given = re.findall(r"^param (\w+) =", text, re.M)
    assert given and set(given) <= set(declared)
    required = {name for name, p in declared.items() if p.get("default") is None}
    assert required <= set(given), f"main.bicepparam misses required parameters {required - set(given)}"


def _keys(node: object) -> set[str]:
    """Every object key in a parsed Bicep value, at any depth."""
    if isinstance(node, dict):
        return set(node).union(*(_keys(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_keys(v) for v in node))
    return set()


def test_no_flex_consumption_site_sets_ftps_state() -> None:
    # Flex Consumption rejects siteConfig.ftpsState ("The following site configuration property
    # (Site.SiteConfig.FtpsState) for Flex Consumption sites is invalid"); FTP is off through the
    # basicPublishingCredentialsPolicies 'ftp' resource instead.
    flex_files = 0
    for path in FILES:
        resources = parse(path).get("resources") or {}
        plans = [r for r in resources.values() if r["type"] == "Microsoft.Web/serverfarms"
                 and (r["config"].get("sku") or {}).get("tier") == "FlexConsumption"]
        if not plans:
            continue
        flex_files += 1
        for name, resource in resources.items():
            if resource["type"] in ("Microsoft.Web/sites", "Microsoft.Web/sites/config"):
                assert "ftpsState" not in _keys(resource["config"]), f"{path.name}: {name} sets ftpsState"
        code = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("//")]
        assert not [line for line in code if "ftpsState" in line], f"{path.name} sets ftpsState"
    assert flex_files == 1


def test_managed_identity_mode_collects_from_the_identity_tenant_only() -> None:
    # A managed identity cannot get a token for another tenant, and the Management API refuses a
    # token whose tenant is not the one in its URL (AF20010): in managed_identity mode M365_TENANT_ID
    # must be the deployment's tenant, where identity.bicep creates the identity.
    main = parse(INFRA / "main.bicep")["parameters"]["m365TenantId"]
    assert main["default"] == {"operator": {"type": "property_accessor", "operands": {
        "operand_1": {"function": {"type": "tenant"}}, "operand_2": "tenantId"}}}
    assert "managed_identity" in main["decorators"][0]["argument"]
    text = (MODULES / "functionapp.bicep").read_text()
    check = re.search(r"^var m365TenantIdChecked = (.*)$", text, re.M)
    assert check, "functionapp.bicep has no m365TenantIdChecked"
    assert re.match(r"m365AuthMode == 'managed_identity' && toLower\(m365TenantId\) != toLower\(tenant\(\)\.tenantId\) "
                    r"\? string\(int\('m365TenantId must be .*'\)\) : m365TenantId$", check.group(1)), check.group(1)
    variables = parse(MODULES / "functionapp.bicep")["variables"]
    assert variables["collectorSettings"]["value"]["M365_TENANT_ID"] == "m365TenantIdChecked"
    described = parse(MODULES / "functionapp.bicep")["parameters"]["m365TenantId"]["decorators"][0]["argument"]
    assert "managed_identity" in described and "tenant().tenantId" in described
