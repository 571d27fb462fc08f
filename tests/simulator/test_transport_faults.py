"""Transport faults: a connection reset before the answer or after its headers, and a body cut off
(Content-Length or chunked), scripted with inject(fault=...) or random with reset_rate / cut_body_rate.
Each breaks only its own answer: the server goes on serving."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests

from simulator import Simulator

from .helpers import NOW, Api

EXCHANGE = "Audit.Exchange"


@pytest.fixture
def blob_url(sim: Simulator, api: Api) -> str:
    records = [{"Id": f"r{i}", "CreationTime": "2024-05-14T11:00:00", "Operation": "Send", "Padding": "x" * 200}
               for i in range(20)]
    blob = sim.add_blob(EXCHANGE, NOW - timedelta(minutes=30), records)
    return f"{api.root}/audit/{blob.content_id}"


def fresh(api: Api) -> requests.Session:
    """A new connection per request, so a broken connection is this request's alone."""
    session = requests.Session()
    session.verify = str(api.server.ca_path)
    session.headers.update(api.session.headers)
    return session


def test_reset_before_the_answer_is_a_connection_error(sim: Simulator, api: Api, blob_url: str):
    sim.inject("content_get", fault="reset")
    with pytest.raises(requests.ConnectionError):
        fresh(api).get(blob_url)
    assert fresh(api).get(blob_url).status_code == 200  # only that answer broke


def test_reset_after_the_headers_is_a_connection_error(sim: Simulator, api: Api, blob_url: str):
    sim.inject("content_get", fault="reset_after_headers")
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        fresh(api).get(blob_url)
    assert fresh(api).get(blob_url).status_code == 200


def test_a_cut_body_declares_more_than_it_sends(sim: Simulator, api: Api, blob_url: str):
    whole = fresh(api).get(blob_url).content
    sim.inject("content_get", fault="cut")
    with fresh(api).get(blob_url, stream=True) as response:
        assert response.status_code == 200
        assert int(response.headers["Content-Length"]) == len(whole)
        received = bytearray()
        with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
            for chunk in response.iter_content(1024):
                received += chunk
    assert 0 < len(received) < len(whole) and whole.startswith(bytes(received))


def test_a_cut_chunked_body_ends_without_its_last_chunk(sim: Simulator, api: Api, blob_url: str):
    sim.inject("content_get", fault="cut_chunked")
    with fresh(api).get(blob_url, stream=True) as response:
        assert response.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in response.headers
        with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
            response.content  # noqa: B018 - reading it is the test


def test_a_fault_breaks_a_scripted_error_answer_too(sim: Simulator, api: Api):
    sim.inject("content_list", code="AF50000", fault="cut")
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        fresh(api).get(f"{api.root}/subscriptions/content", params={"contentType": EXCHANGE})


def test_random_resets_and_cuts_hit_api_operations_only(sim: Simulator, api: Api, blob_url: str):
    sim.set(reset_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        fresh(api).get(blob_url)
    api.login()  # the token endpoint is not an API operation: it still answers
    sim.set(reset_rate=0.0, cut_body_rate=1.0)
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        fresh(api).get(blob_url)
    sim.set(cut_body_rate=0.0)
    assert fresh(api).get(blob_url).status_code == 200


def test_unknown_faults_and_rates_are_refused(sim: Simulator):
    with pytest.raises(ValueError, match="transport fault"):
        sim.inject("content_get", fault="explode")
    with pytest.raises(ValueError, match="reset_rate"):
        sim.set(reset_rate=1.5)
