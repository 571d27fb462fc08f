// Log Analytics workspace + workspace-based Application Insights with local (key) authentication
// disabled: telemetry is accepted only with an Entra token (the app sends it as its managed
// identity, which holds Monitoring Metrics Publisher on the component).

@description('Required. Name of the Log Analytics workspace.')
param logAnalyticsName string

@description('Required. Name of the Application Insights component.')
param applicationInsightsName string

@description('Optional. Azure region of both resources.')
param location string = resourceGroup().location

@description('Optional. Tags applied to both resources.')
param tags object = {}

@description('Optional. Days the workspace keeps logs (the first 31 days are included in the ingestion price).')
@minValue(30)
@maxValue(730)
param retentionInDays int = 30

@description('Optional. Daily ingestion cap in GB; -1 for no cap. A cap bounds the cost of a runaway log loop.')
@minValue(-1)
param dailyQuotaGb int = 1

resource workspace 'Microsoft.OperationalInsights/workspaces@2022-10-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    workspaceCapping: {
      dailyQuotaGb: dailyQuotaGb
    }
    features: {
      disableLocalAuth: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: applicationInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    IngestionMode: 'LogAnalytics'
    DisableLocalAuth: true
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

@description('The resource ID of the Application Insights component (scope of Monitoring Metrics Publisher).')
output applicationInsightsResourceId string = appInsights.id

@description('The name of the Application Insights component.')
output applicationInsightsName string = appInsights.name

@description('The connection string of the component (not a secret: ingestion still requires an Entra token).')
output connectionString string = appInsights.properties.ConnectionString

@description('The resource ID of the Log Analytics workspace.')
output logAnalyticsResourceId string = workspace.id
