"""Azure Functions wiring (Python v2 programming model). No logic here: everything lives in collector/.

Functions:
- collect_audit_logs   timer (%COLLECT_SCHEDULE%): lists new content and queues one message per blob
- process_content_blob queue (%AUDIT_QUEUE_NAME%, connection AUDIT_STORAGE): fetch, archive, index
- HTTP routes of the query API (see the section below)
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


# ------------------------------------------------------------------ query API (HTTP)
from collector import api  # noqa: E402 - this section's own import, kept with the routes it serves


# Thin adapters: func.HttpRequest → collector.api.Api → func.HttpResponse. The Python v2 model
# cannot stream a response, so CSV/NDJSON exports are built in memory (bounded by
# QUERY_MAX_EXPORT_ROWS and api.FUNCTION_EXPORT_SECONDS; truncation is signalled in the body and
# the X-AuditKeep-Truncated header).
def _query_api() -> api.Api:
    # The routes never touch the Management Activity API client, so they run without its credentials.
    return api.Api(bootstrap.services, stream=False, export_seconds=api.FUNCTION_EXPORT_SECONDS)


def _http_response(response: api.Response) -> func.HttpResponse:
    return func.HttpResponse(body=response.read(), status_code=response.status, headers=response.headers,
                             mimetype=response.mimetype, charset="utf-8")


@app.route(route="audit", methods=["GET"])
def query_audit_records(req: func.HttpRequest) -> func.HttpResponse:
    return _http_response(_query_api().audit(dict(req.params), api.api_root(req.url, "audit")))


@app.route(route="audit/{id}", methods=["GET"])
def get_audit_record(req: func.HttpRequest) -> func.HttpResponse:
    return _http_response(_query_api().record(req.route_params.get("id", "")))


@app.route(route="health", methods=["GET"])
def get_health(req: func.HttpRequest) -> func.HttpResponse:
    return _http_response(_query_api().health())


@app.route(route="openapi.json", methods=["GET"])
def get_openapi(req: func.HttpRequest) -> func.HttpResponse:
    return _http_response(api.openapi_response(api.api_root(req.url, "openapi.json")))
