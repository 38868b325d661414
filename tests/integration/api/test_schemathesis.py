"""Schemathesis against the live OpenAPI document of a running server: generated requests
for every operation, with an administrator's key; no server error, and every response
(status, content type, headers, body) conforms to the published schema, and schema-invalid
requests are refused. Bounded: six examples per operation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from sealbill.store.db import create_engine
from sealbill.store.migrate import upgrade
from tests.integration.api.world import build_org
from tests.support.api_server import serving

EXAMPLES = int(os.environ.get("SEALBILL_SCHEMATHESIS_EXAMPLES", "6"))


def test_every_operation_answers_as_its_schema_says(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEALBILL_FILES_DIR", str(tmp_path / "files"))
    monkeypatch.delenv("SEALBILL_SMTP_HOST", raising=False)
    engine = create_engine(f"sqlite:///{tmp_path / 'api.sqlite'}")
    upgrade(engine)
    org = build_org(engine, "alpha", 1)
    headers = {"Authorization": f"Bearer {org.keys['admin']}"}
    failures: list[str] = []
    with serving(engine, rate=100_000, burst=100_000) as base:
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 35
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(max_examples=EXAMPLES, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            def check(case: Any) -> None:
                # Positive-data acceptance is left out: a schema-valid request may still be
                # refused by a business rule (a 422 naming the field, a 412 on a stale ETag).
                case.call_and_validate(headers=headers, excluded_checks=[
                    schemathesis.checks.positive_data_acceptance])

            try:
                check()
            except BaseException as exc:  # every operation's failures, reported together
                codes = sorted({line.strip() for line in str(exc).splitlines()
                                if line.strip()[:3] == "- S"})
                curl = [line.strip() for line in str(exc).splitlines() if "curl" in line]
                failures.append(f"{operation.method.upper()} {operation.path}: {codes} "
                                f"{curl[:1]}")
    engine.dispose()
    assert failures == []
