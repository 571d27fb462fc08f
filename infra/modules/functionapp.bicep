// The Flex Consumption (FC1) plan and the Linux Python 3.11 function app, its app settings (the
// names collector/settings.py reads; tests/infra checks the contract) and, optionally, App Service
// authentication (Entra ID) in front of the HTTP query routes.

@description('Required. Name of the function app (also its default host name prefix).')
param name string

@description('Required. Name of the Flex Consumption plan.')
param planName string

@description('Optional. Azure region (must offer Flex Consumption: az functionapp list-flexconsumption-locations).')
param location string = resourceGroup().location

@description('Optional. Tags applied to the plan and the app.')
param tags object = {}

@description('Required. Resource ID of the user-assigned managed identity the app runs as.')
param identityResourceId string

@description('Required. Client ID of the user-assigned managed identity.')
param identityClientId string

@description('Required. Name of the host storage account (AzureWebJobsStorage).')
param hostStorageAccountName string

@description('Required. Blob container in the host account that receives the deployment package.')
param deploymentContainerName string

@description('Required. Name of the data storage account (archive, queue, tables).')
param dataStorageAccountName string

@description('Required. Archive container name (AUDIT_ARCHIVE_CONTAINER).')
param archiveContainerName string

@description('Required. Content queue name (AUDIT_QUEUE_NAME).')
param queueName string

@description('Required. Prefix of every index and state table (AUDIT_TABLE_PREFIX).')
param tablePrefix string

@description('Required. Application Insights connection string.')
param applicationInsightsConnectionString string

@description('Required. Name of the key vault that holds the Management API credential.')
param keyVaultName string

@description('Required. Name of the Key Vault certificate or secret with the Management API credential (unused for managed_identity).')
param m365CredentialName string

@description('Required. Microsoft 365 tenant ID (M365_TENANT_ID). With m365AuthMode managed_identity it must be tenant().tenantId, the tenant of this deployment and of its managed identity.')
param m365TenantId string

@description('Optional. App registration client ID for the certificate and secret modes (M365_CLIENT_ID); ignored for managed_identity.')
param m365ClientId string = ''

@description('Required. How the collector authenticates to the Management Activity API (M365_AUTH).')
@allowed([
  'certificate'
  'secret'
  'managed_identity'
])
param m365AuthMode string

@description('Required. Microsoft 365 cloud (M365_CLOUD).')
@allowed([
  'commercial'
  'gcc'
  'gcchigh'
  'dod'
])
param m365Cloud string

@description('Required. Content types to collect (M365_CONTENT_TYPES).')
param m365ContentTypes array

@description('Required. Cold-tier container name (AUDIT_COLD_CONTAINER).')
param coldContainerName string

@description('Required. NCRONTAB schedule of the cold-tier compaction timer (COMPACT_SCHEDULE).')
param compactSchedule string

@description('Required. Seconds after which the compaction timer stops between parts of a large day (COMPACT_MAX_SECONDS; 0 = no limit).')
param compactMaxSeconds int

@description('Required. NCRONTAB schedule of the collection timer (COLLECT_SCHEDULE).')
param collectSchedule string

@description('Required. Retention preset name (RETENTION_PRESET); the day counts below are already resolved from it.')
param retentionPreset string

@description('Required. Days the hot index keeps a day (HOT_INDEX_RETENTION_DAYS; 0 = forever).')
param hotIndexRetentionDays int

@description('Required. Days the cold tier keeps a day (COLD_RETENTION_DAYS; 0 = no cold tier).')
param coldRetentionDays int

@description('Required. Days the raw archive keeps a blob (ARCHIVE_RETENTION_DAYS; 0 = forever); the lifecycle rule uses the same number.')
param archiveRetentionDays int

@description('Required. The archive container\'s WORM period in days (ARCHIVE_IMMUTABILITY_DAYS; 0 = none).')
param archiveImmutabilityDays int

@description('Required. Cap on the time range of a query without a user or operation filter, in days (QUERY_MAX_RANGE_DAYS); 0 = no cap.')
param queryMaxRangeDays int

@description('Required. Row cap of one CSV/NDJSON export (QUERY_MAX_EXPORT_ROWS).')
param queryMaxExportRows int

@description('Optional. Flex Consumption instance memory in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Optional. Upper bound of the instance count (Flex Consumption accepts 40-1000).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Optional. Put App Service authentication (Entra ID) in front of every route, in addition to function keys.')
param queryAuthEnabled bool = false

@description('Conditional. Client ID of the app registration that represents the query API. Required when queryAuthEnabled.')
param queryAuthClientId string = ''

@description('Optional. Client IDs of the applications allowed to call the API (token appid/azp); empty = any application that can get a token.')
param queryAuthAllowedApplications array = []

