"""Every built-in rule fires on its attack story, and nothing fires on the normal traffic around
it: a day of the synthetic tenant (simulator/synthetic.py) and the stories, collected together
from the simulator over HTTPS into Azurite, then read back through GET /api/alerts."""

from __future__ import annotations

from datetime import timedelta

from collector.alerts.rules import load_rules
from simulator import stories
from tests.integration.world import START, World

from .helpers import alerts, collect

# A story may set off a neighbouring rule as well (a spray from one address is also credential
# stuffing; a throttled bulk read also reads over 100 items): those are the only co-firings.
ALSO = {"password-spray": {"credential-stuffing"}, "mail-throttled": {"mail-items-excessive"}}


def test_every_rule_fires_on_its_story_and_never_on_normal_traffic(world: World) -> None:
    first = START - timedelta(hours=29)
    published = stories.publish_all(world.sim, first)
    collected = ["Audit.AzureActiveDirectory", "Audit.Exchange", "Audit.SharePoint", "Audit.General"]
    stats = world.sim.generate(START - timedelta(hours=26), START - timedelta(hours=2), records_per_hour=150, seed=5,
                               content_types=collected, blob_interval_minutes=60, latency_tail_rate=0.0)
    assert stats.records > 3000  # a day of normal traffic
    services = world.services()
    outcomes = collect(services)
    assert outcomes.get("indexed", 0) >= 100  # blobs of the day (re-deliveries after START wait) and the stories

    found = alerts(services)
    by_rule: dict[str, list[dict[str, object]]] = {}
    for alert in found:
        by_rule.setdefault(str(alert["rule"]), []).append(alert)
    story_ids = {name: {r["Id"] for r in records} for name, records in published.items()}
    every_story_id = set().union(*story_ids.values())

    builtin = {rule.name for rule in load_rules() if rule.kind != "health"}
    assert {story.rule for story in stories.STORIES.values()} == builtin  # a story for every built-in rule
    for name, story in stories.STORIES.items():
        fired = [a for a in by_rule.get(story.rule, []) if set(a["recordIds"]) <= story_ids[name]]
        assert len(fired) == 1, (name, story.rule, by_rule.get(story.rule))
    expected = len(stories.STORIES) + sum(len(extra) for extra in ALSO.values())
    assert len(found) == expected, sorted(a["rule"] for a in found)
    also = {rule for extra in ALSO.values() for rule in extra}
    for alert in found:  # quiet on normal traffic
        ids = set(alert["recordIds"])
        if alert["rule"] in also:
            # A threshold a story also crosses counts the victim's whole window: which of the
            # user's normal records of that window the alert lists depends on the order the
            # content blobs are processed in (the drain's batches), but the story's are there.
            assert ids & every_story_id, alert
        else:
            assert ids <= every_story_id, alert  # the other alerts are made of story records only
        assert set(alert) >= {"id", "rule", "severity", "time", "user", "summary", "recordIds", "count"}

    # Filters and order of GET /api/alerts.
    times = [a["time"] for a in found]
    assert times == sorted(times, reverse=True)
    spray = alerts(services, rule="password-spray")
    assert [a["rule"] for a in spray] == ["password-spray"] and spray[0]["count"] == 20
    assert all(a["severity"] == "high" for a in alerts(services, severity="high"))
    victim = alerts(services, user="MEGAN.BOWEN@contoso.com")
    assert victim and all(a["user"].lower() == "megan.bowen@contoso.com" for a in victim)
    window = alerts(services, start=spray[0]["time"], end=(START - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert spray[0]["id"] in {a["id"] for a in window}
    assert all(a["time"] >= spray[0]["time"] for a in window)
