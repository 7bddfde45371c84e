"""The demo ledger `ledger demo` builds: a realistic, deterministic scenario.

Demo data, not an application service: it issues its commands through the
application service as any client does (`LedgerService.execute_batch`).

Five consortia in the North East, four dozen practices with ODS codes, the
2024-25 year of allocations per element on weighted capitation, delegations to
consortia and to a neighbouring practice, an opt-out and opt-in, hard budgets,
and several hundred commitments with NHS trust providers and NICE quality
standards: varied, settled, cancelled. Some overspends are refused on hard
budgets and some flagged on indicative ones. The same seed gives the same ledger.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from ledger.application.commands import build_command
from ledger.application.service import LedgerService, Request
from ledger.application.unit_of_work import UnitOfWork
from ledger.domain.errors import RuleViolation
from ledger.domain.events import (
    EVENT_TYPES,
    AllocationAdjusted,
    BudgetAllocated,
    SpendCommitted,
)
from ledger.domain.values import ELEMENTS, Element, FinancialYear

YEAR = FinancialYear(2024)
ALLOCATOR = "allocator:Q74"  # NHS England (North East and Yorkshire), as a PCT-era allocator

CONSORTIA: tuple[tuple[str, str, str, str], ...] = (
    # code, name, officer, ODS prefix of its practices
    ("16C", "Tees Valley Commissioning Consortium", "Dr Alison Brereton", "A81"),
    ("00P", "Sunderland Commissioning Consortium", "Dr Gareth Lowther", "A89"),
    ("13T", "Newcastle Gateshead Commissioning Consortium", "Dr Priya Raman", "A85"),
    ("99C", "North Tyneside Commissioning Consortium", "Dr Colin Hetherington", "A87"),
    ("84H", "County Durham Commissioning Consortium", "Dr Fiona Tweddle", "A83"),
)

PLACES: dict[str, tuple[str, ...]] = {
    "16C": ("Stockton", "Norton", "Yarm", "Thornaby", "Billingham", "Hartlepool", "Redcar",
            "Guisborough", "Marske", "Eston", "Ingleby Barwick", "Middlesbrough"),
    "00P": ("Hendon", "Roker", "Washington", "Houghton", "Hetton", "Southwick", "Millfield",
            "Pennywell", "Fulwell", "Ryhope"),
    "13T": ("Jesmond", "Heaton", "Fenham", "Benwell", "Gosforth", "Kenton", "Felling",
            "Low Fell", "Whickham", "Blaydon"),
    "99C": ("Tynemouth", "Whitley Bay", "Wallsend", "North Shields", "Forest Hall",
            "Killingworth", "Longbenton", "Cullercoats"),
    "84H": ("Chester-le-Street", "Durham", "Stanley", "Consett", "Seaham", "Peterlee",
            "Spennymoor", "Bishop Auckland", "Crook", "Newton Aycliffe"),
}
SUFFIXES = ("Medical Centre", "Surgery", "Health Centre", "Medical Practice", "Family Practice")
STREETS = ("Oxford Road", "Queen Street", "Station Road", "Park Lane", "Church View",
           "Victoria Road", "The Green", "Woodlands", "Rosedale", "Marlborough")

# Pounds per weighted patient per year, by element (realistic orders of magnitude).
RATES: dict[Element, int] = {
    Element.ACUTE: 720,
    Element.COMMUNITY: 160,
    Element.MENTAL_HEALTH: 130,
    Element.MATERNITY: 45,
    Element.PRESCRIBING: 175,
    Element.HEALTH_INEQUALITIES: 12,
    Element.PRIMARY_CARE: 155,
}

ACUTE_TRUSTS = ("RTR", "RXF", "RR7", "RTD", "RLN", "RVW", "RXP", "R0B", "RTF")
PROVIDERS: dict[Element, tuple[str, ...]] = {
    Element.ACUTE: ACUTE_TRUSTS,
    Element.COMMUNITY: ("RVW", "RXP", "RTD", "R0B", "RTF"),
    Element.MENTAL_HEALTH: ("RX4", "RX3"),
    Element.MATERNITY: ("RTR", "RVW", "RTD", "R0B", "RXP"),
    Element.PRESCRIBING: ("NHSBSA", "RX4", "RTD"),
    Element.HEALTH_INEQUALITIES: ("Healthwatch", "Citizens Advice", "Age UK", "Mind"),
    Element.PRIMARY_CARE: ("PCN North", "PCN Central", "PCN South", "GP Federation"),
}
# Service and the NICE quality standards it is tagged with.
SERVICES: dict[Element, tuple[tuple[str, tuple[str, ...]], ...]] = {
    Element.ACUTE: (
        ("Hip replacement", ("QS3",)), ("Knee replacement", ("QS3",)),
        ("Cataract surgery", ()), ("Stroke thrombolysis", ("QS2",)),
        ("Elective cardiology", ("QS9",)), ("Day-case endoscopy", ()),
        ("Acute medical admissions", ("QS3",)), ("Dermatology outpatients", ()),
    ),
    Element.COMMUNITY: (
        ("District nursing", ()), ("Stroke early supported discharge", ("QS2",)),
        ("Community diabetes service", ("QS6",)), ("Pulmonary rehabilitation", ("QS10",)),
    ),
    Element.MENTAL_HEALTH: (
        ("Memory assessment service", ("QS1",)), ("Talking therapies", ("QS8",)),
        ("Crisis resolution team", ()), ("Dementia support workers", ("QS1",)),
    ),
    Element.MATERNITY: (
        ("Antenatal care pathway", ("QS22",)), ("Postnatal care", ("QS37",)),
    ),
    Element.PRESCRIBING: (
        ("Anticoagulation", ("QS3",)), ("Respiratory inhalers", ("QS10", "QS25")),
        ("Diabetes medicines", ("QS6",)), ("Antidepressants", ("QS8",)),
    ),
    Element.HEALTH_INEQUALITIES: (
        ("Social prescribing link workers", ()), ("Carers support", ("QS1",)),
        ("Outreach health checks", ()),
    ),
    Element.PRIMARY_CARE: (
        ("Extended access appointments", ()), ("Care home ward rounds", ("QS1",)),
        ("Hypertension case finding", ()),
    ),
}
# How often each element is committed against (acute is the bulk of spending).
ELEMENT_WEIGHTS: dict[Element, int] = {
    Element.ACUTE: 40, Element.COMMUNITY: 14, Element.MENTAL_HEALTH: 12, Element.MATERNITY: 6,
    Element.PRESCRIBING: 16, Element.HEALTH_INEQUALITIES: 4, Element.PRIMARY_CARE: 8,
}
STANDARDS = ("QS1", "QS2", "QS3", "QS6", "QS8", "QS9", "QS10", "QS22", "QS25", "QS37")

GAP_STANDARD = "QS13"
POOL_BASIS_POINTS = 100  # 16C top-slices 1% of its members' allocations
PRACTICES_PER_CONSORTIUM = 9
UNAFFILIATED = 3
COMMITMENTS = 420


@dataclass
class DemoSummary:
    """What the demo recorded, for the summary and for the tour that follows it."""

    location: str
    year: str
    consortia: int
    practices: int
    commands: int = 0
    refusals: int = 0
    events: int = 0
    events_by_type: dict[str, int] = field(default_factory=dict)
    refused_by_rule: dict[str, list[str]] = field(default_factory=dict)
    flagged_overspends: int = 0
    allocated_pence: int = 0
    committed_pence: int = 0
    # Practices worth looking at in a tour: (what, practice code).
    highlights: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DemoPractice:
    code: str
    name: str
    list_size: int
    consortium: str | None
    weighted: dict[Element, int]
    amounts: dict[Element, int]  # pence


@dataclass
class _Holding:
    """The demo's own plan of who holds what when, to issue commands as the holder."""

    changes: dict[tuple[str, Element], list[tuple[date, str]]] = field(default_factory=dict)

    def change(self, practice: str, elements: tuple[Element, ...], day: date, holder: str) -> None:
        for element in elements:
            self.changes.setdefault((practice, element), []).append((day, holder))

    def holder(self, practice: str, element: Element, day: date) -> str:
        current = f"practice:{practice}"
        for since, holder in sorted(self.changes.get((practice, element), [])):
            if since <= day:
                current = holder
        return current