@description('Optional. Object IDs of the users or service principals allowed to call the API (token oid); empty = any principal that can get a token.')
param queryAuthAllowedPrincipals array = []

var storageSuffix = environment().suffixes.storage

// Cross-parameter checks. ARM evaluates only the taken branch of if(), so a bad combination fails
// the deployment with the message inside int().
var m365ClientIdChecked = m365AuthMode != 'managed_identity' && empty(m365ClientId) ? string(int('m365ClientId (the app registration client ID) is required when m365AuthMode is certificate or secret.')) : m365ClientId
var queryAuthClientIdChecked = queryAuthEnabled && empty(queryAuthClientId) ? string(int('queryAuthClientId is required when queryAuthEnabled is true.')) : queryAuthClientId
// A managed identity gets tokens only from its own tenant (the tenant this deployment runs in, where
// identity.bicep creates it), and the Management API refuses a token whose tenant differs from the
// one in its URL (AF20010): collecting from another tenant needs an app registration there.
var m365TenantIdChecked = m365AuthMode == 'managed_identity' && toLower(m365TenantId) != toLower(tenant().tenantId) ? string(int('m365TenantId must be the tenant of this deployment (tenant().tenantId) when m365AuthMode is managed_identity: a managed identity cannot get a token for another tenant. Use certificate or secret mode with an app registration in the Microsoft 365 tenant.')) : m365TenantId

// Functions host storage (AzureWebJobsStorage) by identity: no connection string, no key.
var hostStorageSettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: 'https://${hostStorageAccountName}.blob.${storageSuffix}'
  AzureWebJobsStorage__queueServiceUri: 'https://${hostStorageAccountName}.queue.${storageSuffix}'
  AzureWebJobsStorage__tableServiceUri: 'https://${hostStorageAccountName}.table.${storageSuffix}'
}

// Application Insights with Entra-authenticated ingestion.
var monitoringSettings = {
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
}

// HTTP streams (function_app.py streams exports): the Python worker indexes the FastAPI extension at
// start-up only with this setting (Microsoft's "Azure Functions HTTP trigger", "Enable HTTP streams").
var workerSettings = {
  PYTHON_ENABLE_INIT_INDEXING: '1'
}

// Read by function_app.py's bindings: the timer schedule and the queue trigger connection AUDIT_STORAGE.
var bindingSettings = {
  COLLECT_SCHEDULE: collectSchedule
  COMPACT_SCHEDULE: compactSchedule
  AUDIT_STORAGE__queueServiceUri: 'https://${dataStorageAccountName}.queue.${storageSuffix}'
  AUDIT_STORAGE__credential: 'managedidentity'
  AUDIT_STORAGE__clientId: identityClientId
}

// Read by collector/settings.py (Settings.from_env).
var collectorSettings = {
  M365_TENANT_ID: m365TenantIdChecked
  M365_CLIENT_ID: m365AuthMode == 'managed_identity' ? identityClientId : m365ClientIdChecked
  M365_AUTH: m365AuthMode
  M365_CLOUD: m365Cloud
  M365_CONTENT_TYPES: join(m365ContentTypes, ',')
  AUDIT_STORAGE_ACCOUNT_NAME: dataStorageAccountName
  AUDIT_STORAGE_ENDPOINT_SUFFIX: storageSuffix
  AZURE_CLIENT_ID: identityClientId
  AUDIT_ARCHIVE_CONTAINER: archiveContainerName
  AUDIT_COLD_CONTAINER: coldContainerName
  COMPACT_MAX_SECONDS: string(compactMaxSeconds)
  AUDIT_QUEUE_NAME: queueName
  AUDIT_REINDEX_QUEUE: 'audit-reindex' // the reindex queue trigger's %AUDIT_REINDEX_QUEUE% (storage-data.bicep creates it)
  AUDIT_ALERT_QUEUE: 'audit-alerts' // deliver_alert's %AUDIT_ALERT_QUEUE% (storage-data.bicep creates it; docs/alerts.md)
  ALERTS_ENABLED: 'true'
  AUDIT_TABLE_PREFIX: tablePrefix
  QUERY_MAX_RANGE_DAYS: string(queryMaxRangeDays)
  QUERY_MAX_EXPORT_ROWS: string(queryMaxExportRows)
  RETENTION_PRESET: retentionPreset
  HOT_INDEX_RETENTION_DAYS: string(hotIndexRetentionDays)
  COLD_RETENTION_DAYS: string(coldRetentionDays)
  ARCHIVE_RETENTION_DAYS: string(archiveRetentionDays)
  ARCHIVE_IMMUTABILITY_DAYS: string(archiveImmutabilityDays)
}

