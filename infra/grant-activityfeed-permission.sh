#!/usr/bin/env bash
# Grant the Office 365 Management APIs app role ActivityFeed.Read (and, with --dlp,
# ActivityFeed.ReadDlp) to a service principal, typically AuditKeep's user-assigned managed
# identity when the template was deployed with m365AuthMode=managed_identity.
#
# Managed identities cannot be granted API permissions in the portal; the grant is an
# appRoleAssignment created through Microsoft Graph. Idempotent: existing assignments are
# listed first and left alone. Run it as Global Administrator or Privileged Role
# Administrator (creating app role assignments for Microsoft APIs needs that).
set -euo pipefail

# "Office 365 Management APIs" (the Management Activity API); the same app ID in every tenant.
readonly MANAGEMENT_API_APP_ID="c5393580-f805-4401-95e8-94b7a6ef2fc2"

usage() {
    cat <<'EOF'
Usage: infra/grant-activityfeed-permission.sh (--principal-id OBJECT_ID | --identity-name NAME --resource-group RG)
                                              [--dlp] [--graph-url URL] [--dry-run]

Grants ActivityFeed.Read on "Office 365 Management APIs" (appId c5393580-f805-4401-95e8-94b7a6ef2fc2)
to a service principal, and ActivityFeed.ReadDlp too with --dlp (needed to collect DLP.All).

  --principal-id ID      object ID of the service principal to grant (the deployment output
                         managedIdentityPrincipalId)
  --identity-name NAME   or: the user-assigned managed identity's name ...
  --resource-group RG    ... and its resource group (the script looks up its principal ID)
  --dlp                  also grant ActivityFeed.ReadDlp
  --graph-url URL        Microsoft Graph root (default https://graph.microsoft.com;
                         https://graph.microsoft.us for GCC High, https://dod-graph.microsoft.us for DoD)
  --dry-run              show what would be granted, change nothing
  -h, --help             this text

Requires the Azure CLI, signed in (az login) to the tenant, as Global Administrator or
Privileged Role Administrator. Safe to run again: existing assignments are left as they are.
EOF
}

die() {
    echo "error: $*" >&2
    exit 1
}

principal_id=""
identity_name=""
resource_group=""
with_dlp=false
dry_run=false
graph_url="https://graph.microsoft.com"

while [[ $# -gt 0 ]]; do
    case "$1" in
        --principal-id) principal_id="${2:-}"; shift 2 ;;
        --identity-name) identity_name="${2:-}"; shift 2 ;;
        --resource-group) resource_group="${2:-}"; shift 2 ;;
        --dlp) with_dlp=true; shift ;;
        --graph-url) graph_url="${2:-}"; shift 2 ;;
        --dry-run) dry_run=true; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

if [[ -z "$principal_id" ]]; then
    if [[ -z "$identity_name" || -z "$resource_group" ]]; then
        usage >&2
        die "give --principal-id, or --identity-name with --resource-group"
    fi
fi
command -v az >/dev/null 2>&1 || die "the Azure CLI (az) is not installed"
graph_url="${graph_url%/}"

if [[ -z "$principal_id" ]]; then
    principal_id="$(az identity show --name "$identity_name" --resource-group "$resource_group" --query principalId --output tsv)"
    [[ -n "$principal_id" ]] || die "managed identity $identity_name not found in $resource_group"
fi
[[ "$principal_id" =~ ^[0-9a-fA-F-]{36}$ ]] || die "principal ID must be an object ID (GUID), got: $principal_id"

# The Management API's service principal in this tenant and the IDs of its app roles.
resource_id="$(az ad sp show --id "$MANAGEMENT_API_APP_ID" --query id --output tsv)"
[[ -n "$resource_id" ]] || die "service principal of Office 365 Management APIs not found in this tenant"

roles=("ActivityFeed.Read")
if [[ "$with_dlp" == true ]]; then
    roles+=("ActivityFeed.ReadDlp")
fi

assignments_url="$graph_url/v1.0/servicePrincipals/$principal_id/appRoleAssignments"

for role in "${roles[@]}"; do
    role_id="$(az ad sp show --id "$MANAGEMENT_API_APP_ID" \
        --query "appRoles[?value=='$role' && contains(allowedMemberTypes, 'Application')].id | [0]" --output tsv)"
    [[ -n "$role_id" ]] || die "app role $role not found on Office 365 Management APIs"

    existing="$(az rest --method GET --url "$assignments_url" \
        --query "length(value[?resourceId=='$resource_id' && appRoleId=='$role_id'])" --output tsv)"
    if [[ "$existing" != "0" ]]; then
        echo "$role: already granted to $principal_id"
        continue
    fi
    if [[ "$dry_run" == true ]]; then
        echo "$role: would grant to $principal_id (dry run)"
        continue
    fi
    body="{\"principalId\": \"$principal_id\", \"resourceId\": \"$resource_id\", \"appRoleId\": \"$role_id\"}"
    az rest --method POST --url "$assignments_url" \
        --headers "Content-Type=application/json" --body "$body" --output none
    echo "$role: granted to $principal_id"
done

echo "Done. Tokens issued after the grant carry the role; restart the function app if it already cached one."
