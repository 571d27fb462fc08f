"""transaction.py's codec: the body it writes and the answers it reads, without a service."""

from __future__ import annotations

import email.parser
import json

import pytest
from azure.data.tables import RequestTooLargeError, TableTransactionError, UpdateMode

from collector import transaction


def test_the_body_is_one_changeset_of_upserts_a_mime_parser_reads_back():
    entities = [{"PartitionKey": "p'1", "RowKey": "a/b c", "d": b"\x00\xff", "n": 7, "s": "\u00e9"},
                {"PartitionKey": "p'1", "RowKey": "x", "b": False}]
    body = transaction.encode("https://acct.table.core.windows.net/t1", entities, UpdateMode.REPLACE, "batch_B", "changeset_C")

    message = email.parser.BytesParser().parsebytes(b"Content-Type: multipart/mixed; boundary=batch_B\r\n\r\n" + body)
    (changeset,) = message.get_payload()
    operations = changeset.get_payload()
    assert changeset.get_content_type() == "multipart/mixed" and len(operations) == 2
    first = operations[0].get_payload()
    request_line, rest = first.split("\r\n", 1)
    assert request_line == ("PUT https://acct.table.core.windows.net/t1(PartitionKey='p%27%271',RowKey='a%2Fb%20c') "
                            "HTTP/1.1")
    assert json.loads(rest.split("\r\n\r\n", 1)[1]) == {
        "PartitionKey": "p'1", "RowKey": "a/b c", "d": "AP8=", "d@odata.type": "Edm.Binary", "n": 7, "s": "\u00e9"}
    assert body.isascii()
    merge = transaction.encode("https://a/t", entities[:1], UpdateMode.MERGE, "batch_B", "changeset_C")
    assert b"\r\nPATCH https://a/t(" in merge


@pytest.mark.parametrize(("value", "error"), [
    (2**31, "does not fit in Edm.Int32"), (float("nan"), "not a finite number"), (object(), "object is not written"),
])
def test_a_value_the_service_cannot_hold_names_its_property(value, error):
    with pytest.raises(TypeError, match=f"'v': .*{error}"):
        transaction.property_json({"PartitionKey": "p", "RowKey": "r", "v": value})


def test_the_answers_are_read_in_order_with_their_status():
    content = (b"--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n"
               b"--changesetresponse_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
               b"HTTP/1.1 204 No Content\r\nContent-ID: 0\r\nETag: W/\"1\"\r\n\r\n\r\n"
               b"--changesetresponse_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
               b"HTTP/1.1 204 No Content\r\nContent-ID: 1\r\n\r\n\r\n"
               b"--changesetresponse_2--\r\n--batchresponse_1--\r\n")
    answers = transaction.parts(content)
    assert [(p.status, p.headers.get("content-id")) for p in answers] == [(204, "0"), (204, "1")]


def test_a_failed_part_is_the_sdks_error_with_its_index_and_code():
    body = (b'{"odata.error":{"code":"TableNotFound","message":{"lang":"en-US",'
            b'"value":"3:The table specified does not exist.\\nRequestId:x"}}}')
    content = (b"--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n"
               b"--changesetresponse_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
               b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json;odata=minimalmetadata\r\n\r\n"
               + body + b"\r\n--changesetresponse_2--\r\n--batchresponse_1--\r\n")
    (part,) = transaction.parts(content)
    error = transaction.failed_part(part)
    assert isinstance(error, TableTransactionError)
    assert (error.status_code, error.error_code, error.index) == (404, "TableNotFound", 3)
    assert isinstance(transaction.failed_part(transaction.Part(413, {}, b"")), RequestTooLargeError)


def test_a_refused_batch_reads_json_or_xml_errors():
    xml = b"<?xml version='1.0'?><Error><Code>AuthorizationFailure</Code><Message>Denied.</Message></Error>"
    error = transaction.failed_batch(403, "Forbidden", {}, xml)
    assert (error.status_code, error.error_code) == (403, "AuthorizationFailure") and "Denied." in str(error)
    busy = transaction.failed_batch(503, "Server Busy", {"x-ms-error-code": "ServerBusy"}, b"")
    assert (busy.status_code, busy.error_code) == (503, "ServerBusy")
    assert isinstance(transaction.failed_batch(413, "Too Large", {}, b""), RequestTooLargeError)
