"""Benchmark of document rendering: the compiled template vs Typst, and vs WeasyPrint + factur-x.

Usage:
    python bench/bench_render.py [--count 10000] [--baseline-count 200] [--single 300]
                                 [--workers N] [--renderers 500] [--renderers-only]
                                 [--pool-cpu N]

First, the compiled template (``documents/fastpdf``) against the Typst path it replaces,
on the same 1-page invoices of 3 to 12 lines (French and English, distinct numbers, buyers
and amounts), interleaved invoice by invoice, CPU time of this process (``process_time``,
all threads): the Factur-X PDF alone (CII XML + PDF/A-3b with the XML embedded) and the whole
``render_invoice`` (plus mail bodies, subject, digests); then both in a pool of one worker
per core (invoices/s). Fallbacks to Typst are counted.

``--pool-cpu N``: only the pool as a billing run starts it — N invoices through a fresh pool
of ``--workers`` workers, its start-up included; CPU of this process and of its workers
(reaped at the end) per invoice, and the wall time.

Side by side in the same run, for the same 10-line invoices (distinct numbers, buyers and
amounts, as a billing run produces):
- sealbill: ``render_invoice`` (CII XML, Typst PDF/A-3b with factur-x.xml attached, Factur-X
  XMP via pikepdf, HTML and text mail bodies, subject, digests);
- baseline: the same CII XML, an HTML invoice printed by WeasyPrint as PDF/A-3b, then
  ``facturx.generate_from_binary`` (the usual Python Factur-X stack). It does less work
  (no mail bodies) and still is the slower one.
Both outputs are validated first (XSD + EN 16931 + FR-CTC schematrons + container checks).
Single process: per-invoice milliseconds (median) and invoices/s. Pool: one worker per core,
``--count`` invoices for sealbill, ``--baseline-count`` for the baseline (it is slow). Both
measurements interleave the two pipelines, so a busy machine slows both alike.
Prints a Markdown table; paste it into bench/RESULTS.md with the machine and date.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jinja2 import Environment  # noqa: E402

from sealbill.documents.cii import build_cii  # noqa: E402
from sealbill.documents.pdf import invoice_view  # noqa: E402
from sealbill.documents.render import render_invoice, render_many, shutdown_pool  # noqa: E402
from sealbill.domain.invoices import (  # noqa: E402
    Address,
    DocumentKind,
    Invoice,
    InvoiceLine,
    Party,
    PaymentMethod,
    Seller,
    VatCategory,
    tax_breakdown,
    totals,
)
from sealbill.domain.money import to_minor  # noqa: E402

SELLER = Seller(
    name="Atelier Numérique SAS", address=Address("12 rue de la Paix", "75002", "Paris", "FR"),
    vat_id="FR19812345676", legal_id="812345676", legal_id_scheme="0002",
    electronic_address="812345676", electronic_address_scheme="0225",
    email="factures@atelier-numerique.example", siret="81234567600017",
    iban="FR7630006000011234567890189", bic="AGRIFRPPXXX", phone="+33 1 23 45 67 89",
)
RATES = ("20", "20", "10", "5.5", "20")


def sample_invoice(i: int, count: int = 10) -> Invoice:
    """Invoice number ``i``: ``count`` lines, mixed rates, its own buyer and amounts."""
    lines = [
        InvoiceLine(
            position=k, description=f"Service {k} — abonnement {i % 97}",
            quantity=Decimal(1 + (i + k) % 9), unit_price=Decimal(f"{5 + (i * k) % 200}.{k}5"),
            amount_minor=to_minor(Decimal(1 + (i + k) % 9) * Decimal(f"{5 + (i * k) % 200}.{k}5"),
                                  "EUR"),
            vat_category=VatCategory.STANDARD, vat_rate=Decimal(RATES[k % len(RATES)]),
        )
        for k in range(1, count + 1)
    ]
    subtotals = tax_breakdown(lines, "EUR")
    excl, tax, incl = totals(subtotals)
    issue = date(2025, 3, 31)
    return Invoice(
        kind=DocumentKind.INVOICE, number=f"FA-2025-{i:06d}", issue_date=issue,
        due_date=issue + timedelta(days=30), currency="EUR", locale="fr" if i % 2 else "en",
        seller=SELLER,
        buyer=Party(name=f"Client {i} & Fils SARL",
                    address=Address(f"{i % 300} avenue de la République", "69002", "Lyon", "FR"),
                    email=f"compta{i}@client.example"),
        account_reference=f"CUST-{i:06d}", lines=tuple(lines), tax_subtotals=subtotals,
        total_excl_minor=excl, tax_total_minor=tax, total_incl_minor=incl,
        period_start=date(2025, 3, 1), period_end=issue,
        payment_method=PaymentMethod("card", "Visa •••• 4242") if i % 3 == 0 else None,
    )


def invoices(count: int, start: int = 0) -> Iterator[Invoice]:
    return (sample_invoice(i) for i in range(start, start + count))


def varied_invoices(count: int, start: int = 0) -> Iterator[Invoice]:
    """3 to 12 lines each, as the cycle benchmark of issue 16 asks."""
    return (sample_invoice(i, 3 + i % 10) for i in range(start, start + count))


# ---- baseline: WeasyPrint HTML -> PDF/A-3b, then factur-x's generate_from_binary ----

_HTML = Environment(autoescape=True).from_string("""<!DOCTYPE html>
<html lang="{{ v.lang }}"><head><meta charset="utf-8"><style>
@page { size: A4; margin: 16mm 18mm 20mm;
        @bottom-right { content: "{{ v.labels.page }} " counter(page) "/" counter(pages);
                        font-size: 8pt; } }
