// Key Vault for the Management API credential (a PEM certificate, recommended, or a client
// secret). Azure RBAC authorization only; the template never creates or reads a secret value:
// the operator puts the certificate or secret in with the az CLI (docs/deploy.md).

@description('Required. Name of the key vault (3-24 characters, globally unique).')
@minLength(3)
@maxLength(24)
param name string

@description('Optional. Azure region of the vault.')
param location string = resourceGroup().location

@description('Optional. Tags applied to the vault.')
param tags object = {}

@description('Optional. Days a deleted vault or secret stays recoverable (7-90).')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 90

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: App Service resolves Key Vault references from the app's outbound addresses, which are not a trusted service; without VNet integration the vault must accept public traffic. Access is Azure RBAC only (Key Vault Secrets User for the app's identity).
  // checkov:skip=CKV_AZURE_189: Same reason as CKV_AZURE_109; private endpoints plus VNet integration are the documented hardening step.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

@description('The resource ID of the key vault.')
output resourceId string = vault.id

@description('The name of the key vault.')
output name string = vault.name

@description('The vault URI, e.g. https://<name>.vault.azure.net/.')
output uri string = vault.properties.vaultUri
