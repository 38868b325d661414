"""Breach severity by the ENISA method: SE = DPC x EI + CB, proposed from the facts, adjustable.

ENISA, *Recommendations for a methodology of the assessment of severity of personal data
breaches* (2013):

- DPC, data processing context, 1 to 4: simple data 1, behavioural 2, financial 3, sensitive 4
  (an invoice is financial data, so DPC starts at 3);
- EI, ease of identification: negligible 0.25, limited 0.5, significant 0.75, maximum 1;
- CB, circumstances of the breach, added up: loss of confidentiality (0.25 to known recipients,
  0.5 to an unknown number), of integrity (0.25 recoverable, 0.5 not), of availability (0.25
  temporary, 0.5 permanent), malicious intent 0.5;
- level: SE < 2 low, 2 <= SE < 3 medium, 3 <= SE < 4 high, 4 <= SE very high.

Invariants:
- every input is one of the values the method allows; anything else raises ``ValueError``;
- arithmetic is exact (``Decimal``), so a score on a threshold gets the higher level, as ENISA
  states the thresholds;
- an operator may change any proposed input, but each change carries a non-empty justification,
  recorded beside the proposal it departs from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from decimal import Decimal
from enum import StrEnum
from typing import Any

DPC_VALUES = (1, 2, 3, 4)
EI_VALUES = (Decimal("0.25"), Decimal("0.5"), Decimal("0.75"), Decimal("1"))
CB_LOSS_VALUES = (Decimal("0"), Decimal("0.25"), Decimal("0.5"))
CB_MALICIOUS_VALUES = (Decimal("0"), Decimal("0.5"))

#: Ledger data categories that make an invoice financial data (DPC base 3).
FINANCIAL_CATEGORIES = frozenset({"amount", "payment_method", "invoice", "credit_note",
                                  "invoice_lines", "iban"})
#: Categories that identify a person directly (EI maximum): a name with a postal address.
DIRECT_IDENTIFIERS = frozenset({"name", "postal_address", "billing_address"})
#: Categories that identify with some effort (EI significant).
INDIRECT_IDENTIFIERS = frozenset({"admin_email", "email", "account_reference", "subscription_id"})


class Level(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    VERY_HIGH = "very high"


@dataclass(frozen=True)
class SeverityInputs:
    dpc: int
    ei: Decimal
    cb_confidentiality: Decimal
    cb_integrity: Decimal
    cb_availability: Decimal
    cb_malicious: Decimal

    def __post_init__(self) -> None:
        problems = check_inputs(self)
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def cb(self) -> Decimal:
        return (self.cb_confidentiality + self.cb_integrity + self.cb_availability
                + self.cb_malicious)

    @property
    def score(self) -> Decimal:
        return Decimal(self.dpc) * self.ei + self.cb

    @property
    def level(self) -> Level:
        return level_for(self.score)


INPUT_NAMES = ("dpc", "ei", "cb_confidentiality", "cb_integrity", "cb_availability",
               "cb_malicious")


def check_inputs(inputs: SeverityInputs) -> list[str]:
    """Every input outside the values the method allows, named."""
    allowed: dict[str, tuple[Any, ...]] = {
        "dpc": DPC_VALUES, "ei": EI_VALUES, "cb_confidentiality": CB_LOSS_VALUES,
        "cb_integrity": CB_LOSS_VALUES, "cb_availability": CB_LOSS_VALUES,
        "cb_malicious": CB_MALICIOUS_VALUES,
    }
    return [f"{name} must be one of {', '.join(str(v) for v in values)}, "
            f"not {getattr(inputs, name)}"
            for name, values in allowed.items() if getattr(inputs, name) not in values]


def level_for(score: Decimal) -> Level:
    """ENISA's thresholds.

    >>> [level_for(Decimal(s)).value for s in ("1.75", "2", "3.25", "4")]
    ['low', 'medium', 'high', 'very high']
    """
    if score < 2:
        return Level.LOW
    if score < 3:
        return Level.MEDIUM
    if score < 4:
        return Level.HIGH
    return Level.VERY_HIGH


@dataclass(frozen=True)
class Proposal:
    inputs: SeverityInputs
    rationale: Mapping[str, str]


def propose(data_categories: Iterable[str], *, has_leak: bool,
            recipients_known: bool = True) -> Proposal:
    """The inputs the facts support: what the operator starts from.

    A misdirected invoice is a loss of confidentiality to known recipients (the ledger names
    them); the operator raises it when the recipients are not under control (a visible list
    that was forwarded, a public address).
    """
    categories = set(data_categories)
    if categories & FINANCIAL_CATEGORIES:
        dpc, dpc_why = 3, "financial data (invoice amounts, payment method): ENISA base 3"
    else:
        dpc, dpc_why = 1, "simple data only (no amount, no payment method): ENISA base 1"
    if categories & DIRECT_IDENTIFIERS:
        ei, ei_why = Decimal("1"), "name and postal address identify the customer directly"
    elif categories & INDIRECT_IDENTIFIERS:
        ei, ei_why = Decimal("0.75"), "an email or account reference identifies with some effort"
    else:
        ei, ei_why = Decimal("0.5"), "no direct identifier in the disclosed data"
    if not has_leak:
        conf, conf_why = Decimal("0"), "no message reached an unintended recipient"
    elif recipients_known:
        conf, conf_why = Decimal("0.25"), "disclosed to known recipients, named by the ledger"
    else:
        conf, conf_why = Decimal("0.5"), "disclosed to an unknown number of recipients"
    inputs = SeverityInputs(dpc=dpc, ei=ei, cb_confidentiality=conf, cb_integrity=Decimal("0"),
                            cb_availability=Decimal("0"), cb_malicious=Decimal("0"))
    rationale = {
        "dpc": dpc_why, "ei": ei_why, "cb_confidentiality": conf_why,
        "cb_integrity": "invoices were copied, not altered",
        "cb_availability": "the customers' own copies were delivered as well",
        "cb_malicious": "a processing error, no sign of malicious intent",
    }
    return Proposal(inputs, rationale)


@dataclass(frozen=True)
class Assessment:
    proposal: Proposal
    inputs: SeverityInputs
    justifications: Mapping[str, str]

    @property
    def score(self) -> Decimal:
        return self.inputs.score

    @property
    def level(self) -> Level:
        return self.inputs.level

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "ENISA 2013: SE = DPC x EI + CB",
            "proposed": _inputs_dict(self.proposal.inputs),
            "proposed_rationale": dict(self.proposal.rationale),
            "inputs": _inputs_dict(self.inputs),
            "adjustments": {name: {"from": str(getattr(self.proposal.inputs, name)),
                                   "to": str(getattr(self.inputs, name)),
                                   "justification": why}
                            for name, why in sorted(self.justifications.items())},
            "score": str(self.score),
            "level": self.level.value,
        }


def _inputs_dict(inputs: SeverityInputs) -> dict[str, str]:
    return {name: str(value) for name, value in asdict(inputs).items()}


def adjust(proposal: Proposal, changes: Mapping[str, Decimal | int],
           justifications: Mapping[str, str]) -> Assessment:
    """Apply the operator's changes; a change without a justification is refused.

    >>> p = propose(["amount", "postal_address"], has_leak=True)
    >>> str(p.inputs.score), p.inputs.level.value
    ('3.25', 'high')
    >>> adjust(p, {"cb_malicious": Decimal("0.5")}, {}).level
    Traceback (most recent call last):
    ...
    ValueError: cb_malicious: a change from 0 to 0.5 needs a justification
    """
    unknown = sorted(set(changes) - set(INPUT_NAMES))
    if unknown:
        raise ValueError(f"unknown severity inputs: {', '.join(unknown)}")
    effective = {name: value for name, value in changes.items()
                 if value != getattr(proposal.inputs, name)}
    missing = [f"{name}: a change from {getattr(proposal.inputs, name)} to {value} needs a "
               "justification" for name, value in sorted(effective.items())
               if not (justifications.get(name) or "").strip()]
    if missing:
        raise ValueError("; ".join(missing))
    typed: dict[str, Any] = {name: (int(value) if name == "dpc" else Decimal(value))
                             for name, value in effective.items()}
    inputs = replace(proposal.inputs, **typed)
    return Assessment(proposal, inputs,
                      {name: justifications[name].strip() for name in effective})


@dataclass(frozen=True)
class Recommendation:
    notify_authority: bool
    communicate_subjects: bool
    reasoning: str


def recommend(has_leak: bool, level: Level | None) -> Recommendation:
    """What the facts suggest; the operator decides and records why (Art. 33(1), 34(1)).

    >>> recommend(False, None).notify_authority
    False
    >>> r = recommend(True, Level.HIGH); (r.notify_authority, r.communicate_subjects)
    (True, True)
    """
    if not has_leak:
        return Recommendation(False, False, "no personal data reached an unintended recipient: "
                              "document in the register (Art. 33(5)), no notification")
    if level is None:
        return Recommendation(True, False, "personal data reached unintended recipients and "
                              "severity is not assessed yet: if in doubt, notify (CNIL)")
    high = level in (Level.HIGH, Level.VERY_HIGH)
    subjects = ("high risk: communicate to the data subjects (Art. 34(1)) unless an Art. 34(3) "
                "exemption applies" if high else
                "risk not high: communication to data subjects not required by Art. 34(1)")
    return Recommendation(True, high, f"severity {level.value}: notify the supervisory "
                          f"authority (Art. 33(1); if in doubt, notify); {subjects}")
