// AuditKeep: Microsoft 365 audit logs collected into your own Azure Storage.
// Composition only: every resource body lives in modules/. Deploy into a resource group:
//   az deployment group create -g <rg> -f infra/main.bicep -p infra/main.bicepparam
// See docs/deploy.md for the app registration, the credential in Key Vault and publishing the code.

targetScope = 'resourceGroup'

// ---------------------------------------------------------------- Parameters: naming

@description('Optional. Lower-case letters and digits (3-11) that start every resource name; a hash of the resource group makes names unique.')
@minLength(3)
@maxLength(11)
param baseName string = 'auditkeep'

@description('Optional. Azure region of every resource; it must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
param location string = resourceGroup().location

@description('Optional. Tags applied to every resource.')
param tags object = {}

@description('Optional. Function app name override (its host name is <name>.azurewebsites.net); empty derives one from baseName.')
param functionAppName string = ''

// ---------------------------------------------------------------- Parameters: Management Activity API

@description('Optional. Microsoft 365 tenant ID to collect from (M365_TENANT_ID); defaults to the tenant of this subscription. With m365AuthMode managed_identity it must stay tenant().tenantId: a managed identity cannot get a token for another tenant (the deployment fails otherwise).')
param m365TenantId string = tenant().tenantId

@description('Optional. Management API authentication (M365_AUTH): certificate in Key Vault (recommended), client secret in Key Vault, or the app\'s managed identity with the ActivityFeed.Read app role (infra/grant-activityfeed-permission.sh).')
@allowed([
  'certificate'
  'secret'
  'managed_identity'
])
param m365AuthMode string = 'certificate'

@description('Conditional. Client ID of the Entra app registration that holds ActivityFeed.Read (M365_CLIENT_ID). Required for certificate and secret; ignored for managed_identity (the identity\'s client ID is used).')
param m365ClientId string = ''

@description('Optional. Name of the Key Vault certificate (certificate mode) or secret (secret mode) holding the Management API credential. You create it; the template only references it.')
param m365CredentialName string = 'm365-management-api'

@description('Optional. Microsoft 365 cloud of the tenant (M365_CLOUD).')
@allowed([
  'commercial'
  'gcc'
  'gcchigh'
  'dod'
])
param m365Cloud string = 'commercial'

@description('Optional. Content types to collect (M365_CONTENT_TYPES). DLP.All also needs ActivityFeed.ReadDlp.')
@allowed([
  'Audit.AzureActiveDirectory'
  'Audit.Exchange'
  'Audit.SharePoint'
  'Audit.General'
  'DLP.All'
])
param m365ContentTypes array = [
  'Audit.AzureActiveDirectory'
  'Audit.Exchange'
  'Audit.SharePoint'
  'Audit.General'
]

@description('Optional. NCRONTAB schedule (6 fields, UTC) of the collection timer (COLLECT_SCHEDULE).')
param collectSchedule string = '0 */5 * * * *'

@description('Optional. NCRONTAB schedule (6 fields, UTC) of the cold-tier compaction timer (COMPACT_SCHEDULE).')
param compactSchedule string = '0 30 3 * * *'

@description('Optional. Seconds after which the compaction timer stops between parts of a large day (COMPACT_MAX_SECONDS; 0 = no limit); keep it well under host.json functionTimeout (1800 s). The next run continues.')
@minValue(0)
@maxValue(86400)
param compactMaxSeconds int = 1200

// ---------------------------------------------------------------- Parameters: storage and retention

@description('Optional. Raw archive container name (AUDIT_ARCHIVE_CONTAINER).')
@minLength(3)
@maxLength(63)
param archiveContainerName string = 'audit-archive'

@description('Optional. Cold-tier container name (AUDIT_COLD_CONTAINER): closed days as Parquet files, kept online (never the Archive tier).')
@minLength(3)
@maxLength(63)
param coldContainerName string = 'audit-cold'

@description('Optional. Content queue name (AUDIT_QUEUE_NAME); the poison queue is <name>-poison.')
@minLength(3)
@maxLength(56)
param queueName string = 'audit-content'

@description('Optional. Prefix of the index and state tables (AUDIT_TABLE_PREFIX): a letter, then letters and digits.')
@minLength(1)
@maxLength(41)
param tablePrefix string = 'audit'

@description('Optional. Replication of the data account. Only Archive-capable SKUs are allowed (ZRS/GZRS cannot use the Archive tier).')
@allowed([
  'Standard_LRS'
  'Standard_GRS'
  'Standard_RAGRS'
])
param dataStorageSku string = 'Standard_LRS'

@description('Optional. Days after upload before an archive blob moves to Cool (0 = stay in Hot). Cool bills at least 30 days. 10: the app bundles a day\'s content blobs 9 days after it (docs/archive-bundles.md) while they are still Hot, so the originals it deletes never pay Cool\'s tier change nor its early deletion.')
@minValue(0)
param archiveDaysToCool int = 10

@description('Optional. Days after upload before an archive blob moves to Cold (0 = skip Cold). Cold bills at least 90 days.')
@minValue(0)
param archiveDaysToCold int = 90

@description('Optional. Days after upload before an archive blob moves to Archive (0 = skip Archive). Archive bills at least 180 days; reading needs hours of rehydration.')
@minValue(0)
param archiveDaysToArchive int = 365

@description('Optional. Retention preset (RETENTION_PRESET, docs/retention.md): fills hotIndexRetentionDays, coldRetentionDays, archiveDeleteAfterDays and archiveImmutabilityDays where they are -1. default: 90 days hot, 7 years cold and raw.')
@allowed([
  'default'
  'pci'
  'scuba'
  'hipaa'
  'sox'
  'sec'
  'gdpr-12m'
])
param retentionPreset string = 'default'

@description('Optional. Days of event time the hot index keeps a day (HOT_INDEX_RETENTION_DAYS); a day goes only once the cold tier holds it. 0 = forever, -1 = from retentionPreset.')
@minValue(-1)
@maxValue(36500)
param hotIndexRetentionDays int = -1

@description('Optional. Days of event time the cold tier keeps a day (COLD_RETENTION_DAYS); 0 = no cold tier, -1 = from retentionPreset. Also the cold container\'s lifecycle deletion (a backstop: the app deletes whole days first).')
@minValue(-1)
@maxValue(36500)
param coldRetentionDays int = -1

@description('Optional. Days before an archive blob is deleted (ARCHIVE_RETENTION_DAYS and the lifecycle rule); 0 = keep forever, -1 = from retentionPreset (default 2557 days = 7 years). Blobs still under WORM are deleted by the app once it expires.')
@minValue(-1)
@maxValue(36500)
param archiveDeleteAfterDays int = -1

@description('Optional. Time-based retention (WORM) on the archive container in days (ARCHIVE_IMMUTABILITY_DAYS); 0 = none, -1 = from retentionPreset (sec: 2192). Blobs cannot be changed or deleted, even by lifecycle, until this old.')
@minValue(-1)
@maxValue(36500)
param archiveImmutabilityDays int = -1

@description('Optional. Set to true after locking the WORM policy with the az CLI: a locked policy only accepts extensions, so the template stops declaring it.')
param archiveImmutabilityLocked bool = false

@description('Optional. Days a deleted archive blob or container stays recoverable (blob soft delete).')
@minValue(1)
@maxValue(365)
param archiveSoftDeleteDays int = 14

// ---------------------------------------------------------------- Parameters: query API

@description('Optional. Cap on the time range of a query without a user or operation filter, in days (QUERY_MAX_RANGE_DAYS); 0 = no cap: the per-request budget bounds every page.')
@minValue(0)
@maxValue(36500)
param queryMaxRangeDays int = 0

@description('Optional. Row cap of one CSV/NDJSON export (QUERY_MAX_EXPORT_ROWS).')
@minValue(1)
@maxValue(100000000)
param queryMaxExportRows int = 1000000

@description('Optional. Require an Entra ID token (App Service authentication) on every route, in addition to function keys.')
param queryAuthEnabled bool = false

@description('Conditional. Client ID of the app registration that represents the query API. Required when queryAuthEnabled.')
param queryAuthClientId string = ''

@description('Optional. Client IDs of the only applications allowed to call the query API; empty = no restriction by application.')
param queryAuthAllowedApplications array = []

@description('Optional. Object IDs of the only users or service principals allowed to call the query API; empty = no restriction by principal.')
param queryAuthAllowedPrincipals array = []

// ---------------------------------------------------------------- Parameters: compute and monitoring

@description('Optional. Flex Consumption instance memory in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Optional. Maximum instance count of the Flex Consumption app (40-1000).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Optional. Days Log Analytics keeps the app\'s logs.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

@description('Optional. Daily Log Analytics ingestion cap in GB (-1 = no cap).')
@minValue(-1)
param logDailyQuotaGb int = 1

// ---------------------------------------------------------------- Names

var token = take(uniqueString(subscription().id, resourceGroup().id, baseName), 8)
var names = {
  identity: 'id-${baseName}-${token}'
  hostStorage: 'st${baseName}h${token}'
  dataStorage: 'st${baseName}d${token}'
  keyVault: 'kv-${baseName}-${token}'
  logAnalytics: 'log-${baseName}-${token}'
  appInsights: 'appi-${baseName}-${token}'
  plan: 'plan-${baseName}-${token}'
  functionApp: empty(functionAppName) ? 'func-${baseName}-${token}' : functionAppName
  deploymentContainer: 'app-package'
}
var allTags = union({ 'app': 'auditkeep' }, tags)

// ---------------------------------------------------------------- Retention (docs/retention.md)

// The same table as collector/settings.py RETENTION_PRESETS (tests/infra checks it): days of each tier.
var retentionPresets = {
  default: { hot: 90, cold: 2557, archive: 2557, immutability: 0 }
  pci: { hot: 92, cold: 366, archive: 366, immutability: 0 }
  scuba: { hot: 92, cold: 366, archive: 366, immutability: 0 }
  hipaa: { hot: 90, cold: 2192, archive: 2192, immutability: 0 }
  sox: { hot: 90, cold: 2557, archive: 2557, immutability: 0 }
  sec: { hot: 90, cold: 2192, archive: 2192, immutability: 2192 }
  'gdpr-12m': { hot: 90, cold: 365, archive: 365, immutability: 0 }
}
var preset = retentionPresets[retentionPreset]
// Explicit parameters win over the preset; -1 means "not given".
var hotDays = hotIndexRetentionDays >= 0 ? hotIndexRetentionDays : preset.hot
var coldDays = coldRetentionDays >= 0 ? coldRetentionDays : preset.cold
var archiveDays = archiveDeleteAfterDays >= 0 ? archiveDeleteAfterDays : preset.archive
var wormDays = archiveImmutabilityDays >= 0 ? archiveImmutabilityDays : preset.immutability
// The app's own rules (collector/settings.py), checked before anything is deployed. ARM evaluates only
// the taken branch of if(), so a bad combination fails the deployment with the message inside int().
var retentionValid = (coldDays == 0 || (hotDays > 0 && coldDays >= hotDays)) && (archiveDays == 0 || (hotDays > 0 && archiveDays >= hotDays)) && (archiveDays == 0 || wormDays <= archiveDays)
var retentionCheck = retentionValid ? 0 : int('Invalid retention: coldRetentionDays (unless 0) and archiveDeleteAfterDays (unless 0) must be at least a finite hotIndexRetentionDays, and archiveImmutabilityDays at most archiveDeleteAfterDays (docs/retention.md).')

// ---------------------------------------------------------------- Modules

module identity 'modules/identity.bicep' = {
  name: 'auditkeep-identity'
  params: {
    name: names.identity
    location: location
    tags: allTags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'auditkeep-monitoring'
  params: {
    logAnalyticsName: names.logAnalytics
    applicationInsightsName: names.appInsights
    location: location
    tags: allTags
    retentionInDays: logRetentionDays
    dailyQuotaGb: logDailyQuotaGb
  }
}

module hostStorage 'modules/storage-host.bicep' = {
  name: 'auditkeep-storage-host'
  params: {
    name: names.hostStorage
    deploymentContainerName: names.deploymentContainer
    location: location
    tags: allTags
  }
}

module dataStorage 'modules/storage-data.bicep' = {
  name: 'auditkeep-storage-data'
  params: {
    name: names.dataStorage
    archiveContainerName: archiveContainerName
    coldContainerName: coldContainerName
    queueName: queueName
    location: location
    tags: allTags
    skuName: dataStorageSku
    daysToCool: archiveDaysToCool
    daysToCold: archiveDaysToCold
    daysToArchive: archiveDaysToArchive
    deleteAfterDays: archiveDays + retentionCheck
    immutabilityDays: wormDays
    coldDeleteAfterDays: coldDays
    immutabilityLocked: archiveImmutabilityLocked
    softDeleteDays: archiveSoftDeleteDays
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'auditkeep-keyvault'
  params: {
    name: names.keyVault
    location: location
    tags: allTags
  }
}

module roles 'modules/role-assignments.bicep' = {
  name: 'auditkeep-roles'
  params: {
    principalId: identity.outputs.principalId
    hostStorageAccountName: hostStorage.outputs.name
    dataStorageAccountName: dataStorage.outputs.name
    archiveContainerName: dataStorage.outputs.archiveContainerName
    coldContainerName: dataStorage.outputs.coldContainerName
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'auditkeep-functionapp'
  params: {
    name: names.functionApp
    planName: names.plan
    location: location
    tags: allTags
    identityResourceId: identity.outputs.resourceId
    identityClientId: identity.outputs.clientId
    hostStorageAccountName: hostStorage.outputs.name
    deploymentContainerName: names.deploymentContainer
    dataStorageAccountName: dataStorage.outputs.name
    archiveContainerName: dataStorage.outputs.archiveContainerName
    coldContainerName: dataStorage.outputs.coldContainerName
    queueName: dataStorage.outputs.queueName
    tablePrefix: tablePrefix
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    keyVaultName: keyVault.outputs.name
    m365CredentialName: m365CredentialName
    m365TenantId: m365TenantId
    m365ClientId: m365ClientId
    m365AuthMode: m365AuthMode
    m365Cloud: m365Cloud
    m365ContentTypes: m365ContentTypes
    collectSchedule: collectSchedule
    compactSchedule: compactSchedule
    compactMaxSeconds: compactMaxSeconds
    retentionPreset: retentionPreset
    hotIndexRetentionDays: hotDays + retentionCheck
    coldRetentionDays: coldDays
    archiveRetentionDays: archiveDays
    archiveImmutabilityDays: wormDays
    queryMaxRangeDays: queryMaxRangeDays
    queryMaxExportRows: queryMaxExportRows
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    queryAuthEnabled: queryAuthEnabled
    queryAuthClientId: queryAuthClientId
    queryAuthAllowedApplications: queryAuthAllowedApplications
    queryAuthAllowedPrincipals: queryAuthAllowedPrincipals
  }
  // The identity's roles exist before the app first starts and resolves its Key Vault reference.
  dependsOn: [
    roles
  ]
}

// ---------------------------------------------------------------- Outputs (no secrets)

@description('The name of the function app (func azure functionapp publish <name> --python).')
output functionAppName string = functionApp.outputs.name

@description('The default host name of the function app; the API is https://<host>/api/...')
output functionAppDefaultHostname string = functionApp.outputs.defaultHostname

@description('The name of the data storage account (archive, queue, index tables).')
output dataStorageAccountName string = dataStorage.outputs.name

@description('The name of the key vault that must hold the Management API certificate or secret.')
output keyVaultName string = keyVault.outputs.name

@description('The name the certificate or secret must have in the key vault.')
output m365CredentialName string = m365CredentialName

@description('The client ID of the app\'s user-assigned managed identity (M365_CLIENT_ID in managed_identity mode).')
output managedIdentityClientId string = identity.outputs.clientId

@description('The object ID of the managed identity\'s service principal (input of infra/grant-activityfeed-permission.sh).')
output managedIdentityPrincipalId string = identity.outputs.principalId
