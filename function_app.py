"""Azure Functions wiring (Python v2 programming model). No logic here: everything lives in collector/.

Functions:
- collect_audit_logs   timer (%COLLECT_SCHEDULE%): lists new content and queues one message per blob
- process_content_blob queue (%AUDIT_QUEUE_NAME%, connection AUDIT_STORAGE): fetch, archive, index
- compact_cold_tier    timer (%COMPACT_SCHEDULE%): closed index days → Parquet files (docs/cold-tier.md), then
                       expiry of what is due in each tier (docs/retention.md)
- deliver_alert        queue (%AUDIT_ALERT_QUEUE%): an alert to its outputs (docs/alerts.md)
- check_alert_health   timer (%COLLECT_SCHEDULE%): our own silence as alerts (health rules)
- HTTP routes of the query API (see the section below; they stream: HTTP streams) and the search page (ui)
"""

from __future__ import annotations

import logging

import azure.functions as func

from collector import bootstrap

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


# ------------------------------------------------------------------ collection
# run_on_startup stays off: it would also fire on every scale-out and wake-up, each a full listing run
# (Microsoft's "Timer trigger for Azure Functions", runOnStartup: use with caution, rarely if ever in production).
@app.timer_trigger(schedule="%COLLECT_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def collect_audit_logs(timer: func.TimerRequest) -> None:
    if timer.past_due:
        logging.getLogger("collector").warning("collect.past_due: the previous schedule was missed",
                                               extra={"function": "collect_audit_logs"})
    bootstrap.services().listing.run()


# A failure raises: the host retries the message and, after host.json's maxDequeueCount, moves it
# to <queue>-poison, which /api/health reports.
@app.queue_trigger(arg_name="message", queue_name="%AUDIT_QUEUE_NAME%", connection="AUDIT_STORAGE")
def process_content_blob(message: func.QueueMessage) -> None:
    bootstrap.services().processor.process(message.get_body(), dequeue_count=message.dequeue_count or 1)


# ------------------------------------------------------------------ cold tier
# Daily: closed days → Parquet, late records → deltas. Every day commits on its own (its manifest),
# and a large day part by part, so a run cut short resumes at the first day or part not committed.
# COMPACT_MAX_SECONDS stops the run between parts before host.json's functionTimeout, leaving time
# for bundling and expiry; the log line cold.budget_spent names what is left for the next run.
@app.timer_trigger(schedule="%COMPACT_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def compact_cold_tier(timer: func.TimerRequest) -> None:
    services = bootstrap.services()
    if services.settings.cold_retention_days:  # 0: no cold tier (docs/retention.md)
        services.compactor.run(max_seconds=services.settings.compact_max_seconds or None)
    if services.settings.archive_bundles:  # closed days' raw blobs into a few bundles (docs/archive-bundles.md)
        services.bundler.run()
    services.expiry.run()  # after compaction: a hot day is dropped only once the cold tier holds it


# ------------------------------------------------------------------ reindex
# One message {"start", "end", "target"} (python -m collector reindex --enqueue) runs a slice of the
# reindex (collector/reindex.py); an unfinished run queues its own continuation, and its checkpoint
# makes any retry continue where the last one stopped.
@app.queue_trigger(arg_name="message", queue_name="%AUDIT_REINDEX_QUEUE%", connection="AUDIT_STORAGE")
def reindex_range(message: func.QueueMessage) -> None:
    from collector.reindex import run_message

    services = bootstrap.services()
    run_message(services.reindexer, services.reindex_queue, message.get_body())


# ------------------------------------------------------------------ alerts (docs/alerts.md)
# The rules run inside process_content_blob; these deliver what they raised (retried by the host,
# then poison) and check our own silence (the health rules) on the collection schedule.
@app.queue_trigger(arg_name="message", queue_name="%AUDIT_ALERT_QUEUE%", connection="AUDIT_STORAGE")
def deliver_alert(message: func.QueueMessage) -> None:
    bootstrap.services().alerts.deliverer.deliver_message(message.get_body())


@app.timer_trigger(schedule="%COLLECT_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def check_alert_health(timer: func.TimerRequest) -> None:
    bootstrap.services().alerts.check()


# ------------------------------------------------------------------ query API (HTTP)
# HTTP streams (Microsoft's "Azure Functions HTTP trigger", section "HTTP streams"): the routes take
# and return FastAPI types from azurefunctions-extensions-http-fastapi, so a CSV/NDJSON export goes
# out chunk by chunk instead of being built in memory (1,000,000 rows are about 1 GB). It needs the
# app setting PYTHON_ENABLE_INIT_INDEXING=1 (infra/modules/functionapp.bicep) and applies to every
# HTTP function of the app: mixing streaming and classic HttpRequest functions is not supported.
import asyncio  # noqa: E402 - this section's own imports, kept with the routes they serve
from collections.abc import AsyncIterator, Iterable, Iterator  # noqa: E402
from typing import cast  # noqa: E402

import fastapi  # noqa: E402
from azurefunctions.extensions.http.fastapi import Request, Response, StreamingResponse  # noqa: E402

from collector import api  # noqa: E402


def _query_api() -> api.Api:
    # The routes never touch the Management Activity API client, so they run without its credentials.
    # Exports stream; api.FUNCTION_EXPORT_SECONDS keeps each inside the front end's 230 s.
    return api.Api(bootstrap.services, stream=True, export_seconds=api.FUNCTION_EXPORT_SECONDS)


async def _chunks(body: Iterable[bytes]) -> AsyncIterator[bytes]:
    """The body's chunks, each read on a worker thread: reading one means storage requests, which
    must not block the event loop that serves the other requests."""
    chunks: Iterator[bytes] = iter(body)
    try:
        while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _http_response(response: api.Response) -> fastapi.Response:
    headers = {k: v for k, v in response.headers.items() if k != "Content-Type"}
    if isinstance(response.body, bytes):
        return fastapi.Response(response.read(), status_code=response.status, headers=headers,
                                media_type=response.headers.get("Content-Type"))
    return fastapi.responses.StreamingResponse(_chunks(response.body), status_code=response.status, headers=headers,
                                               media_type=response.headers.get("Content-Type"))


def _request(req: Request) -> fastapi.Request:
    # The worker passes a FastAPI (Starlette) request; the annotation must be the extension's type.
    return cast(fastapi.Request, req)


@app.route(route="audit", methods=["GET"])
async def query_audit_records(req: Request) -> StreamingResponse:
    request = _request(req)
    params = request.query_params.multi_items()
    base = api.api_root(str(request.url), "audit")
    return _http_response(await asyncio.to_thread(_query_api().audit, params, base))


@app.route(route="audit/{id}", methods=["GET"])
async def get_audit_record(req: Request) -> Response:
    record_id = _request(req).path_params.get("id", "")
    return _http_response(await asyncio.to_thread(_query_api().record, record_id))


@app.route(route="health", methods=["GET"])
async def get_health(req: Request) -> Response:
    return _http_response(await asyncio.to_thread(_query_api().health))


@app.route(route="alerts", methods=["GET"])
async def list_alerts(req: Request) -> Response:
    request = _request(req)
    base = api.api_root(str(request.url), "alerts")
    return _http_response(await asyncio.to_thread(_query_api().alerts, request.query_params.multi_items(), base))


@app.route(route="openapi.json", methods=["GET"])
async def get_openapi(req: Request) -> Response:
    return _http_response(api.openapi_response(api.api_root(str(_request(req).url), "openapi.json")))


# The search page (collector/ui/, docs/search-page.md). Anonymous: the page and its assets hold no data,
# and every data call the page makes goes to the routes above with the user's key (or sign-in cookie).
@app.route(route="ui/{*asset}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def get_search_page(req: Request) -> Response:
    return _http_response(api.ui_response(_request(req).path_params.get("asset") or ""))
