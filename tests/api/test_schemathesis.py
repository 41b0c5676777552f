"""Requests generated from the OpenAPI schema never make the API fail (no 5xx).

Every operation is called with data that fits the schema and data that breaks it
(schemathesis: examples, coverage and fuzzing phases, straight into the ASGI app), once as
the approver, who may call everything, and once without a token, which must be served
nothing. Before the first call the database holds an incident whose proposed run can be
approved and applied, and half the generated path ids are swapped for real ones, so that
calls reach the incident, run, pack and runbook handlers rather than stop at "not found".

``GET /v1/events`` is left out: it is a server-sent event stream that never ends, so a call
would only end at the client's read timeout and could not tell a server error apart.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import schemathesis
from apikit import APPROVER, Api, alert, notification, running_api
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from revleak.api.app import create_app
from revleak.api.config import ApiSettings
from revleak.remediation.model import BlastRecord

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 30
SEED = 20260310
# Runs that exist or come to exist: each plan call makes a new one and supersedes the last.
RUN_IDS = tuple(f"RUN-{number}" for number in range(1, 9))


class Seeded:
    """The seeded API, once the module's fixture has made it."""

    api: Api | None = None

    @classmethod
    def newest_run(cls) -> str:
        """The newest run of INC-1 when a case is drawn: the one that may still be approved
        or applied, which a fixed list of ids would almost never name."""
        assert cls.api is not None
        return str(cls.api.get("/v1/incidents/INC-1/runs", APPROVER).json()[-1]["id"])


# Real ids by path parameter name.
REAL_IDS: dict[str, st.SearchStrategy[str]] = {
    "incident_id": st.just("INC-1"),
    "run_id": st.one_of(st.sampled_from(RUN_IDS), st.builds(Seeded.newest_run)),
    "pack_id": st.just("rapid-response"),
    "slo": st.just("lead_response"),
}


def seed_incident(api: Api) -> None:
    """INC-1: a lead past its response SLA, and RUN-1, the fix pack proposed for it."""
    api.crm.observe(
        orjson.dumps(
            {
                "event_id": "seed-L-1",
                "ts": "2026-03-10T18:00:00.000Z",
                "object": "lead",
                "op": "create",
                "record_id": "L-1",
                "fields": {
                    "name": "Lead 1",
                    "owner": "holly",
                    "region": "NA",
                    "stage": "New",
                    "email": "buyer@corp.example",
                    "value_usd": 15000,
                    "created_at": "2026-03-10T18:00:00.000Z",
                },
            }
        )
    )
    api.live.blast["lead_response"] = [
        BlastRecord(
            slo="lead_response",
            record_id="L-1",
            rule="SLA_BREACH_UNTOUCHED",
            impact_usd=15000.0,
            owner="holly",
            since="2026-03-10T18:30:00.000Z",
        )
    ]
    answer = api.post_alerts(notification(alert()))
    assert answer.json()["incidents"] == [{"id": "INC-1", "change": "detected"}]
    [run] = api.get("/v1/incidents/INC-1/runs").json()
    assert (run["id"], run["status"], run["blocked"]) == ("RUN-1", "PROPOSED", None)


@pytest.fixture(scope="module")
def seeded_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with running_api(tmp_path_factory.mktemp("schemathesis")) as api:
        seed_incident(api)
        Seeded.api = api
        yield api
        Seeded.api = None


def real_or_generated(
    _: Any, path_parameters: dict[str, Any] | None
) -> st.SearchStrategy[dict[str, Any] | None]:
    """The generated path parameters, or the same with real ids in their place."""
    names = [name for name in path_parameters or () if name in REAL_IDS]
    if not names:
        return st.just(path_parameters)
    real = st.fixed_dictionaries({name: REAL_IDS[name] for name in names}).map(
        lambda ids: {**(path_parameters or {}), **ids}
    )
    return st.one_of(st.just(path_parameters), real)


def generated_requests() -> schemathesis.BaseSchema:
    """Cases for every operation of the app's OpenAPI document. The routes alone decide
    the document, so an app on an in-memory database serves the one the seeded app does.

    The schema is loaded at import rather than from the fixture's app because
    ``schemathesis.pytest.from_fixture`` (4.32) sets ``Node._nodeid``, which pytest 9
    no longer has; each call names the seeded app instead."""
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            # A busy machine draws cases slowly, which says nothing about the API.
            "suppress-health-check": ["too_slow"],
            "generation": {
                "mode": "all",
                "max-examples": EXAMPLES_PER_OPERATION,
                "deterministic": True,
                "database": "none",
            },
        }
    )
    # Built from defaults only: REVLEAK_* variables of the shell must not reach the twin.
    twin = create_app(ApiSettings.model_construct(database_url="sqlite://"), ticking=False)
    loaded = schemathesis.openapi.from_asgi("/openapi.json", twin, config=config).exclude(
        path="/v1/events"
    )
    loaded.hook("flatmap_path_parameters")(real_or_generated)
    return loaded


schema = generated_requests()


@schema.parametrize()
def test_the_approver_never_gets_a_server_error(case: schemathesis.Case, seeded_api: Api) -> None:
    case.call_and_validate(
        app=seeded_api.client.app,
        headers={"Authorization": APPROVER},
        checks=[not_a_server_error],
    )


@schema.parametrize()
def test_without_a_token_nothing_is_served_and_nothing_fails(
    case: schemathesis.Case, seeded_api: Api
) -> None:
    response = case.call_and_validate(app=seeded_api.client.app, checks=[not_a_server_error])
    if case.operation.path.startswith("/v1/"):
        assert not 200 <= response.status_code < 300, (
            f"{case.operation.label} answered {response.status_code} without a token"
        )
