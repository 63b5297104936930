"""At most one active SLA agreement per client, under concurrency (real PostgreSQL, racing
threads): every activation claims the client's SLA record in the same append, so of several
racing activations exactly one commits, and the others are refused `sla_agreement.active_exists`."""

from __future__ import annotations

import itertools

import pytest

from api.service import Service
from domain.client import RegisterClient
from domain.context import Outcome
from domain.errors import LedgerError
from domain.sla import ClientSLA, RecordSLAAgreement, SLAAgreement, UpdateSLAAgreement
from tests.conftest import admin_id
from tests.integration.test_cross_record_races import race

_serial = itertools.count(1)
ROUNDS = 5


def new_client(service: Service) -> str:
    n = next(_serial)
    command = RegisterClient(
        client_name=f"Race client {n}",
        registration_number=f"RACE-{n}",
        company_type="smb",
        support_coverage="24x7",
        preferred_communication="email",
    )
    return str(service.ledger.handle(command, admin_id(service)).id)


def agreement(client: str, tier: str, status: str = "active") -> RecordSLAAgreement:
    return RecordSLAAgreement(
        client=client,
        tier=tier,
        support_coverage="24x7",
        effective_date="2025-01-01",
        status=status,
    )


def active_agreements(service: Service, client: str, made: list[Outcome]) -> list[str]:
    found = [service.ledger.find(SLAAgreement, i, "sla_agreement") for i in {o.id for o in made}]
    return [str(a.id) for a in found if a.is_active and str(a.client_id) == client]


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_one_active_agreement_when_recordings_race(service: Service, round_: int) -> None:
    client, admin = new_client(service), admin_id(service)

    results = race(
        service,
        *((agreement(client, tier), admin) for tier in ("premium", "standard", "basic", "premium")),
    )

    made = [r for r in results if isinstance(r, Outcome)]
    refused = [r for r in results if isinstance(r, LedgerError)]
    assert len(made) == 1, results
    assert {r.code for r in refused} == {"sla_agreement.active_exists"}
    index = service.ledger.find(ClientSLA, ClientSLA.create_id(client_id=client), "client_sla")
    assert str(index.active_agreement_id) == str(made[0].id)
    assert active_agreements(service, client, made) == [str(made[0].id)]


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_one_active_agreement_when_activations_race(service: Service, round_: int) -> None:
    client, admin = new_client(service), admin_id(service)
    dormant = [
        service.ledger.handle(agreement(client, tier, "inactive"), admin)
        for tier in ("premium", "standard", "basic")
    ]

    results = race(
        service,
        *((UpdateSLAAgreement(agreement=d.id, status="active"), admin) for d in dormant),
        (agreement(client, "basic"), admin),
    )

    made = [r for r in results if isinstance(r, Outcome)]
    assert len(made) == 1, results
    assert {r.code for r in results if isinstance(r, LedgerError)} == {
        "sla_agreement.active_exists"
    }
    everything = [*dormant, *made]
    assert len(active_agreements(service, client, everything)) == 1


def test_deactivation_and_new_activation_race_leaves_at_most_one_active(
    service: Service,
) -> None:
    for _ in range(ROUNDS):
        client, admin = new_client(service), admin_id(service)
        first = service.ledger.handle(agreement(client, "premium"), admin)

        results = race(
            service,
            (UpdateSLAAgreement(agreement=first.id, status="expired"), admin),
            (agreement(client, "standard"), admin),
        )

        made = [r for r in results if isinstance(r, Outcome)]
        assert len(active_agreements(service, client, [first, *made])) <= 1
        index = service.ledger.find(ClientSLA, ClientSLA.create_id(client_id=client), "x")
        active = active_agreements(service, client, [first, *made])
        assert [str(index.active_agreement_id)] == active or (
            index.active_agreement_id is None and active == []
        )
