"""A person's token grants what their profile says now: deleting or deactivating someone, or
changing their role or client, takes effect at once, not when their token expires. Agents and
the service are not people and keep their claims."""
from __future__ import annotations

import dataclasses

import pytest

from tests.db.view_factories import make_hil_person
from tests.db.world import CLIENT_A, CLIENT_B, PEOPLE, row
from tests.support import act_as, act_as_service


def sees(db, person) -> tuple[int, bool]:
    act_as(db, person)
    found = db.execute("select count(*) as n from public.workflows").fetchone()["n"]
    hil = db.execute("select private.is_hil() as hil").fetchone()["hil"]
    act_as_service(db)
    return found, hil


def test_a_matching_profile_grants_the_claimed_role(db):
    found, hil = sees(db, PEOPLE["operator"])
    assert found > 0 and hil is True


def test_a_deactivated_person_sees_nothing(db):
    person = make_hil_person(db)
    assert sees(db, person)[1] is True
    db.execute("update public.user_profiles set is_active = false where id = %s", (person.user_id,))
    assert sees(db, person) == (0, False)


def test_a_deleted_person_sees_nothing(db):
    person = make_hil_person(db)
    db.execute("delete from auth.users where id = %s", (person.user_id,))  # the profile goes with it
    assert sees(db, person) == (0, False)


def test_a_token_claiming_more_than_the_profile_grants_nothing(db):
    operator = PEOPLE["operator"]
    assert sees(db, dataclasses.replace(operator, role="hil_manager")) == (0, False)


@pytest.mark.parametrize("claimed", [CLIENT_B, None])
def test_a_client_person_claiming_another_client_sees_nothing(db, claimed):
    person = dataclasses.replace(PEOPLE["client_user_a"], client_id=claimed)
    assert sees(db, person)[0] == 0
    assert sees(db, PEOPLE["client_user_a"])[0] > 0  # their own client, as the profile says


def test_a_client_moved_to_another_client_loses_the_old_one_at_once(db):
    person = PEOPLE["client_user_b"]
    db.execute("update public.user_profiles set client_id = %s where id = %s", (CLIENT_A, person.user_id))
    assert sees(db, person)[0] == 0  # the token still says client B


def test_agents_are_not_people_and_keep_their_scope(db):
    act_as(db, PEOPLE["agent_a"])
    visible = [r["id"] for r in db.execute("select id from public.workflows")]
    act_as_service(db)
    assert visible == [row("A101")]
