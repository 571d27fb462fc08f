// The app's one identity: a user-assigned managed identity used for host storage, data storage,
// Key Vault references, Application Insights ingestion and (optionally) the Management API.

@description('Required. Name of the user-assigned managed identity.')
param name string

@description('Optional. Azure region of the identity.')
param location string = resourceGroup().location

@description('Optional. Tags applied to the identity.')
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

@description('The resource ID of the identity.')
output resourceId string = identity.id

@description('The name of the identity.')
output name string = identity.name

@description('The client (application) ID of the identity: AZURE_CLIENT_ID and the *__clientId settings.')
output clientId string = identity.properties.clientId

@description('The object ID of the identity\'s service principal: the principal of every role assignment.')
output principalId string = identity.properties.principalId
