"""The (invoice, recipient) claims a batch's earlier messages take, as its later ones see them.

The guard's fresh read of a batch runs once, for all its messages, before any of them takes
its claims (:func:`sealbill.store.delivery.outbox_batches.send_facts_many`), and the claims
are written for the whole batch after its judgment. A later message of the batch must still
see the claims of the messages judged before it, exactly as when each message read the tables
after the one before it had written its claims: :class:`BatchClaims` adds them to its facts.

Invariants, for a message ``m`` judged after messages that took pairs ``P`` in this batch:
- ``pair_claims[c]`` (other messages of the run holding (m's invoice, c)) grows by one when
  (m's invoice, c) is in ``P`` — an earlier message of the batch took it;
- ``claimed_invoices[c]`` (the run's other invoices claimed for c) grows by the number of
  invoices other than m's with a pair (invoice, c) in ``P``. Those pairs were not in the
  tables when the batch was read: each was taken by a message that did not hold it, and the
  unique constraint on (run, invoice, contact) admits one holder (a second one is refused by
  the guard's rule 4 or, on PostgreSQL, by the constraint itself), so no invoice is counted
  twice;
- nothing else the guard reads is changed by a claim.
"""

from __future__ import annotations

from dataclasses import replace

from sealbill.store.delivery import outbox as box


class BatchClaims:
    """The pairs taken so far by the batch's messages, by contact."""

    def __init__(self) -> None:
        self.invoices_of: dict[int, set[int]] = {}  # contact id -> invoice ids taken for it

    def take(self, item: box.OutboxItem, have: frozenset[int]) -> None:
        """``item`` takes its pairs but those it held already (``have``)."""
        for contact_id, _ in item.recipients:
            if contact_id not in have:
                self.invoices_of.setdefault(contact_id, set()).add(item.invoice_id)

    def seen_by(self, item: box.OutboxItem, facts: box.SendFacts) -> box.SendFacts:
        """``facts`` (read before this batch's claims) with the batch's claims so far."""
        fresh = facts.fresh
        if not self.invoices_of or fresh is None:
            return facts
        pairs = dict(fresh.pair_claims or {})
        claimed = dict(fresh.claimed_invoices or {})
        for contact_id, _ in item.recipients:
            taken = self.invoices_of.get(contact_id)
            if not taken:
                continue
            pairs[contact_id] = pairs.get(contact_id, 0) + (item.invoice_id in taken)
            claimed[contact_id] = claimed.get(contact_id, 0) + len(taken - {item.invoice_id})
        return replace(facts, fresh=replace(fresh, pair_claims=pairs, claimed_invoices=claimed))
