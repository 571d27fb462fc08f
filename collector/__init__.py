"""AuditKeep collector: Office 365 Management Activity API → raw archive (Blob) + index (Table) → query API.

Never imports azure.functions: function_app.py wires this library into the Functions host.
"""