body { font-family: serif; font-size: 9.5pt; }
h1 { font-size: 19pt; text-align: right; } table { width: 100%; border-collapse: collapse; }
thead { display: table-header-group; } td, th { padding: 3px 4px; }
td.n, th.n { text-align: right; } tr { border-bottom: 0.4pt solid #bbb; }
</style></head><body>
<h1>{{ v.title }}</h1>
<p><strong>{{ v.seller.name }}</strong><br>{{ v.seller.address | join(", ") }}<br>
{{ v.seller.ids | join(" · ") }}</p>
<table>{% for k, val in v.meta %}<tr><td>{{ k }}</td><td class="n">{{ val }}</td></tr>
{% endfor %}</table>
<p><strong>{{ v.buyer.name }}</strong><br>{{ v.buyer.address | join(", ") }}</p>
<table><thead><tr>{% for c in v.columns %}<th>{{ c }}</th>{% endfor %}</tr></thead><tbody>
{% for l in v.lines %}<tr><td>{{ l.description }}<br><small>{{ l.detail }}</small></td>
<td class="n">{{ l.quantity }}</td><td class="n">{{ l.unit_price }}</td>
<td class="n">{{ l.vat }}</td><td class="n">{{ l.amount }}</td></tr>{% endfor %}
</tbody></table>
<table>{% for row in v.vat.rows %}<tr>{% for c in row %}<td class="n">{{ c }}</td>{% endfor %}
</tr>{% endfor %}</table>
<table>{% for k, val in v.totals %}<tr><td>{{ k }}</td><td class="n">{{ val }}</td></tr>
{% endfor %}<tr><th>{{ v.grand[0] }}</th><th class="n">{{ v.grand[1] }}</th></tr></table>
{% for line in v.payment.lines %}<p>{{ line }}</p>{% endfor %}
{% for line in v.mentions.lines %}<p><small>{{ line }}</small></p>{% endfor %}
</body></html>""")


def baseline_render(invoice: Invoice) -> bytes:
    from facturx import generate_from_binary
    from weasyprint import HTML

    xml = build_cii(invoice)
    html = _HTML.render(v=invoice_view(invoice))
    pdf = HTML(string=html).write_pdf(pdf_variant="pdf/a-3b")
    metadata = {"author": invoice.seller.name, "title": invoice.number,
                "subject": "Factur-X invoice", "keywords": "Factur-X"}
    out: bytes = generate_from_binary(pdf, xml, flavor="factur-x", level="en16931",
                                      check_xsd=False, pdf_metadata=metadata)
    return out


def _baseline_index(i: int) -> int:
    return len(baseline_render(sample_invoice(i)))


# ---- measurement ----

def validate(pdf: bytes) -> str:
    from tests.support.facturx_check import check_pdf

    findings = check_pdf(pdf)
    return "pass" if not findings else f"FAIL ({len(findings)}: {findings[0]})"


def single(count: int, every: int) -> tuple[list[float], list[float]]:
    """Per-invoice seconds, one process, each invoice distinct. The two pipelines are
    interleaved (the baseline on every ``every``-th invoice) so that background load on
    the machine weighs on both alike."""
    ours, base = [], []
    for k, invoice in enumerate(invoices(count, 100)):
        begin = time.perf_counter()
        render_invoice(invoice)
        ours.append(time.perf_counter() - begin)
        if k % every == 0:
            begin = time.perf_counter()
            baseline_render(invoice)
            base.append(time.perf_counter() - begin)
    return ours, base


def pools(count: int, baseline_count: int, workers: int, rounds: int = 20) -> tuple[float, float]:
    """Seconds for ``count`` invoices on sealbill's pool and ``baseline_count`` on a
    WeasyPrint pool of the same size. The two alternate in ``rounds`` slices, so that load
    from other processes on the machine weighs on both alike."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    ours = base = 0.0
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        list(pool.map(_baseline_index, range(20_000_000, 20_000_000 + workers)))  # start
        list(render_many(invoices(workers * 16, 10_000_000), workers=workers))  # start
        done_ours = done_base = 0
        for k in range(1, rounds + 1):
            n_ours = count * k // rounds - done_ours
            n_base = baseline_count * k // rounds - done_base
            begin = time.perf_counter()
            rendered = sum(1 for r in render_many(invoices(n_ours, done_ours), workers=workers)
                           if r.pdf)
            ours += time.perf_counter() - begin
            begin = time.perf_counter()
            sizes = list(pool.map(_baseline_index, range(done_base, done_base + n_base)))
            base += time.perf_counter() - begin
            assert rendered == n_ours and len(sizes) == n_base and all(sizes)
            done_ours, done_base = done_ours + n_ours, done_base + n_base
    return ours, base


def renderers(count: int) -> tuple[dict[str, list[float]], dict[str, int]]:
    """CPU seconds per invoice of each path on the same invoices, interleaved one by one;
    and how many invoices each renderer made in ``render_invoice``."""
    from sealbill.documents.cii_text import build_cii_text
    from sealbill.documents.facturx import make_facturx
    from sealbill.documents.fastpdf import render_pdf
    from sealbill.documents.render import FAST, TYPST

    cpu = time.process_time
    times: dict[str, list[float]] = {"fast pdf": [], "typst pdf": [], "fast render": [],
                                     "typst render": []}
    used: dict[str, int] = {}
    # Each Typst measurement gets an invoice Typst has not seen: it memoizes compilations,
    # and a second compile of the same invoice would be cheaper than a real one.
    pairs = zip(varied_invoices(count, 200_000), varied_invoices(count, 400_000), strict=True)
    for invoice, other in pairs:
        begin = cpu()
        render_pdf(invoice, build_cii_text(invoice))
        times["fast pdf"].append(cpu() - begin)
        begin = cpu()
        make_facturx(invoice, build_cii(invoice))  # the path before the compiled template
        times["typst pdf"].append(cpu() - begin)
        invoice = other
        begin = cpu()
        rendered = render_invoice(invoice, FAST)
        times["fast render"].append(cpu() - begin)
        used[rendered.renderer] = used.get(rendered.renderer, 0) + 1
        begin = cpu()
        render_invoice(invoice, TYPST)
        times["typst render"].append(cpu() - begin)
    return times, used


def renderer_pools(count: int, workers: int, rounds: int = 10) -> dict[str, float]:
    """Wall seconds for ``count`` invoices through ``render_many`` with each renderer,
    alternating in ``rounds`` slices."""
    seconds = {"fast": 0.0, "typst": 0.0}
    for renderer in seconds:  # start the pool and each renderer's caches
        list(render_many(varied_invoices(workers * 8, 30_000_000), workers=workers,
                         renderer=renderer))
    done = 0
    for k in range(1, rounds + 1):
        n = count * k // rounds - done
        for renderer in seconds:
            begin = time.perf_counter()
            made = sum(1 for r in render_many(varied_invoices(n, 300_000 + done),
                                              workers=workers, renderer=renderer) if r.pdf)
            seconds[renderer] += time.perf_counter() - begin
            assert made == n
        done += n
    return seconds


def print_renderers(count: int, workers: int) -> None:
    validity = validate(render_invoice(sample_invoice(7, 5)).pdf)
    render_invoice(sample_invoice(8, 5), "typst")  # warm both paths
    times, used = renderers(count)
    pools_s = renderer_pools(max(count, 200), workers)
    load = os.getloadavg()
    print(f"compiled template vs Typst, {count} invoices of 3-12 lines, load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n")
    print("| path | CPU ms median | CPU ms mean | CPU ms p95 |")
    print("| --- | ---: | ---: | ---: |")
    for name, values in times.items():
        ordered = sorted(values)
        print(f"| {name} | {1000 * statistics.median(values):.2f} | "
              f"{1000 * statistics.fmean(values):.2f} | "
              f"{1000 * ordered[int(0.95 * (len(ordered) - 1))]:.2f} |")
    ratio = statistics.median(times["typst pdf"]) / statistics.median(times["fast pdf"])
    ratio_all = statistics.median(times["typst render"]) / statistics.median(
        times["fast render"])
    print(f"\nFactur-X PDF: compiled template {ratio:.1f}× less CPU than Typst (median); "
          f"whole render_invoice {ratio_all:.1f}×")
    print(f"renderers used by render_invoice: {used} (fallbacks to Typst: "
          f"{used.get('typst-fallback', 0)})")
    n = max(count, 200)
    print(f"pool ×{workers}, {n} invoices each: compiled {n / pools_s['fast']:.0f}/s, "
          f"Typst {n / pools_s['typst']:.0f}/s")
    print(f"validation of a compiled-template PDF (XSD + EN 16931 + FR-CTC + container): "
          f"{validity}\n")


def pool_cpu(count: int, workers: int) -> None:
    """CPU per invoice of a cold pool (start-up included): parent and reaped workers."""
    def used() -> tuple[float, float]:
        own, kids = map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
        return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime
    batch, (own, kids), begin = list(varied_invoices(count, 40_000_000)), used(), time.time()
    made = sum(1 for r in render_many(batch, workers=workers) if r.pdf)
    shutdown_pool()  # reaps the workers: their CPU is counted
    wall, (parent, pool), load = time.time() - begin, used(), os.getloadavg()
    print(f"cold pool ×{workers}, {made} invoices: wall {wall:.2f} s, CPU parent "
          f"{parent - own:.2f} s + workers {pool - kids:.2f} s = "
          f"{1000 * (parent - own + pool - kids) / made:.2f} ms an invoice; load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def embedding_step(count: int) -> tuple[float, float]:
    """Median ms of the Factur-X step alone: pikepdf XMP patch of a Typst PDF that already
    carries factur-x.xml (sealbill) vs factur-x's generate_from_binary on a plain PDF."""
    from facturx import generate_from_binary

    from sealbill.documents.facturx import add_facturx_metadata
    from sealbill.documents.pdf import compile_pdf

    ours, theirs = [], []
    for invoice in invoices(count, 5_000_000):
        xml = build_cii(invoice)
        attached, plain = compile_pdf(invoice, attachment=xml), compile_pdf(invoice)
        begin = time.perf_counter()
        add_facturx_metadata(attached)
        ours.append(time.perf_counter() - begin)
        begin = time.perf_counter()
        generate_from_binary(plain, xml, flavor="factur-x", level="en16931", check_xsd=False)
        theirs.append(time.perf_counter() - begin)
    return 1000 * statistics.median(ours), 1000 * statistics.median(theirs)


def row(pipeline: str, mode: str, count: int, seconds: float) -> str:
    return (f"| {pipeline} | {mode} | {count} | {seconds:.2f} | {1000 * seconds / count:.2f} | "
            f"{count / seconds:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="sealbill pool invoices")
    parser.add_argument("--baseline-count", type=int, default=200, help="baseline pool invoices")
    parser.add_argument("--single", type=int, default=300, help="single-process invoices")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--renderers", type=int, default=500,
                        help="invoices for the compiled template vs Typst comparison")
    parser.add_argument("--renderers-only", action="store_true",
                        help="only the compiled template vs Typst comparison")
    parser.add_argument("--pool-cpu", type=int, default=0, metavar="N",
                        help="only the CPU of a cold pool rendering N invoices")
    args = parser.parse_args()
    if args.pool_cpu:
        pool_cpu(args.pool_cpu, args.workers)
        return
    print_renderers(args.renderers, args.workers)
    if args.renderers_only:
        shutdown_pool()
        return

    ours_check = validate(render_invoice(sample_invoice(0)).pdf)
    base_check = validate(baseline_render(sample_invoice(0)))
    render_invoice(sample_invoice(1)), baseline_render(sample_invoice(1))  # warm caches

    ours, base = single(args.single, every=6)
    embed_ours, embed_lib = embedding_step(50)
    ours_pool, base_pool = pools(args.count, args.baseline_count, args.workers)
    shutdown_pool()

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                .splitlines() if line.startswith("model name")), platform.processor())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"date {date.today()} · {platform.python_version()} · nproc {os.cpu_count()} · "
          f"{cpu} · workers {args.workers}\n")
    print("| pipeline | mode | invoices | total s | ms/invoice | invoices/s |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    print(row("sealbill (Typst + pikepdf)", "1 process", len(ours), sum(ours)))
    print(row("baseline (WeasyPrint + factur-x)", "1 process", len(base), sum(base)))
    print(row("sealbill (Typst + pikepdf)", f"pool ×{args.workers}", args.count, ours_pool))
    print(row("baseline (WeasyPrint + factur-x)", f"pool ×{args.workers}", args.baseline_count,
              base_pool))
    median_ours, median_base = statistics.median(ours), statistics.median(base)
    print(f"\nmedian per invoice, 1 process: sealbill {1000 * median_ours:.2f} ms, "
          f"baseline {1000 * median_base:.2f} ms → {median_base / median_ours:.1f}× faster")
    print(f"pool throughput: sealbill {args.count / ours_pool:.0f}/s, baseline "
          f"{args.baseline_count / base_pool:.0f}/s → "
          f"{(args.count / ours_pool) / (args.baseline_count / base_pool):.1f}× faster")
    print(f"Factur-X step alone (median): Typst attach + pikepdf XMP {embed_ours:.2f} ms, "
          f"facturx.generate_from_binary {embed_lib:.2f} ms")
    print(f"validation (XSD + EN 16931 + FR-CTC + container): sealbill {ours_check}, "
          f"baseline {base_check}")
    print(f"parent peak RSS {peak:.0f} MiB (the pool streams: flat in --count)")


if __name__ == "__main__":
    main()
