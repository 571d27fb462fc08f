"""Index entities: one compact binary payload per entity, read back field for field."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from collector import index, keys
from collector.errors import IndexFormatError
from collector.index import IndexItem, entities_for, entry_from_entity, location_from_entity
from collector.models import AuditEntry
from collector.timeutil import format_record_time
from devtools.bench import billed_entity_bytes

TENANT = "7f3c1e2a-4b5d-4c6e-8f90-1a2b3c4d5e6f"
WHEN = datetime(2026, 11, 25, 3, 4, 5, tzinfo=UTC)
ENTRY = AuditEntry(
    id="5b3d2f6e-8c41-4a7e-9d0b-08dc73f1a2b4", time=format_record_time(WHEN), user="anna.berg@contoso.com",
    operation="FileAccessed", object="https://contoso.sharepoint.com/sites/finance/Shared Documents/q3.xlsx",
    result="Succeeded", clientIp="2001:db8::5", userAgent="Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
    workload="SharePoint", recordType=6, contentType="Audit.SharePoint", organizationId=TENANT,
)


def round_trip(entry: AuditEntry) -> dict[str, AuditEntry]:
    out = {}
    for view, entity in entities_for(IndexItem(entry, WHEN, "Audit.SharePoint/x.json.gz", 7), TENANT):
        if view != "i":
            order = entity["RowKey"][keys.HASH_LEN:] if view in ("u", "o") else entity["RowKey"]
            out[view] = entry_from_entity(order, entity, TENANT)
    return out


@pytest.mark.parametrize(
    "entry",
    [
        ENTRY,
        replace(ENTRY, organizationId=TENANT.upper()),  # the tenant, whatever its case: stored as null
        replace(ENTRY, organizationId="0c9d8e7f-0000-4000-8000-0000000000aa"),  # another organization
        replace(ENTRY, organizationId=""),
        replace(ENTRY, user="", object="", result="", clientIp="", userAgent="", workload="", recordType=None),
        replace(ENTRY, contentType="Audit.SomethingNew"),  # not in the code table: stored by name
        replace(ENTRY, contentType="DLP.All", user="Zoë Ørsted <zoe@exämple.com>", object='quote " and \\ and \u2028'),
    ],
)
def test_every_view_reads_back_the_entry(entry):
    expected = replace(entry, organizationId=TENANT if entry.organizationId.lower() == TENANT else entry.organizationId)
    assert round_trip(entry) == {"t": expected, "u": expected, "o": expected}


def test_long_object_and_user_agent_are_cut_in_the_index():
    entry = replace(ENTRY, object="o" * 5000, userAgent="a" * 2000)
    read = round_trip(entry)["t"]
    assert (len(read.object), len(read.userAgent)) == (index.MAX_TEXT, index.MAX_TEXT)


def test_view_entities_are_keys_plus_one_binary_payload():
    for view, entity in entities_for(IndexItem(ENTRY, WHEN, "b.json.gz", 3), TENANT):
        assert set(entity) == {"PartitionKey", "RowKey", "d"}, view
        assert isinstance(entity["d"], bytes)


def test_binary_payload_costs_about_half_of_string_properties():
    # The same fields as ten String properties with short names (the previous layout) vs one Binary.
    (_, packed), *_ = entities_for(IndexItem(ENTRY, WHEN, "b.json.gz", 3), TENANT)
    fields = {"u": ENTRY.user, "op": ENTRY.operation, "ob": ENTRY.object, "r": ENTRY.result, "ip": ENTRY.clientIp,
              "ua": ENTRY.userAgent, "w": ENTRY.workload, "rt": ENTRY.recordType, "ct": ENTRY.contentType,
              "org": ENTRY.organizationId}
    as_strings = {"PartitionKey": packed["PartitionKey"], "RowKey": packed["RowKey"], **fields}
    keys_only = {"PartitionKey": packed["PartitionKey"], "RowKey": packed["RowKey"]}
    payload, strings = billed_entity_bytes(packed) - billed_entity_bytes(keys_only), \
        billed_entity_bytes(as_strings) - billed_entity_bytes(keys_only)
    assert payload < 0.5 * strings


def test_id_entity_locates_the_raw_record():
    *_, (view, entity) = entities_for(IndexItem(ENTRY, WHEN, "Audit.SharePoint/2026/11/25/03/x_y.json.gz", 41), TENANT)
    assert view == "i"
    assert location_from_entity(entity) == ("Audit.SharePoint/2026/11/25/03/x_y.json.gz", 41)


@pytest.mark.parametrize(
    "entity",
    [
        {"PartitionKey": "03", "RowKey": "k", "u": "anna", "op": "FileAccessed"},  # string properties, no payload
        {"PartitionKey": "03", "RowKey": "k", "d": b'[2,"a","b"]'},  # a future format
        {"PartitionKey": "03", "RowKey": "k", "d": b'[1,"a"]'},  # wrong arity
        {"PartitionKey": "03", "RowKey": "k", "d": b"\xff\x00 not json"},
    ],
)
def test_an_entity_in_another_format_is_a_clear_error(entity):
    with pytest.raises(IndexFormatError, match=r"'03'/'k' is not in index format 1"):
        location_from_entity(entity)
