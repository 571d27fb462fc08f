"""Retention in the templates follows the same numbers as the app (docs/retention.md): the presets
are collector/settings.py's, the day counts reach both the app settings and the lifecycle and
WORM resources, and tiers are derived from the retention instead of fighting it."""

from __future__ import annotations

import re

from collector import settings

from .bicep import INFRA, MODULES, parse


def _preset_table() -> dict[str, dict[str, int]]:
    table = parse(INFRA / "main.bicep")["variables"]["retentionPresets"]["value"]
    return {name.strip("'"): values for name, values in table.items()}


def test_bicep_presets_are_the_apps() -> None:
    expected = {name: {"hot": p.hot, "cold": p.cold, "archive": p.archive, "immutability": p.immutability}
                for name, p in settings.RETENTION_PRESETS.items()}
    assert _preset_table() == expected
    allowed = next(d["argument"] for d in parse(INFRA / "main.bicep")["parameters"]["retentionPreset"]["decorators"]
                   if d["type"] == "allowed")
    assert set(allowed) == set(settings.RETENTION_PRESETS)


def test_explicit_parameters_win_and_every_day_count_reaches_app_and_storage() -> None:
    text = (INFRA / "main.bicep").read_text()
    for param, var, key in (("hotIndexRetentionDays", "hotDays", "hot"), ("coldRetentionDays", "coldDays", "cold"),
                            ("archiveDeleteAfterDays", "archiveDays", "archive"),
                            ("archiveImmutabilityDays", "wormDays", "immutability")):
        assert f"var {var} = {param} >= 0 ? {param} : preset.{key}" in text, param
    # the same variables feed the lifecycle/WORM module and the app settings
    assert "deleteAfterDays: archiveDays + retentionCheck" in text and "immutabilityDays: wormDays" in text
    assert "coldDeleteAfterDays: coldDays" in text
    for line in ("retentionPreset: retentionPreset", "hotIndexRetentionDays: hotDays + retentionCheck",
                 "coldRetentionDays: coldDays", "archiveRetentionDays: archiveDays", "archiveImmutabilityDays: wormDays"):
        assert line in text, line
    app = (MODULES / "functionapp.bicep").read_text()
    for setting, param in (("RETENTION_PRESET", "retentionPreset"), ("HOT_INDEX_RETENTION_DAYS", "string(hotIndexRetentionDays)"),
                           ("COLD_RETENTION_DAYS", "string(coldRetentionDays)"),
                           ("ARCHIVE_RETENTION_DAYS", "string(archiveRetentionDays)"),
                           ("ARCHIVE_IMMUTABILITY_DAYS", "string(archiveImmutabilityDays)")):
        assert f"  {setting}: {param}\n" in app, setting
        assert setting in settings.ENVIRONMENT_VARIABLES


def test_the_template_checks_the_apps_retention_rules() -> None:
    text = (INFRA / "main.bicep").read_text()
    assert re.search(r"var retentionCheck = retentionValid \? 0 : int\('Invalid retention", text)
    assert "coldDays >= hotDays" in text and "archiveDays >= hotDays" in text and "wormDays <= archiveDays" in text


def test_tiers_are_skipped_when_deletion_comes_before_their_minimum_billed_days() -> None:
    text = (MODULES / "storage-data.bicep").read_text()
    for tier, minimum in (("toCool", 30), ("toCold", 90), ("toArchive", 180)):
        source = {"toCool": "daysToCool", "toCold": "daysToCold", "toArchive": "daysToArchive"}[tier]
        assert f"var {tier} = deleteAfterDays == 0 || deleteAfterDays - {source} >= {minimum} ? {source} : 0" in text
    # the cold tier's files: deleted by lifecycle as a backstop, moved to Cold only if they stay 90 days
    assert "var coldDeleteAction = coldDeleteAfterDays > 0 ? { delete: { daysAfterModificationGreaterThan: coldDeleteAfterDays } } : {}" in text
    assert "coldDeleteAfterDays - coldDaysToCold >= 90" in text
    assert "union({ tierToCool: { daysAfterModificationGreaterThan: 0 } }, coldTierAction, coldDeleteAction)" in text


def test_parameters_file_picks_a_preset_and_leaves_the_days_to_it() -> None:
    text = (INFRA / "main.bicepparam").read_text()
    assert re.search(r"^param retentionPreset = '(\w|-)+'$", text, re.M)
    for param in ("hotIndexRetentionDays", "coldRetentionDays", "archiveDeleteAfterDays", "archiveImmutabilityDays"):
        assert not re.search(rf"^param {param} =", text, re.M), f"{param} would override the preset"
