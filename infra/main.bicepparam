// Parameters for infra/main.bicep. Every parameter has a default except the ones you must decide;
// see docs/deploy.md. Deploy with:
//   az deployment group create -g <rg> -f infra/main.bicep -p infra/main.bicepparam
using 'main.bicep'

// Management Activity API authentication: 'certificate' (recommended), 'secret' or 'managed_identity'.
param m365AuthMode = 'certificate'

// Client ID of your Entra app registration with ActivityFeed.Read (certificate and secret modes),
// read from the environment of the deploying shell: export AUDITKEEP_M365_CLIENT_ID=<guid>.
// The deployment fails with a clear message if it is empty in certificate or secret mode.
param m365ClientId = readEnvironmentVariable('AUDITKEEP_M365_CLIENT_ID', '')

// Name of the Key Vault certificate (or secret) you create after the deployment.
param m365CredentialName = 'm365-management-api'

// Add 'DLP.All' to collect DLP events (needs ActivityFeed.ReadDlp).
param m365ContentTypes = [
  'Audit.AzureActiveDirectory'
  'Audit.Exchange'
  'Audit.SharePoint'
  'Audit.General'
]

// Retention (docs/retention.md): a preset sets how long the hot index, the cold tier and the raw
// archive keep a day: default (90 days hot, 7 years cold and raw), pci, scuba, hipaa, sox, sec
// (6 years with WORM), gdpr-12m. Override one tier with hotIndexRetentionDays, coldRetentionDays,
// archiveDeleteAfterDays or archiveImmutabilityDays (WORM: read the trade-off in docs/deploy.md first).
param retentionPreset = 'default'

// Tiers of the raw archive: Hot -> Cool -> Cold -> Archive; a tier the blob would leave before its
// minimum billed duration is skipped (a 12-month retention stops at Cold).
param archiveDaysToCool = 10
param archiveDaysToCold = 90
param archiveDaysToArchive = 365

// Optional Entra ID front door on the query API (function keys stay required either way).
param queryAuthEnabled = false