class DemoBuilder:
    def __init__(self, service: LedgerService, seed: int) -> None:
        self.service = service
        self.rng = random.Random(seed)  # noqa: S311 - demo data, not security
        self.serial = 0
        self.holding = _Holding()
        self.hard: set[str] = set()
        self.summary = DemoSummary(
            location=service.store.target.display,
            year=str(YEAR),
            consortia=len(CONSORTIA),
            practices=0,
        )

    # --- issuing commands --------------------------------------------------------------

    def request(self, actor: str, name: str, args: dict[str, Any]) -> Request:
        self.serial += 1
        return Request(build_command(name, args), actor, f"demo:{self.serial:05d}")

    def run(self, requests: list[Request]) -> None:
        outcomes = self.service.execute_batch(requests)
        self.summary.commands += len(outcomes)
        for outcome in outcomes:
            if outcome.error is not None:
                self.summary.refusals += 1
                examples = self.summary.refused_by_rule.setdefault(outcome.error.rule, [])
                examples.append(f"{outcome.request.command.name}: {outcome.error.message}")

    # --- the ledger --------------------------------------------------------------------

    def practices(self) -> list[DemoPractice]:
        made: list[DemoPractice] = []
        areas = [(code, prefix) for code, _, _, prefix in CONSORTIA]
        for code, prefix in areas:
            places = self.rng.sample(PLACES[code], k=min(len(PLACES[code]), 8))
            count = PRACTICES_PER_CONSORTIUM + (1 if code == "16C" else 0)
            numbers = sorted(self.rng.sample(range(1, 700), count + UNAFFILIATED))
            for i, number in enumerate(numbers[:count]):
                made.append(self.practice(f"{prefix}{number:03d}", places[i % len(places)], code))
            if code in ("16C", "84H"):  # a few practices outside any consortium
                made.extend(
                    self.practice(f"{prefix}{number:03d}", self.rng.choice(PLACES[code]), None)
                    for number in numbers[count:count + 1 + (code == "84H")]
                )
        return made

    def practice(self, code: str, place: str, consortium: str | None) -> DemoPractice:
        style = self.rng.randrange(4)
        if style == 0:
            name = f"{place} {self.rng.choice(SUFFIXES)}"
        elif style == 1:
            name = f"{self.rng.choice(STREETS)} {self.rng.choice(SUFFIXES)}, {place}"
        elif style == 2:
            name = f"The {place} Practice"
        else:
            name = f"{place} Group Practice"
        list_size = int(self.rng.triangular(2_600, 18_000, 7_500))
        weighted = {e: int(list_size * self.rng.uniform(0.85, 1.25)) for e in ELEMENTS}
        amounts = {
            e: int(weighted[e] * RATES[e] * self.rng.uniform(0.97, 1.03)) * 100 for e in ELEMENTS
        }
        return DemoPractice(code, name, list_size, consortium, weighted, amounts)

    def build(self) -> DemoSummary:
        head = self.service.store.head()
        if head:
            location = self.summary.location
            fresh = "demo-2.db" if location.endswith("demo.db") else "demo.db"
            events = f"{head:,} event{'' if head == 1 else 's'}"
            raise RuleViolation(
                "demo",
                f"the ledger at {location} already holds {events}; the demo builds a fresh "
                f"ledger: give it a file that does not exist yet, e.g. ledger --db {fresh} demo",
            )
        practices = self.practices()
        self.summary.practices = len(practices)
        self.setup(practices)
        self.holdings(practices)
        refs = self.spending(practices)
        self.follow_up(refs)
        self.joint_accountability(practices)
        self.count()
        return self.summary

    def setup(self, practices: list[DemoPractice]) -> None:
        start = YEAR.first_day.isoformat()
        requests = [
            self.request(ALLOCATOR, "consortium form",
                         {"consortium": code, "name": name, "officer": officer, "on": start})
            for code, name, officer, _ in CONSORTIA
        ]
        requests.extend(
            self.request(ALLOCATOR, "practice register", {
                "practice": p.code, "name": p.name, "list_size": p.list_size,
                "weighted": {str(e): n for e, n in p.weighted.items()}, "on": start,
            })
            for p in practices
        )
        requests.extend(
            self.request(f"consortium:{p.consortium}", "consortium join",
                         {"consortium": p.consortium, "practice": p.code, "on": start})
            for p in practices
            if p.consortium
        )
        for code, *_ in CONSORTIA:
            adopted = ["QS1", "QS2", "QS3", *self.rng.sample(STANDARDS[3:], k=3)]
            if code == "16C":
                # End of life care: adopted, but nothing commissioned against it (a gap).
                adopted.append(GAP_STANDARD)
            requests.append(self.request(f"consortium:{code}", "consortium adopt",
                                         {"consortium": code, "year": str(YEAR),
                                          "codes": adopted, "on": start}))
        requests.append(self.request("consortium:16C", "consortium risk-pool", {
            "consortium": "16C", "year": str(YEAR), "top_slice": f"{POOL_BASIS_POINTS / 100:g}%",
            "on": start}))
        requests.extend(
            self.request(ALLOCATOR, "budget allocate", {
                "practice": p.code, "year": str(YEAR), "on": start,
                "basis": "Weighted capitation 2024-25",
                "element": {str(e): _pounds(a) for e, a in p.amounts.items()},
            })
            for p in practices
        )
        for p in self.rng.sample(practices, k=8):
            element = self.rng.choice((Element.ACUTE, Element.PRESCRIBING, Element.COMMUNITY))
            growth = self.rng.random() < 0.6
            delta = p.amounts[element] * self.rng.randint(1, 3) // 100
            requests.append(self.request(ALLOCATOR, "budget adjust", {
                "practice": p.code, "year": str(YEAR), "element": str(element),
                "by": _pounds(delta if growth else -delta),
                "reason": "In-year growth funding" if growth else "List cleansing",
                "on": self._day(30, 120).isoformat(),
            }))
        self.run(requests)

    def holdings(self, practices: list[DemoPractice]) -> None:
        members = [p for p in practices if p.consortium]
        chosen = self.rng.sample(members, k=20)
        to_consortium, to_practice = chosen[:12], chosen[12:14]
        opting_out, harden = chosen[14], chosen[15:20]
        harden += [p for p in members if p not in chosen and p.consortium != "16C"][:3]
        requests: list[Request] = []
        # Neighbouring practices take on community services for two others.
        for p in to_practice:
            neighbour = next(q for q in members if q.consortium == p.consortium
                             and q not in chosen)
            day = date(2024, 5, 15)
            requests.append(self._holding_change(p, (Element.COMMUNITY,), day,
                                                 f"practice:{neighbour.code}"))
            self.summary.highlights.append((f"delegated community to {neighbour.code}", p.code))
        for p in to_consortium:
            elements: tuple[Element, ...] = (Element.PRESCRIBING,)
            if self.rng.random() >= 0.6:
                elements = (Element.PRESCRIBING, Element.MENTAL_HEALTH)
            requests.append(self._holding_change(p, elements, date(2024, 6, 1),
                                                 f"consortium:{p.consortium}"))
        self.summary.highlights.append(("delegated to its consortium", to_consortium[0].code))
        # One opt-out to a neighbour for the summer, then back.
        nominee = next(q for q in members if q.consortium == opting_out.consortium
                       and q not in chosen and q is not opting_out)
        out_on, back_on = date(2024, 8, 1), date(2024, 12, 1)
        requests.append(self.request(f"practice:{opting_out.code}", "budget opt-out", {
            "practice": opting_out.code, "year": str(YEAR), "to": f"practice:{nominee.code}",
            "reason": "Senior partner retiring; caretaker arrangement", "on": out_on.isoformat(),
        }))
        self.holding.change(opting_out.code, ELEMENTS, out_on, f"practice:{nominee.code}")
        requests.append(self.request(f"practice:{opting_out.code}", "budget opt-in", {
            "practice": opting_out.code, "year": str(YEAR), "on": back_on.isoformat(),
            "reason": "New partner in post",
        }))
        self.holding.change(opting_out.code, ELEMENTS, back_on, f"practice:{opting_out.code}")
        self.summary.highlights.append(("opted out and back in", opting_out.code))
        # One delegation revoked in the autumn.
        revoked = to_consortium[1]
        revoke_on = date(2024, 10, 1)
        elements = tuple(e for e in (Element.PRESCRIBING, Element.MENTAL_HEALTH)
                         if self.holding.holder(revoked.code, e, revoke_on) != _own(revoked))
        requests.append(self.request(f"practice:{revoked.code}", "budget revoke", {
            "practice": revoked.code, "year": str(YEAR), "element": [str(e) for e in elements],
            "on": revoke_on.isoformat(),
        }))
        self.holding.change(revoked.code, elements, revoke_on, _own(revoked))
        self.summary.highlights.append(("revoked a delegation", revoked.code))
        requests.extend(
            self.request(ALLOCATOR, "budget harden", {
                "practice": p.code, "year": str(YEAR), "on": "2024-07-01",
                "reason": "Competence assured at mid-year review",
            })
            for p in harden
        )
        self.hard = {p.code for p in harden}
        self.summary.highlights.append(("hard budget", harden[0].code))
        self.run(requests)

    def _holding_change(self, p: DemoPractice, elements: tuple[Element, ...], day: date,
                        holder: str) -> Request:
        self.holding.change(p.code, elements, day, holder)
        return self.request(f"practice:{p.code}", "budget delegate", {
            "practice": p.code, "year": str(YEAR), "element": [str(e) for e in elements],
            "to": holder, "on": day.isoformat(),
        })

    def spending(self, practices: list[DemoPractice]) -> list[tuple[str, DemoPractice, Element,
                                                                   date, int]]:
        planned: list[tuple[date, DemoPractice, Element, int, str]] = []
        elements = list(ELEMENT_WEIGHTS)
        weights = list(ELEMENT_WEIGHTS.values())
        for _ in range(COMMITMENTS):
            p = self.rng.choice(practices)
            element = self.rng.choices(elements, weights)[0]
            amount = int(p.amounts[element] * self.rng.uniform(0.004, 0.03)) // 100 * 100
            planned.append((self._day(10, 340), p, element, max(amount, 50_000), ""))
        # Overspends: on hard budgets refused, on indicative ones recorded and flagged.
        # Outside 16C, whose risk pool may cover a hard overspend.
        hard = [p for p in practices if p.code in self.hard and p.consortium != "16C"]
        soft = [p for p in practices if p.code not in self.hard]
        planned.extend(
            (date(2024, 11, 20), p, Element.HEALTH_INEQUALITIES,
             p.amounts[Element.HEALTH_INEQUALITIES] * 6 // 5, "hard")
            for p in hard[:4]
        )
        for p in soft[:3]:
            planned.append((date(2025, 1, 15), p, Element.MATERNITY,
                            p.amounts[Element.MATERNITY] * 11 // 10, "flag"))
            self.summary.highlights.append(("overspend flagged", p.code))
        self.summary.highlights.append(("overspend refused", hard[0].code))
        planned.sort(key=lambda item: item[0])
        requests: list[Request] = []
        made: list[tuple[str, DemoPractice, Element, date, int]] = []
        for n, (day, p, element, amount, kind) in enumerate(planned, start=1):
            ref = f"R-{n:05d}"
            service, qs = self.rng.choice(SERVICES[element])
            if kind:
                service = {"hard": "Winter pressures outreach",
                           "flag": "Enhanced midwifery continuity"}[kind]
                qs = ()
            requests.append(self.request(self.holding.holder(p.code, element, day),
                                         "spend commit", {
                "practice": p.code, "year": str(YEAR), "element": str(element), "ref": ref,
                "amount": _pounds(amount), "provider": self.rng.choice(PROVIDERS[element]),
                "service": service, "qs": list(qs), "on": day.isoformat(),
            }))
            if not kind:
                made.append((ref, p, element, day, amount))
        self.run(requests)
        return made

    def follow_up(self, refs: list[tuple[str, DemoPractice, Element, date, int]]) -> None:
        """Variations, partial and final settlements, cancellations, in date order."""
        steps: list[tuple[date, int, str, dict[str, Any], str, Element]] = []
        last = YEAR.last_day
        for n, (ref, p, element, day, amount) in enumerate(refs):
            roll = self.rng.random()
            if roll < 0.05:
                on = min(day + timedelta(days=self.rng.randint(5, 60)), last)
                steps.append((on, n, "spend cancel", {"ref": ref, "reason": "Service not required",
                                                      "on": on.isoformat()}, p.code, element))
                continue
            total = amount
            on = day
            if roll < 0.20:
                total = amount * self.rng.choice((90, 95, 105, 110, 120)) // 100 // 100 * 100
                on = min(day + timedelta(days=self.rng.randint(7, 45)), last)
                steps.append((on, n, "spend vary", {"ref": ref, "amount": _pounds(total),
                                                    "reason": "Activity revised",
                                                    "on": on.isoformat()}, p.code, element))
            if roll < 0.65:
                part = total * self.rng.randint(30, 60) // 100 // 100 * 100
                on = min(on + timedelta(days=self.rng.randint(20, 60)), last)
                steps.append((on, n, "spend settle", {"ref": ref, "amount": _pounds(part),
                                                      "on": on.isoformat()}, p.code, element))
                if roll < 0.40:
                    rest = total - part
                    on = min(on + timedelta(days=self.rng.randint(20, 60)), last)
                    steps.append((on, n, "spend settle", {
                        "ref": ref, "amount": _pounds(rest * self.rng.randint(85, 100) // 100),
                        "final": True, "on": on.isoformat()}, p.code, element))
        steps.sort(key=lambda s: (s[0], s[1]))
        self.run([
            self.request(self.holding.holder(code, element, on), name, args)
            for on, _, name, args, code, element in steps
        ])

    def joint_accountability(self, practices: list[DemoPractice]) -> None:
        """A hard budget in 16C drawing on its risk pool, and a peer-review outlier in 00P."""
        self.summary.highlights.append((f"adopted {GAP_STANDARD} with nothing against it", "16C"))
        drawer = self._pool_drawer(practices)
        if drawer is not None:
            self._draw_on_pool(drawer)
        outlier = next(p for p in practices if p.consortium == "00P")
        requests = []
        for n in range(30):
            day = date(2024, 10, 1) + timedelta(days=4 * n)
            requests.append(self.request(
                self.holding.holder(outlier.code, Element.ACUTE, day), "spend commit", {
                    "practice": outlier.code, "year": str(YEAR), "element": "acute",
                    "ref": f"R-{outlier.code}-PT{n + 1:02d}",
                    "amount": _pounds(self.rng.randint(1_800, 4_200) * 100),
                    "provider": "RXP", "service": "Direct access physiotherapy",
                    "qs": [], "on": day.isoformat(),
                }))
        self.run(requests)
        self.summary.highlights.append(("outlier in peer review (acute)", outlier.code))

    def _pool_drawer(self, practices: list[DemoPractice]) -> DemoPractice | None:
        """A 16C member holding its own health-inequalities element, nowhere overspent."""
        uow = UnitOfWork(self.service.store, self.service.cache)
        for p in practices:
            if p.consortium != "16C" or p.code in self.hard:
                continue
            if self.holding.holder(p.code, Element.HEALTH_INEQUALITIES, date(2025, 2, 10)) != (
                _own(p)
            ):
                continue
            budget = uow.budget(p.code, YEAR)
            if all(budget.remaining(e, POOL_BASIS_POINTS) >= 0 for e in ELEMENTS):
                return p
        return None

    def _draw_on_pool(self, p: DemoPractice) -> None:
        self.run([self.request(ALLOCATOR, "budget harden", {
            "practice": p.code, "year": str(YEAR), "on": "2025-02-01",
            "reason": "Competence assured at year-end review",
        })])
        self.hard.add(p.code)
        budget = UnitOfWork(self.service.store, self.service.cache).budget(p.code, YEAR)
        remaining = budget.remaining(Element.HEALTH_INEQUALITIES, POOL_BASIS_POINTS)
        self.run([self.request(_own(p), "spend commit", {
            "practice": p.code, "year": str(YEAR), "element": "health-inequalities",
            "ref": f"R-{p.code}-WINTER", "amount": _pounds(remaining + 7_500_00),
            "provider": "Age UK", "service": "Winter warmth outreach", "qs": [],
            "on": "2025-02-10",
        })])
        self.summary.highlights.append(("drew £7,500.00 on the 16C risk pool", p.code))

    def count(self) -> None:
        counts: Counter[str] = Counter()
        for _, event in self.service.store.iter_events():
            counts[event.topic] += 1
            if isinstance(event, BudgetAllocated):
                self.summary.allocated_pence += sum(event.amounts_pence.values())
            elif isinstance(event, AllocationAdjusted):
                self.summary.allocated_pence += event.delta_pence
            elif isinstance(event, SpendCommitted):
                self.summary.committed_pence += event.amount_pence
                self.summary.flagged_overspends += event.overspend_pence > 0
        self.summary.events = sum(counts.values())
        self.summary.events_by_type = {
            t.topic: counts[t.topic] for t in EVENT_TYPES if counts[t.topic]
        }

    def _day(self, first: int, last: int) -> date:
        return YEAR.first_day + timedelta(days=self.rng.randint(first, last))


def _pounds(pence: int) -> str:
    sign = "-" if pence < 0 else ""
    return f"{sign}{abs(pence) // 100}.{abs(pence) % 100:02d}"


def _own(p: DemoPractice) -> str:
    return f"practice:{p.code}"


def build_demo(service: LedgerService, seed: int = 2024) -> DemoSummary:
    """Record the demo ledger on an empty store; refuses a store that holds events."""
    return DemoBuilder(service, seed).build()

