"""The repository on SQLite and PostgreSQL: a gapless linear chain, verify catching every
change or removal, idempotent appends, filtered queries and seq pagination."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Connection, event, text

from app.ledger.chain import GENESIS_HASH, Draft, canonical, digest, verify_rows
from app.ledger.repository import NewSubject, RecordFilter, Repository, Subject
from tests.ledger.support import explanation_draft, with_subject


def fill(repo: Repository, count: int, **kwargs: Any) -> list[str]:
    outcomes = repo.append([with_subject(explanation_draft(i, **kwargs)) for i in range(count)])
    return [o.record.id for o in outcomes if o.record is not None]


def rows(repo: Repository) -> list[dict[str, Any]]:
    return list(repo.iter_rows())


def test_each_test_starts_from_an_empty_log(repo: Repository) -> None:
    assert repo.head() is None
    fill(repo, 3)
    assert repo.head() is not None and repo.head()[0] == 3  # type: ignore[index]


def test_each_test_starts_from_an_empty_log_again(repo: Repository) -> None:
    assert repo.head() is None


def test_appends_form_a_gapless_linear_chain(repo: Repository) -> None:
    for _ in range(3):
        fill(repo, 4)
    stored = rows(repo)
    assert [r["seq"] for r in stored] == list(range(1, 13))
    prev = GENESIS_HASH
    for row in stored:
        document = json.loads(row["document"])
        assert canonical(document) == row["document"]
        assert row["prev_hash"] == document["prev_hash"] == prev
        assert row["hash"] == digest(row["document"])
        prev = row["hash"]
    assert [r["created_at"] for r in stored] == sorted(r["created_at"] for r in stored)
    result = repo.verify()
    assert result == {
        "ok": True,
        "records_checked": 12,
        "first_bad": None,
        "head": {"seq": 12, "hash": prev},
    }


def test_bulk_append_batches(repo: Repository) -> None:
    count = repo.append_bulk((with_subject(explanation_draft(i)) for i in range(25)), batch=7)
    assert count == 25 and repo.head()[0] == 25  # type: ignore[index]
    assert repo.verify()["ok"]


def test_bulk_loaded_records_chain_on_like_appended_ones(repo: Repository) -> None:
    """append_bulk (COPY on PostgreSQL) places rows exactly as append does: after the
    head, gapless, each prev_hash the previous hash, columns matching the document; a
    decision id already recorded is skipped, and new subjects are created with their
    first record."""
    fill(repo, 3)
    seen = explanation_draft(100, decision_id="bulk-seen")
    repo.append([with_subject(seen)])
    subject = NewSubject("e" * 64, "ref-bulk", b"k" * 40)
    items: list[tuple[Draft, NewSubject | None]] = [
        with_subject(explanation_draft(i)) for i in range(30)
    ]
    items[5] = with_subject(explanation_draft(5, decision_id="bulk-seen"))
    items[7] = (explanation_draft(7, subject_ref="ref-bulk"), subject)
    assert repo.append_bulk(items, batch=8) == 29
    fill(repo, 2)  # an ordinary append continues the bulk-loaded chain
    stored = rows(repo)
    assert [r["seq"] for r in stored] == list(range(1, 3 + 1 + 29 + 2 + 1))
    prev = GENESIS_HASH
    for row in stored:
        assert row["prev_hash"] == prev and row["hash"] == digest(row["document"])
        assert isinstance(row["document"], bytes) and isinstance(row["seq"], int)
        prev = row["hash"]
    assert repo.by_decision("bulk-seen").id == seen.id  # type: ignore[union-attr]
    assert repo.subject("e" * 64) == Subject("e" * 64, "ref-bulk", b"k" * 40)
    result = repo.verify()
    assert result["ok"] and result["records_checked"] == len(stored)


def test_a_decision_id_gets_one_explanation_record(repo: Repository) -> None:
    first = explanation_draft(1, decision_id="loan-1")
    twin = explanation_draft(2, decision_id="loan-1")
    outcomes = repo.append([with_subject(first), with_subject(twin)])
    assert outcomes[0].record is not None and outcomes[1].existing is not None
    assert outcomes[1].existing.id == first.id
    later = repo.append([with_subject(explanation_draft(3, decision_id="loan-1"))])
    assert later[0].existing is not None and later[0].existing.id == first.id
    assert repo.head()[0] == 1  # type: ignore[index]


def test_a_subject_created_twice_keeps_its_first_reference(repo: Repository) -> None:
    one = NewSubject("d" * 64, "ref-one", b"k" * 40)
    two = NewSubject("d" * 64, "ref-two", b"k" * 40)
    a = explanation_draft(1, subject_ref="ref-one")
    b = explanation_draft(2, subject_ref="ref-two")
    outcomes = repo.append([(a, one), (b, two)])
    assert outcomes[0].record is not None
    assert outcomes[1].subject_taken is not None and outcomes[1].subject_taken.ref == "ref-one"
    assert repo.subject("d" * 64) is not None
    assert set(repo.subjects_by_refs(["ref-one", "ref-two"])) == {"ref-one"}


# -- tampering ---------------------------------------------------------------------------

COLUMN_CHANGES = {
    "id": "'00000000-0000-0000-0000-000000000000'",
    "type": "'report'",
    "created_at": "'2000-01-01T00:00:00.000000Z'",
    "key_id": "'ffffffffffff'",
    "role": "'admin'",
    "decision_id": "'forged-decision'",
    "subject_ref": "'forged-ref'",
    "model_name": "'other-model'",
    "model_version": "'9'",
    "outcome": "'bad'",
    "target_id": "'x'",
    "fingerprint": "'f'",
    "prev_hash": "'" + "1" * 64 + "'",
    "hash": "'" + "2" * 64 + "'",
}


@pytest.mark.parametrize("column", sorted(COLUMN_CHANGES))
def test_changing_any_query_column_is_caught_and_named(
    repo: Repository, connection: Connection, column: str
) -> None:
    ids = fill(repo, 5)
    connection.execute(
        text(f"UPDATE records SET {column} = {COLUMN_CHANGES[column]} WHERE seq = 3")
    )
    result = repo.verify()
    assert not result["ok"]
    assert result["first_bad"]["seq"] == 3
    if column != "id":
        assert result["first_bad"]["id"] == ids[2]
    assert result["records_checked"] == 2


def test_changing_seq_column_is_caught(repo: Repository, connection: Connection) -> None:
    fill(repo, 3)
    connection.execute(text("UPDATE records SET seq = 7 WHERE seq = 3"))
    result = repo.verify()
    assert not result["ok"] and "seq" in result["first_bad"]["reason"]


def test_changing_document_bytes_in_the_database_is_caught(
    repo: Repository, connection: Connection
) -> None:
    ids = fill(repo, 4)
    stored = rows(repo)[1]
    changed = stored["document"].replace(b'"good"', b'"bad!"', 1)
    assert changed != stored["document"]
    connection.execute(text("UPDATE records SET document = :d WHERE seq = 2"), {"d": changed})
    result = repo.verify()
    assert not result["ok"] and result["first_bad"]["id"] == ids[1]
    assert result["first_bad"]["seq"] == 2


def test_a_rebuilt_record_breaks_the_link_to_the_next(
    repo: Repository, connection: Connection
) -> None:
    ids = fill(repo, 4)
    stored = rows(repo)[1]
    document = json.loads(stored["document"])
    document["clear"]["prediction"]["label"] = "bad"
    forged = canonical(document)
    connection.execute(
        text("UPDATE records SET document = :d, hash = :h, outcome = 'bad' WHERE seq = 2"),
        {"d": forged, "h": digest(forged)},
    )
    result = repo.verify()
    assert not result["ok"] and result["first_bad"]["id"] == ids[2]
    assert "prev_hash" in result["first_bad"]["reason"]


def test_every_single_byte_change_of_every_record_is_caught(repo: Repository) -> None:
    fill(repo, 3)
    stored = rows(repo)
    for index, row in enumerate(stored):
        for position in range(len(row["document"])):
            raw = bytearray(row["document"])
            raw[position] ^= 0x01
            tampered = [dict(r) for r in stored]
            tampered[index]["document"] = bytes(raw)
            result = verify_rows(tampered)
            assert not result.ok, (index, position)
            assert result.first_bad is not None and result.first_bad["id"] == row["id"]


@pytest.mark.parametrize("which", [1, 3, 5])
def test_deleting_a_record_is_caught_as_a_gap(
    repo: Repository, connection: Connection, which: int
) -> None:
    fill(repo, 6)
    connection.execute(text("DELETE FROM records WHERE seq = :s"), {"s": which})
    result = repo.verify()
    assert not result["ok"]
    assert result["first_bad"]["seq"] == which + 1
    assert "gap" in result["first_bad"]["reason"]


def test_a_kept_head_catches_removal_of_the_newest_records(
    repo: Repository, connection: Connection
) -> None:
    fill(repo, 6)
    kept = repo.head()
    assert kept is not None
    fill(repo, 2)
    assert repo.verify(kept)["ok"]
    connection.execute(text("DELETE FROM records WHERE seq > :s"), {"s": kept[0] - 2})
    plain = repo.verify()
    assert plain["ok"]  # a truncated chain is self-consistent...
    held = repo.verify(kept)
    assert not held["ok"]  # ...but no longer holds the head the auditor kept
    assert held["first_bad"]["seq"] == kept[0] and "missing" in held["first_bad"]["reason"]
    wrong = repo.verify((2, "0" * 64))
    assert not wrong["ok"] and wrong["first_bad"]["seq"] == 2


# -- queries -----------------------------------------------------------------------------


def test_filters_select_the_right_records(repo: Repository) -> None:
    fill(repo, 3, model="credit-risk", version="1", outcome="good")
    fill(repo, 2, model="credit-risk", version="2", outcome="bad")
    fill(repo, 4, model="income", version="1", outcome=">50K")
    subject = "subject-ref-1"
    fill(repo, 2, model="income", version="1", outcome="<=50K", subject_ref=subject)
    assert len(repo.explanations(RecordFilter())) == 11
    assert len(repo.explanations(RecordFilter(model_name="credit-risk"))) == 5
    assert len(repo.explanations(RecordFilter(model_name="credit-risk", model_version="2"))) == 2
    assert len(repo.explanations(RecordFilter(model_name="income", outcome=">50K"))) == 4
    assert len(repo.explanations(RecordFilter(outcome="bad"))) == 2
    assert len(repo.explanations(RecordFilter(subject_ref=subject))) == 2
    assert repo.explanations(RecordFilter(model_name="none")) == []


def test_time_filters_are_inclusive_and_bound_by_seq(repo: Repository) -> None:
    fill(repo, 3)
    middle = rows(repo)[1]["created_at"]
    fill(repo, 3)
    everything = rows(repo)
    found = repo.explanations(RecordFilter(since=middle))
    assert [r.seq for r in found] == [r["seq"] for r in everything if r["created_at"] >= middle]
    until = repo.explanations(RecordFilter(until=middle))
    assert [r.seq for r in until] == [r["seq"] for r in everything if r["created_at"] <= middle]
    both = repo.explanations(RecordFilter(since=middle, until=middle))
    assert 2 in [r.seq for r in both]
    assert repo.explanations(RecordFilter(since="2999-01-01T00:00:00.000000Z")) == []
    assert repo.explanations(RecordFilter(until="2000-01-01T00:00:00.000000Z")) == []


def test_paging_by_seq_never_repeats_or_skips_while_records_arrive(repo: Repository) -> None:
    fill(repo, 10, model="income")
    seen: list[int] = []
    after = 0
    while True:
        page = repo.explanations(RecordFilter(model_name="income"), after=after, limit=3)
        if not page:
            break
        seen.extend(r.seq for r in page)
        after = page[-1].seq
        fill(repo, 2, model="income")  # inserts between pages
        fill(repo, 1, model="credit-risk")
        if len(seen) > 40:
            break
    expected = [r.seq for r in repo.explanations(RecordFilter(model_name="income"), limit=1000)]
    assert seen == expected[: len(seen)]
    assert len(seen) == len(set(seen))


def test_iterating_pages_stops_at_through(repo: Repository) -> None:
    fill(repo, 9)
    pages = list(repo.iter_explanations(RecordFilter(), through=7, batch=2))
    assert [len(p) for p in pages] == [2, 2, 2, 1]
    assert [r["seq"] for r in repo.iter_rows(through=4, batch=3)] == [1, 2, 3, 4]


def test_children_and_access_records(repo: Repository) -> None:
    (target,) = fill(repo, 1)
    review = Draft(
        "review", "k", "support", {"target_id": target, "outcome": "upheld"}, target_id=target
    )
    access = Draft("access", "k2", "auditor", {"endpoint": "x", "records": [target, "other"]})
    repo.append([(review, None), (access, None)])
    assert [r.id for r in repo.children(target, "review")] == [review.id]
    assert [r.id for r in repo.iter_access(record_id=target)] == [access.id]
    assert [r.id for r in repo.iter_access(key_id="k2")] == [access.id]
    assert list(repo.iter_access(key_id="nobody")) == []
    assert repo.verify()["ok"]


def _plan_of_lookup(
    repo: Repository, connection: Connection, needle: str, lookup: Callable[[], Any]
) -> str:
    """The query plan of the one statement ``lookup`` sends whose text holds ``needle``."""
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if needle in statement:
            statements.append((statement, params))

    event.listen(connection, "before_cursor_execute", capture)
    try:
        lookup()
    finally:
        event.remove(connection, "before_cursor_execute", capture)
    assert len(statements) == 1
    statement, params = statements[0]
    if repo.is_postgres:
        rows = connection.exec_driver_sql("EXPLAIN " + statement, params).fetchall()
        return " ".join(row[0] for row in rows)
    rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).fetchall()
    return " ".join(str(row[3]) for row in rows)


def test_a_decision_id_lookup_probes_its_index(repo: Repository, connection: Connection) -> None:
    """The lookup every append makes reads the decision-id index, never every explanation
    record (SQLite's planner, given bound values, preferred the (type, seq) index: an append
    cost grew with the log)."""
    fill(repo, 300)
    # several at once, as a group commit asks (one id alone is planned as an equality)
    found: dict[str, Any] = {}
    plan = _plan_of_lookup(
        repo,
        connection,
        "decision_id IN",
        lambda: found.update(repo._by_decisions(connection, [f"none-{i}" for i in range(4)])),
    )
    assert found == {}
    if repo.is_postgres:
        assert "Seq Scan" not in plan, plan
    else:
        assert "USING INDEX uq_records_explanation_decision_id" in plan, plan


def test_a_children_lookup_probes_the_target_index(
    repo: Repository, connection: Connection
) -> None:
    """Audits look up each page's children (outcomes, reviews) by target id: that must probe
    the target index, not scan every record of the type (quadratic over a large log)."""
    fill(repo, 50)
    found: dict[str, Any] = {}
    plan = _plan_of_lookup(
        repo,
        connection,
        "target_id IN",
        lambda: found.update(repo.children_of([f"none-{i}" for i in range(4)], "actual_outcome")),
    )
    assert found == {}
    if repo.is_postgres:
        assert "Seq Scan" not in plan, plan
    else:
        assert "USING INDEX ix_records_target_id" in plan, plan


def _link_row(link_id: str) -> dict[str, Any]:
    return {
        "id": link_id,
        "token_hash": digest(link_id.encode()),
        "record_id": "r",
        "subject_ref": "s",
        "key_id": "k",
        "created_at": "2026-01-01T00:00:00.000000Z",
        "expires_at": "2026-02-01T00:00:00.000000Z",
        "revoked_at": None,
    }


def test_a_change_of_state_and_its_record_commit_together_or_not_at_all(
    repo: Repository,
) -> None:
    from sqlalchemy import insert, select

    from app.ledger.tables import links

    def add(link_id: str, fail: bool = False) -> Callable[[Connection], str]:
        def change(conn: Connection) -> str:
            conn.execute(insert(links).values(**_link_row(link_id)))
            if fail:
                raise RuntimeError("refused under the lock")
            return link_id

        return change

    draft = Draft(type="link", key_id="k", role="admin", clear={"link_id": "a"})
    record, returned = repo.append_with(draft, add("a"))
    assert returned == "a" and record.seq == 1 and repo.head() == (1, record.hash)
    with pytest.raises(RuntimeError, match="refused"):
        repo.append_with(Draft(type="link", key_id="k", role="admin", clear={}), add("b", True))
    assert repo.head() == (1, record.hash)  # no record
    with repo.changing_state() as conn:
        found = {row.id for row in conn.execute(select(links.c.id))}
    assert found == {"a"}  # and no state
    assert repo.verify()["ok"]


def test_records_of_several_types_by_ids(repo: Repository) -> None:
    ids = fill(repo, 2)
    repo.append([(Draft(type="admin_event", key_id="k", role="admin", clear={"event": "x"}), None)])
    repo.append([(Draft(type="link", key_id="k", role="admin", clear={"link_id": "l"}), None)])
    both = repo.records_of_type(["link", "explanation"])
    assert [r.type for r in both] == ["explanation", "explanation", "link"]
    assert [r.type for r in repo.records_of_type("admin_event")] == ["admin_event"]
    assert set(repo.by_ids([*ids, "missing"])) == set(ids)