// The credential never passes through the template: the setting is a Key Vault reference that the
// platform resolves with keyVaultReferenceIdentity. A certificate stored with content type
// application/x-pem-file is read through its secret as PEM (private key + certificate).
var credentialReference = '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${m365CredentialName})'
var certificateSettings = m365AuthMode == 'certificate' ? { M365_CLIENT_CERTIFICATE: credentialReference } : {}
var secretSettings = m365AuthMode == 'secret' ? { M365_CLIENT_SECRET: credentialReference } : {}

var appSettings = union(hostStorageSettings, monitoringSettings, workerSettings, bindingSettings, collectorSettings, certificateSettings, secretSettings)

var allowedApplicationsPolicy = empty(queryAuthAllowedApplications) ? {} : { allowedApplications: queryAuthAllowedApplications }
var allowedPrincipalsPolicy = empty(queryAuthAllowedPrincipals) ? {} : { allowedPrincipals: { identities: queryAuthAllowedPrincipals } }

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Zone redundancy on Flex Consumption needs always-ready instances (billed while idle); the collector is resumable and the queue buffers work, so it is left to the operator.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_16: Every HTTP route requires a function key; Entra ID authentication in front is the optional queryAuthEnabled parameter (authsettingsV2 below).
  // checkov:skip=CKV_AZURE_17: Incoming client certificates are not used: callers authenticate with function keys or Entra tokens.
  // checkov:skip=CKV_AZURE_222: The query API is reached over the internet by design (function keys, optional Entra ID); private access needs VNet integration and a private endpoint, documented as a hardening step.
  // checkov:skip=CKV_AZURE_213: The platform health check is an App Service plan feature; AuditKeep exposes GET /api/health for external probes instead.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero by design; a minimum instance count would mean always-ready instances billed while idle.
  // checkov:skip=CKV_AZURE_78: Checkov reads siteConfig.ftpsState, which Flex Consumption rejects ("FtpsState ... for Flex Consumption sites is invalid"); FTP publishing is off through the ftpBasicAuth policy below (allow: false).
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityResourceId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityResourceId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
      remoteDebuggingEnabled: false
      appSettings: [for setting in items(appSettings): {
        name: setting.key
        value: setting.value
      }]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: 'https://${hostStorageAccountName}.blob.${storageSuffix}/${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityResourceId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// No basic-auth (publishing profile) credentials for FTP or the SCM endpoint: deploy with Entra ID.
resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

// Optional Entra ID front door. Declared in both states so that turning the parameter off really
// turns authentication off. App Service authentication validates the token (issuer, audience,
// allowed applications/principals); it does not check app roles. Callers are restricted to an app
// role with "Assignment required" on the API's enterprise application (docs/deploy.md).
var entraProvider = {
  azureActiveDirectory: {
    enabled: true
    registration: {
      clientId: queryAuthClientIdChecked
      openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
    }
    validation: {
      allowedAudiences: [
        queryAuthClientIdChecked
        'api://${queryAuthClientIdChecked}'
      ]
      defaultAuthorizationPolicy: union(allowedApplicationsPolicy, allowedPrincipalsPolicy)
    }
  }
}

resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_13: Checkov reads only the classic authsettings 'enabled' flag; this is authsettingsV2, enabled by the queryAuthEnabled parameter (function keys protect every route either way).
  // checkov:skip=CKV_AZURE_63: Checkov applies web-app 'web' config checks to every sites/config resource; HTTP logging is not a setting of authsettingsV2 (function logs go to Application Insights).
  // checkov:skip=CKV_AZURE_65: Same as CKV_AZURE_63 (detailed error pages are a web-app 'web' config setting).
  // checkov:skip=CKV_AZURE_66: Same as CKV_AZURE_63 (failed request tracing is a web-app 'web' config setting).
  // checkov:skip=CKV_AZURE_80: Same as CKV_AZURE_63 (.NET Framework version); the app is Python on Linux.
  // checkov:skip=CKV_AZURE_88: Same as CKV_AZURE_63; Flex Consumption has no Azure Files content share, code runs from the deployment blob container.
  // checkov:skip=CKV_AZURE_222: Same as CKV_AZURE_63; public network access is decided on the site (see its skip).
  parent: site
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: queryAuthEnabled
    }
    globalValidation: {
      requireAuthentication: queryAuthEnabled
      unauthenticatedClientAction: 'Return401'
    }
    httpSettings: {
      requireHttps: true
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
    identityProviders: queryAuthEnabled ? entraProvider : {}
  }
}

@description('The resource ID of the function app.')
output resourceId string = site.id

@description('The name of the function app.')
output name string = site.name

@description('The default host name, e.g. <name>.azurewebsites.net.')
output defaultHostname string = site.properties.defaultHostName

@description('The names of the app settings the template sets (values omitted).')
output appSettingNames array = [for setting in items(appSettings): setting.key]
