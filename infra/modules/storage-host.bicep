// Host storage for the Functions runtime (AzureWebJobsStorage: timer locks, keys, diagnostic
// events) and the Flex Consumption deployment package container. Keyless: only Entra identities.

@description('Required. Name of the storage account (3-24 lower-case letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Required. Name of the blob container that holds the Flex Consumption deployment package.')
param deploymentContainerName string

@description('Optional. Azure region of the account.')
param location string = resourceGroup().location

@description('Optional. Tags applied to the account.')
param tags object = {}

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: The Flex Consumption app is not VNet-integrated here, so it reaches storage over the public endpoint; access is Entra-only (shared keys off, no public blobs). Private endpoints are the documented hardening step (docs/deploy.md).
  // checkov:skip=CKV_AZURE_59: Same reason as CKV_AZURE_35: public endpoint with Entra-only authorization.
  // checkov:skip=CKV_AZURE_206: Host state (locks, keys, deployment package) is disposable and re-created by a redeploy; LRS is the documented choice for AzureWebJobsStorage.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

@description('The resource ID of the host storage account.')
output resourceId string = account.id

@description('The name of the host storage account.')
output name string = account.name

@description('The blob endpoint, e.g. https://<name>.blob.core.windows.net/.')
output blobEndpoint string = account.properties.primaryEndpoints.blob
