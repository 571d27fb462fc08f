// Data storage: the raw archive container (write-once gzip blobs), the content queue and its
// poison queue, and the index/state tables (created per month by the app at run time).
// The retention policy lives here: lifecycle tiering and deletion, optional WORM retention.

@description('Required. Name of the storage account (3-24 lower-case letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Required. Name of the raw archive blob container (AUDIT_ARCHIVE_CONTAINER).')
param archiveContainerName string

@description('Required. Name of the cold-tier container (AUDIT_COLD_CONTAINER): Parquet day files, Cool then Cold, never Archive.')
param coldContainerName string

@description('Optional. Days after upload before a cold-tier file moves from Cool to Cold; 0 keeps it in Cool.')
@minValue(0)
param coldDaysToCold int = 30

@description('Optional. COLD_RETENTION_DAYS: the cold container\'s lifecycle deletes files this many days after their last write, a backstop behind the app, which deletes whole days by event time first (a file is written after its day ends). 0 = no deletion.')
@minValue(0)
param coldDeleteAfterDays int = 0

@description('Required. Name of the content queue (AUDIT_QUEUE_NAME); the poison queue is <name>-poison.')
param queueName string

@description('Optional. Azure region of the account.')
param location string = resourceGroup().location

@description('Optional. Tags applied to the account.')
param tags object = {}

@description('Optional. Replication. Only SKUs that support the Archive tier are allowed (not ZRS/GZRS).')
@allowed([
  'Standard_LRS'
  'Standard_GRS'
  'Standard_RAGRS'
])
param skuName string = 'Standard_LRS'

@description('Optional. Days after upload before an archive blob moves to Cool; 0 keeps it in Hot.')
@minValue(0)
param daysToCool int = 10

@description('Optional. Days after upload before an archive blob moves to Cold; 0 skips Cold.')
@minValue(0)
param daysToCold int = 90

@description('Optional. Days after upload before an archive blob moves to Archive; 0 skips Archive.')
@minValue(0)
param daysToArchive int = 365

@description('Optional. Days after upload before an archive blob is deleted; 0 keeps blobs forever. Default 7 years.')
@minValue(0)
param deleteAfterDays int = 2557

@description('Optional. Time-based retention (WORM) on the archive container in days; 0 = no immutability policy.')
@minValue(0)
@maxValue(146000)
param immutabilityDays int = 0

@description('Optional. Set to true once the immutability policy has been locked (az CLI): a locked policy can only be extended, so the template stops declaring it.')
param immutabilityLocked bool = false

@description('Optional. Days a deleted blob or container stays recoverable (soft delete).')
@minValue(1)
@maxValue(365)
param softDeleteDays int = 14

// Derived from the retention (deleteAfterDays): a tier is skipped when the blob would leave it
// before its minimum billed duration (Cool 30, Cold 90, Archive 180 days), since an early deletion is
// billed as if it stayed; so a 12-month retention (pci, gdpr-12m) never moves blobs to Archive.
var toCool = deleteAfterDays == 0 || deleteAfterDays - daysToCool >= 30 ? daysToCool : 0
var toCold = deleteAfterDays == 0 || deleteAfterDays - daysToCold >= 90 ? daysToCold : 0
var toArchive = deleteAfterDays == 0 || deleteAfterDays - daysToArchive >= 180 ? daysToArchive : 0
// Tiers must come in order: each enabled day count larger than every enabled one before it.
var lifecycleOrderValid = (toCool == 0 || toCold == 0 || toCold > toCool) && (toCool == 0 || toArchive == 0 || toArchive > toCool) && (toCold == 0 || toArchive == 0 || toArchive > toCold) && (deleteAfterDays == 0 || ((toCool == 0 || deleteAfterDays > toCool) && (toCold == 0 || deleteAfterDays > toCold) && (toArchive == 0 || deleteAfterDays > toArchive)))
// ARM evaluates only the taken branch of if(), so an invalid order fails the deployment with this message.
var lifecycleCheck = lifecycleOrderValid ? 0 : int('Invalid retention: the days to Cool, Cold, Archive and deletion must increase in that order (0 = skip).')

