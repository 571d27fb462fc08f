"""The cold tier's wiring: its settings, the timer function's binding, the CLI's argument check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector import cli
from collector.errors import ConfigError
from collector.settings import AZURE_REQUIRED_SETTINGS, BINDING_SETTINGS, ENVIRONMENT_VARIABLES, Settings
from tests.app_functions import functions


def test_cold_container_defaults_and_is_validated() -> None:
    assert Settings.from_env({}).cold_container == "audit-cold"
    assert Settings.from_env({"AUDIT_COLD_CONTAINER": "my-cold"}).cold_container == "my-cold"
    with pytest.raises(ConfigError, match="AUDIT_COLD_CONTAINER must be a valid container name"):
        Settings.from_env({"AUDIT_COLD_CONTAINER": "Bad_Name"})
    with pytest.raises(ConfigError, match="AUDIT_COLD_CONTAINER must differ from AUDIT_ARCHIVE_CONTAINER"):
        Settings.from_env({"AUDIT_COLD_CONTAINER": "audit-archive"})
    assert "AUDIT_COLD_CONTAINER" in ENVIRONMENT_VARIABLES


def test_compaction_timer_runs_on_its_own_schedule_setting() -> None:
    fn = functions()["compact_cold_tier"]
    raw = [json.loads(b) for b in fn.get_raw_bindings()]  # type: ignore[attr-defined]  # azure.functions leaves it untyped
    (timer,) = [b for b in raw if b["type"].endswith("Trigger")]
    assert timer["type"] == "timerTrigger" and timer["runOnStartup"] is False
    assert timer["schedule"] == "%COMPACT_SCHEDULE%"
    assert "COMPACT_SCHEDULE" in BINDING_SETTINGS and "COMPACT_SCHEDULE" in AZURE_REQUIRED_SETTINGS


def test_compact_rejects_a_bad_through_day_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["compact", "--through", "2024-13-01"]) == cli.EXIT_CONFIG
    err = capsys.readouterr().err
    assert "--through must be a day as YYYY-MM-DD" in err and len(err.strip().splitlines()) == 1


def test_compaction_time_budget_defaults_inside_the_function_timeout_and_is_validated() -> None:
    assert Settings.from_env({}).compact_max_seconds == 1200  # host.json functionTimeout is 00:30:00
    assert Settings.from_env({"COMPACT_MAX_SECONDS": "0"}).compact_max_seconds == 0  # no limit
    with pytest.raises(ConfigError, match="COMPACT_MAX_SECONDS must be a whole number between 0 and 86400"):
        Settings.from_env({"COMPACT_MAX_SECONDS": "ten minutes"})
    assert "COMPACT_MAX_SECONDS" in ENVIRONMENT_VARIABLES
    example = json.loads((Path(__file__).parents[2] / "local.settings.example.json").read_text())
    assert example["Values"]["COMPACT_MAX_SECONDS"] == "1200"


def test_compact_rejects_a_non_positive_time_budget_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["compact", "--max-seconds", "0"]) == cli.EXIT_CONFIG
    err = capsys.readouterr().err
    assert "--max-seconds must be a positive number of seconds" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("setting", "budget"), [("900", 900), ("0", None)])
def test_the_compaction_timer_runs_the_compactor_with_its_time_budget(storage_connection_string: str,
                                                                     unique_prefix: str, setting: str,
                                                                     budget: int | None) -> None:
    import azure.functions as func

    from collector import bootstrap
    from collector.bootstrap import Services
    from collector.cold.compaction import CompactionReport

    class Timer(func.TimerRequest):
        past_due = False

    class Runs:  # records how the timer calls the compactor (its own run is tested in test_parts.py)
        def __init__(self) -> None:
            self.calls: list[dict[str, object]] = []

        def run(self, **kwargs: object) -> CompactionReport:
            self.calls.append(kwargs)
            return CompactionReport()

    env = {"AUDIT_STORAGE_CONNECTION_STRING": storage_connection_string, "AUDIT_TABLE_PREFIX": unique_prefix,
           "AUDIT_ARCHIVE_CONTAINER": unique_prefix.lower(), "AUDIT_QUEUE_NAME": unique_prefix.lower(),
           "AUDIT_COLD_CONTAINER": unique_prefix.lower() + "-cold", "ARCHIVE_BUNDLES": "false",
           "COMPACT_MAX_SECONDS": setting}
    services = Services(Settings.from_env(env))
    services.ensure_storage()
    runs = Runs()
    services.__dict__["compactor"] = runs  # the cached_property's slot
    bootstrap.set_services(services)
    try:
        functions()["compact_cold_tier"].get_user_function()(Timer())  # type: ignore[attr-defined]
    finally:
        bootstrap.set_services(None)
    assert runs.calls == [{"max_seconds": budget}]
