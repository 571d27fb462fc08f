// Every permission the app's identity holds, as one data table (`grants`) applied by one loop
// per kind of scope. Least privilege: blob data on the archive container only, data-plane roles
// only, no management roles. Names are guid(scope, principal, role), so a redeploy is a no-op.

@description('Required. Object ID of the service principal that receives the roles (the app\'s managed identity).')
param principalId string

@description('Required. Name of the host storage account (AzureWebJobsStorage).')
param hostStorageAccountName string

@description('Required. Name of the data storage account.')
param dataStorageAccountName string

@description('Required. Name of the archive container in the data storage account.')
param archiveContainerName string

@description('Required. Name of the cold-tier container in the data storage account.')
param coldContainerName string

@description('Required. Name of the key vault holding the Management API credential.')
param keyVaultName string

@description('Required. Name of the Application Insights component.')
param applicationInsightsName string

// Built-in role definition IDs (learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // Storage Blob Data Owner
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe' // Storage Blob Data Contributor
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88' // Storage Queue Data Contributor
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // Storage Table Data Contributor
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6' // Key Vault Secrets User
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb' // Monitoring Metrics Publisher

var grants = [
  {
    scope: 'hostStorage'
    role: storageBlobDataOwner
    why: 'Functions host storage: timer locks, host keys, Flex deployment package (minimum role for identity-based AzureWebJobsStorage).'
  }
  {
    scope: 'hostStorage'
    role: storageTableDataContributor
    why: 'Functions host diagnostic events are written to tables in AzureWebJobsStorage.'
  }
  {
    scope: 'archiveContainer'
    role: storageBlobDataContributor
    why: 'Write-once raw archive blobs and raw-record reads, on the archive container only.'
  }
  {
    scope: 'coldContainer'
    role: storageBlobDataContributor
    why: 'Cold-tier Parquet files: write, read and delete superseded generations, on the cold container only.'
  }
  {
    scope: 'dataStorage'
    role: storageQueueDataContributor
    why: 'Enqueue content blobs, queue trigger, poison queue (the account holds only these two queues).'
  }
  {
    scope: 'dataStorage'
    role: storageTableDataContributor
    why: 'Index, ledger and state tables, created and dropped per month at run time (Create/Delete Table need account scope).'
  }
  {
    scope: 'keyVault'
    role: keyVaultSecretsUser
    why: 'Resolve the Key Vault reference to the Management API certificate or secret.'
  }
  {
    scope: 'appInsights'
    role: monitoringMetricsPublisher
    why: 'Entra-authenticated telemetry ingestion (local auth is disabled on the component).'
  }
]

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostStorageAccountName
}

resource dataStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: dataStorageAccountName
}

resource dataBlobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: dataStorage
  name: 'default'
}

resource archiveContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: dataBlobService
  name: archiveContainerName
}

resource coldContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: dataBlobService
  name: coldContainerName
}

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource hostStorageGrants 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for grant in filter(grants, g => g.scope == 'hostStorage'): {
  name: guid(hostStorage.id, principalId, grant.role)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', grant.role)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: grant.why
  }
}]

resource dataStorageGrants 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for grant in filter(grants, g => g.scope == 'dataStorage'): {
  name: guid(dataStorage.id, principalId, grant.role)
  scope: dataStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', grant.role)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: grant.why
  }
}]

resource archiveContainerGrants 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for grant in filter(grants, g => g.scope == 'archiveContainer'): {
  name: guid(archiveContainer.id, principalId, grant.role)
  scope: archiveContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', grant.role)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: grant.why
  }
}]

resource coldContainerGrants 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for grant in filter(grants, g => g.scope == 'coldContainer'): {
  name: guid(coldContainer.id, principalId, grant.role)
  scope: coldContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', grant.role)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: grant.why
  }
}]

resource keyVaultGrants 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for grant in filter(grants, g => g.scope == 'keyVault'): {
  name: guid(keyVault.id, principalId, grant.role)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', grant.role)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: grant.why
  }
}]

resource appInsightsGrants 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for grant in filter(grants, g => g.scope == 'appInsights'): {
  name: guid(appInsights.id, principalId, grant.role)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', grant.role)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: grant.why
  }
}]

@description('The grants applied: scope kind, role definition ID and reason (for review; no secrets).')
output grants array = grants