var coolAction = toCool > 0 ? { tierToCool: { daysAfterCreationGreaterThan: toCool + lifecycleCheck } } : {}
var coldAction = toCold > 0 ? { tierToCold: { daysAfterCreationGreaterThan: toCold + lifecycleCheck } } : {}
var archiveAction = toArchive > 0 ? { tierToArchive: { daysAfterCreationGreaterThan: toArchive + lifecycleCheck } } : {}
var deleteAction = deleteAfterDays > 0 ? { delete: { daysAfterCreationGreaterThan: deleteAfterDays + lifecycleCheck } } : {}
var lifecycleEnabled = daysToCool > 0 || daysToCold > 0 || daysToArchive > 0 || deleteAfterDays > 0 || coldDaysToCold > 0 || coldDeleteAfterDays > 0

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: The Flex Consumption app is not VNet-integrated here, so it reaches storage over the public endpoint; access is Entra-only (shared keys off, no public blobs). Private endpoints are the documented hardening step (docs/deploy.md).
  // checkov:skip=CKV_AZURE_59: Same reason as CKV_AZURE_35: public endpoint with Entra-only authorization.
  // checkov:skip=CKV_AZURE_206: Replication is the skuName parameter (LRS default for cost; GRS/RA-GRS allowed). ZRS is excluded because it cannot use the Archive tier.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
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
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
  }
}

resource archiveContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: archiveContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Container-level time-based retention: blobs cannot be modified or deleted until they are
// immutabilityDays old. Created unlocked; lock it with the az CLI (docs/deploy.md) after testing.
resource archiveImmutability 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = if (immutabilityDays > 0 && !immutabilityLocked) {
  parent: archiveContainer
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: immutabilityDays
    allowProtectedAppendWrites: false
  }
}

// The cold tier: queries read these files directly, so they stay online. The app uploads them to
// Cool; the lifecycle rule below moves them to Cold and never to Archive (docs/cold-tier.md).
resource coldContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: coldContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Cold: only when the file stays there its minimum billed 90 days before the deletion.
var coldFilesToCold = coldDaysToCold > 0 && (coldDeleteAfterDays == 0 || coldDeleteAfterDays - coldDaysToCold >= 90) ? coldDaysToCold : 0
var coldTierAction = coldFilesToCold > 0 ? { tierToCold: { daysAfterModificationGreaterThan: coldFilesToCold } } : {}
var coldDeleteAction = coldDeleteAfterDays > 0 ? { delete: { daysAfterModificationGreaterThan: coldDeleteAfterDays } } : {}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource contentQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: queueName
}

resource poisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: '${queueName}-poison'
}

// Reindex requests (python -m collector reindex --enqueue; AUDIT_REINDEX_QUEUE in functionapp.bicep) and their poison queue.
resource reindexQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: 'audit-reindex'
}

resource reindexPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: 'audit-reindex-poison'
}

// Alert deliveries (collector/alerts; AUDIT_ALERT_QUEUE in functionapp.bicep) and their poison queue.
resource alertQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: 'audit-alerts'
}

resource alertPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: 'audit-alerts-poison'
}

// Lifecycle management on the archive prefix only (tables and queues are not blobs).
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = if (lifecycleEnabled) {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          enabled: true
          name: 'archive-retention'
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${archiveContainerName}/'
              ]
            }
            actions: {
              baseBlob: union(coolAction, coldAction, archiveAction, deleteAction)
            }
          }
        }
        {
          enabled: true
          name: 'cold-tier-online'
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${coldContainerName}/'
              ]
            }
            actions: {
              baseBlob: union({ tierToCool: { daysAfterModificationGreaterThan: 0 } }, coldTierAction, coldDeleteAction)
            }
          }
        }
      ]
    }
  }
}

@description('The resource ID of the data storage account.')
output resourceId string = account.id

@description('The name of the data storage account (AUDIT_STORAGE_ACCOUNT_NAME).')
output name string = account.name

@description('The name of the archive container.')
output archiveContainerName string = archiveContainer.name

@description('The name of the cold-tier container.')
output coldContainerName string = coldContainer.name

@description('The name of the content queue.')
output queueName string = contentQueue.name

@description('The name of the poison queue.')
output poisonQueueName string = poisonQueue.name
