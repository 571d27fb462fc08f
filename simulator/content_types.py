"""The content types the simulated API offers: its own copy of what it imitates (the Management
Activity API's five types), so the simulator never imports the collector it is a test double for."""

from __future__ import annotations

CONTENT_TYPES = (
    "Audit.AzureActiveDirectory",
    "Audit.Exchange",
    "Audit.SharePoint",
    "Audit.General",
    "DLP.All",
)
