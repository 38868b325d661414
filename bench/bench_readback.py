"""The guard's read-back alone, on real messages: CPU per message of ``examine``.

    PYTHONPATH=<tree>/src .venv/bin/python bench/bench_readback.py --cache DIR
                                            [--messages N] [--repeat N] [--rounds N]

``DIR`` is a ``bench_delivery.py --cache`` directory (a planned, not yet sent cycle). The
messages are built once as a sender builds them (gathered, composed, DKIM-signed) from the
first ``--messages`` outbox rows; then ``examine`` (the MIME parsed back, the attachment
decoded, the Factur-X XML found in the PDF and read) runs over all of them ``--repeat`` times,
and the CPU time per message is printed for each of ``--rounds`` rounds, with the median. It
also prints the two halves: ``parse_message`` alone and ``read_xml_facts`` alone (on the PDFs
decoded once). Each figure is ``time.process_time`` over the loop; nothing else runs in it.

``--against TREE``: the same three functions of another worktree (e.g. the baseline commit)
are loaded in the same process beside this tree's, and the two run alternately, a pass over
the messages each in turn, ``--rounds`` times: on a loaded machine separate runs drift more
than the difference measured, alternating passes in one process do not.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from sealbill.domain import guard  # noqa: E402
from sealbill.mail.dkim import DkimKey, DkimSigner, generate_key  # noqa: E402
from sealbill.mail.readback import parse_message  # noqa: E402
from sealbill.pipeline.delivery import compose  # noqa: E402
from sealbill.pipeline.delivery.examine import examine, read_xml_facts  # noqa: E402
from sealbill.store.db import create_engine  # noqa: E402
from sealbill.store.delivery import outbox as box  # noqa: E402


def messages(cache: Path, count: int) -> list[bytes]:
    """The signed bytes of the first ``count`` outbox rows of the cached cycle."""
    meta = json.loads((cache / "scenario.json").read_text())
    org_id, run_id = int(meta["org_id"]), int(meta["run_id"])
    key = DkimKey("bench", "acme-cloud.example", generate_key(cache / "readback-dkim.pem"))
    signer = DkimSigner(key)
    engine = create_engine(f"sqlite:///{cache / 'planned.sqlite'}")
    with engine.connect() as conn:
        items = box.page(conn, org_id, run_id, statuses=["queued"], after=0, limit=count)
        out = [compose.compose(conn, org_id, item, signer).outgoing.data for item in items]
    engine.dispose()
    return out


def cpu_per_item(work: Callable[[bytes], object], data: list[bytes], repeat: int) -> float:
    """CPU milliseconds per call of ``work`` over ``data``, ``repeat`` times."""
    start = time.process_time()
    for _ in range(repeat):
        for item in data:
            work(item)
    return (time.process_time() - start) * 1000 / (repeat * len(data))


def tree_functions(src: Path) -> dict[str, Callable[..., object]]:
    """``examine``, ``parse_message`` and ``read_xml_facts`` of the sealbill package in
    ``src``, imported apart from (and without disturbing) the one already loaded."""
    saved = {name: mod for name, mod in sys.modules.items() if name.split(".")[0] == "sealbill"}
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, str(src))
    try:
        examine_mod = importlib.import_module("sealbill.pipeline.delivery.examine")
        readback = importlib.import_module("sealbill.mail.readback")
        guard_mod = importlib.import_module("sealbill.domain.guard")
        return {"examine": lambda m: examine_mod.examine(guard_mod.Outgoing(m, ("c@d.example",))),
                "parse_message": readback.parse_message,
                "read_xml_facts": examine_mod.read_xml_facts}
    finally:
        sys.path.remove(str(src))
        for name in [n for n in sys.modules if n.split(".")[0] == "sealbill"]:
            del sys.modules[name]
        sys.modules.update(saved)


def alternate(other: Path, data: list[bytes], pdfs: list[bytes], rounds: int) -> None:
    """This tree's functions and ``other``'s, a pass each in turn, CPU ms per message."""
    theirs = tree_functions(other / "src")
    ours: dict[str, Callable[..., object]] = {
        "examine": lambda m: examine(guard.Outgoing(m, ("c@d.example",))),
        "parse_message": parse_message, "read_xml_facts": read_xml_facts}
    totals = {(who, name): 0.0 for who in ("other", "this") for name in ours}
    for _ in range(rounds):
        for name in ours:
            inputs = pdfs if name == "read_xml_facts" else data
            for who, funcs in (("other", theirs), ("this", ours)):
                totals[who, name] += cpu_per_item(funcs[name], inputs, 1)
    for name in ours:
        before, after = totals["other", name] / rounds, totals["this", name] / rounds
        print(f"{name}: {other} {before:.3f} ms, this tree {after:.3f} ms "
              f"({(after - before) / before:+.0%})")


def main(cache: Path, count: int, repeat: int, rounds: int) -> None:
    data = messages(cache, count)
    pdfs = [next(p.payload for p in parse_message(m).parts
                 if p.content_type == "application/pdf") for m in data]
    sizes = sum(len(m) for m in data) / len(data)
    print(f"{len(data)} messages, {sizes / 1000:.0f} kB on average")

    def whole(message: bytes) -> object:
        examined = examine(guard.Outgoing(message, ("c@d.example",)))
        if examined.error or examined.xml.error or examined.parsed is None \
                or examined.parsed.defects:
            raise SystemExit(f"refused a real message: {examined.error or examined.xml.error}"
                             f" {examined.parsed and examined.parsed.defects}")
        return examined

    figures: dict[str, list[float]] = {"examine": [], "parse_message": [], "read_xml_facts": []}
    for r in range(1, rounds + 1):
        row = {"examine": cpu_per_item(whole, data, repeat),
               "parse_message": cpu_per_item(parse_message, data, repeat),
               "read_xml_facts": cpu_per_item(read_xml_facts, pdfs, repeat)}
        for name, value in row.items():
            figures[name].append(value)
        print(f"round {r}: " + ", ".join(f"{k} {v:.3f} ms" for k, v in row.items()))
    print("median: " + ", ".join(f"{k} {statistics.median(v):.3f} ms"
                                 for k, v in figures.items()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--against", type=Path, default=None)
    args = parser.parse_args()
    if args.against is None:
        main(args.cache, args.messages, args.repeat, args.rounds)
    else:
        found = messages(args.cache, args.messages)
        alternate(args.against, found, [next(
            p.payload for p in parse_message(m).parts if p.content_type == "application/pdf")
            for m in found], args.rounds)
