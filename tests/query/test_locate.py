"""Lookups by Id (GET /api/audit/{id}) read a bounded number of day tables and say how far back they looked."""

from __future__ import annotations

from collector.api import Api
from collector.models import View
from tests.query.data import OTHER_ORG


def index_days(dataset) -> list[str]:
    # From storage, not from dataset.rows: other tests of the session may add days to this index.
    return sorted(dataset.services.index.tables(View.ID, refresh=True), reverse=True)


def test_an_unknown_id_reads_at_most_max_days_and_says_so(dataset):
    days = index_days(dataset)
    lookup = dataset.services.index.lookup("no-such-id", max_days=3)
    assert lookup.found is None and lookup.days == 3 and lookup.oldest_day == days[2] and lookup.more


def test_a_record_older_than_the_bound_is_not_read_but_found_within_it(dataset):
    january = next(r for r in dataset.rows if r.when.month == 1)
    index = dataset.services.index
    assert index.lookup(january.entry.id, max_days=3).found is None
    found = index.lookup(january.entry.id)
    assert found.found is not None and not found.more and found.days == len(index_days(dataset))


def test_another_organizations_record_with_the_same_id_is_found(dataset):
    other = next(r for r in dataset.rows if r.entry.organizationId == OTHER_ORG and r.entry.id != "twin-0000-4000-8000-000000000000")
    lookup = dataset.services.index.lookup(other.entry.id)
    assert lookup.found is not None
    assert dataset.services.archive.record(*lookup.found, other.entry.id) == other.raw


def test_the_404_says_how_far_back_it_looked(dataset):
    days = index_days(dataset)
    response = Api(dataset.services).handle("GET", "audit/no-such-id", {}, {}, "https://x/api")
    assert response.status == 404
    message = response.json()["error"]["message"]
    oldest = days[-1]
    assert f"searched all {len(days)} days of the index, back to {oldest[:4]}-{oldest[4:6]}-{oldest[6:]}" in message
