from __future__ import annotations

import json
import logging

from crossrank.log_format import JsonFormatter


def test_json_lines_carry_the_access_fields() -> None:
    record = logging.LogRecord("crossrank.access", logging.INFO, __file__, 1, "request %s", ("abc",), None)
    record.request_id = "abc"
    record.latency_ms = 1.5
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "request abc"
    assert (entry["level"], entry["logger"], entry["request_id"], entry["latency_ms"]) == (
        "INFO", "crossrank.access", "abc", 1.5)
