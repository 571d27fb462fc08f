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
# run_on_startup stays off: it would also fire on every scale-out and wake-up (cost-anchors §5).
@app.timer_trigger(schedule="%COLLECT_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def collect_audit_logs(timer: func.TimerRequest) -> None:
    if timer.past_due:
        logging.getLogger("collector").warning("collect.past_due: the previous schedule was missed")
    bootstrap.services().listing.run()


# A failure raises: the host retries the message and, after host.json's maxDequeueCount, moves it
# to <queue>-poison, which /api/health reports.
@app.queue_trigger(arg_name="message", queue_name="%AUDIT_QUEUE_NAME%", connection="AUDIT_STORAGE")
def process_content_blob(message: func.QueueMessage) -> None:
    bootstrap.services().processor.process(message.get_body(), dequeue_count=message.dequeue_count or 1)


# ------------------------------------------------------------------ query API (HTTP)
