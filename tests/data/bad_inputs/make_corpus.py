"""Writes the bad-input corpus (the files beside this script and cases.json).

Run it after changing a case: ``python tests/data/bad_inputs/make_corpus.py``. The files are
checked in; only the inputs too big for a repository (10 MB values, 100,000-deep JSON) are
made by the test itself from the ``generate`` entries of cases.json.

Each case: the command (``args``, with ``{file}`` for the corpus file), and the texts the error
must contain (the record and the field). Accounts A0001..A0003 (and A0004, archived) and
metrics ``api_calls`` (sum), ``users`` (count), ``gb_hours`` (sum, 0 to 1000, 2 decimal places)
and ``seats`` (max, integers 1 to 500) exist; incident 1 is open (aware an hour ago), incident
2 closed.
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path

HERE = Path(__file__).parent
HEADER = "reference,name,address_line1,postcode,city,country,is_business,vat_id,payment_display"
GOOD = "N0001,Nouveau SARL,1 rue Neuve,75011,Paris,FR,yes,,Visa •••• 4242"
USAGE = {"event_id": "u1", "account_reference": "A0001", "metric_code": "api_calls",
         "timestamp": "2026-10-01T10:00:00+02:00", "value": "3"}
USAGE_CSV = "event_id,account_reference,metric_code,timestamp,value"

cases: list[dict[str, object]] = []


def _csv_row(**changes: str) -> str:
    cells = dict(zip(HEADER.split(","), GOOD.split(","), strict=True))
    cells.update(changes)
    return ",".join(cells.values())


def account(name: str, data: bytes | str, *expect: str) -> None:
    path = HERE / "accounts" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    cases.append({"id": f"accounts/{name}", "args": ["import", "accounts", "{file}"],
                  "file": f"accounts/{name}", "expect": list(expect)})


def account_csv(file: str, *expect: str, **changes: str) -> None:
    account(file, f"{HEADER}\n{_csv_row(**changes)}\n", *expect)


def account_json(name: str, record: object, *expect: str) -> None:
    account(name, json.dumps(record, ensure_ascii=False), *expect)


def usage(name: str, data: bytes | str, *expect: str) -> None:
    path = HERE / "usage" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    cases.append({"id": f"usage/{name}", "args": ["import", "usage", "{file}"],
                  "file": f"usage/{name}", "expect": list(expect)})


def usage_line(file: str, *expect: str, drop: str = "", **changes: object) -> None:
    row = {**USAGE, **changes}
    row.pop(drop, None)
    usage(file, json.dumps(row, ensure_ascii=False) + "\n", *expect)


def argument(name: str, args: list[str], *expect: str) -> None:
    cases.append({"id": f"args/{name}", "args": args, "expect": list(expect)})


def record(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {"reference": "N0001", "name": "Nouveau SARL",
                               "address_line1": "1 rue Neuve", "postcode": "75011",
                               "city": "Paris", "country": "FR", "is_business": True}
    base.update(changes)
    return base


# --- accounts, CSV: encodings and shapes
LATIN = _csv_row(name="Müller GmbH", payment_display="Visa 4242")
account("latin1.csv", f"{HEADER}\n{LATIN}\n".encode("latin-1"), "line 2", "not UTF-8")
account("utf16_no_bom.csv", f"{HEADER}\n{GOOD}\n".encode("utf-16-le"), "line 1", "NUL")
account("utf16_bom_country_zz.csv",
        codecs.BOM_UTF16_LE + f"{HEADER}\n{_csv_row(country='ZZ')}\n".encode("utf-16-le"),
        "line 2", "'country'")
account("utf32.csv", f"{HEADER}\n{GOOD}\n".encode("utf-32"), "UTF-32")
account("extra_cells.csv", f"{HEADER}\n{GOOD},surplus\n", "line 2", "cells")
account("header_typo.csv", f"{HEADER.replace('address_line1', 'adress_line1')}\n{GOOD}\n",
        "line 1", "adress_line1")
account("missing_city_column.csv", f"{HEADER.replace(',city', '')}\n"
        f"{GOOD.replace(',Paris', '')}\n", "line 1", "'city'")
account("duplicate_column.csv", f"{HEADER},name\n{GOOD},Autre\n", "line 1", "'name'")
account("empty.csv", "", "empty file")
account("unterminated_quote.csv", f'{HEADER}\nN0001,"Nouveau SARL,1 rue,75011,Paris,FR,,,\n',
        "line", "CSV")
account("nul_byte.csv", f"{HEADER}\n{_csv_row(name='Nou' + chr(0) + 'veau')}\n", "line 2",
        "NUL")
account("wrong_extension.txt", f"{HEADER}\n{GOOD}\n", "unknown file type")
# --- accounts, CSV: values
account_csv("country_zz.csv", "line 2", "'country'", country="ZZ")
account_csv("country_three_letters.csv", "line 2", "'country'", country="FRA")
account_csv("is_business_maybe.csv", "line 2", "'is_business'", is_business="maybe")
account_csv("pan_spaces_in_name.csv", "line 2", "'name'", name="Carte 4111 1111 1111 1111")
account_csv("pan_dashes_in_address.csv", "line 2", "'address_line1'",
            address_line1="4111-1111-1111-1111 rue")
account_csv("pan_dots_in_city.csv", "line 2", "'city'", city="Paris 4111.1111.1111.1111")
account_csv("pan_in_reference.csv", "line 2", "'reference'", reference="4111111111111111")
account_csv("iban_in_payment_display.csv", "line 2", "'payment_display'",
            payment_display="FR76 3000 6000 0112 3456 7890 189")
account_csv("iban_dashes_in_name.csv", "line 2", "'name'",
            name="DE89-3704-0044-0532-0130-00")
account_csv("amex_pan_in_payment_display.csv", "line 2", "'payment_display'",
            payment_display="Amex 3782 822463 10005")
account_csv("payment_display_not_masked.csv", "line 2", "'payment_display'",
            payment_display="Visa 4111 1111 1111 1112")
account_csv("control_char_in_name.csv", "line 2", "'name'", name="Nouveau\x07SARL")
account_csv("escape_in_city.csv", "line 2", "'city'", city="Paris\x1b[31m")
account_csv("bidi_override_in_name.csv", "line 2", "'name'", name="Nouveau \u202eLRAS")
account_csv("bidi_isolate_in_city.csv", "line 2", "'city'", city="\u2066Paris\u2069")
account_csv("zero_width_in_name.csv", "line 2", "'name'", name="Nou\u200bveau")
account_csv("bom_inside_address.csv", "line 2", "'address_line1'", address_line1="1\ufeffrue")
account_csv("name_201_chars.csv", "line 2", "'name'", name="N" * 201)
account_csv("postcode_21_chars.csv", "line 2", "'postcode'", postcode="7" * 21)
account_csv("empty_name.csv", "line 2", "'name'", name="")
account_csv("vat_id_invalid.csv", "line 2", "'vat_id'", vat_id="FR00123")
account_csv("vat_id_formula.csv", "line 2", "'vat_id'", vat_id="=SUM(A1:A9)")
account_csv("country_formula.csv", "line 2", "'country'", country="=1+1")
account_csv("is_business_html.csv", "line 2", "'is_business'", is_business="<b>yes</b>")
account("duplicate_reference.csv", f"{HEADER}\n{GOOD}\n{GOOD}\n", "line 3", "'reference'")
account("existing_reference.csv", f"{HEADER}\n{_csv_row(reference='A0001')}\n", "line 2",
        "'reference'")
account("bad_billing_email.csv", f"{HEADER},billing_emails\n{GOOD},<script>@x\n", "line 2",
        "contacts[0].email")
# --- accounts, JSON
account("malformed.json", '[{"reference": "N0001",}]', "line 1", "not valid JSON")
account("object_not_list.json", json.dumps(record()), "expected a JSON list")
account_json("record_is_text.json", ["N0001"], "record 0", "expected an object")
account_json("unknown_key.json", [record(adress="1 rue")], "record 0", "'adress'")
account_json("postcode_number.json", [record(postcode=75011)], "record 0", "'postcode'")
account_json("postcode_float.json", [record(postcode=75011.5)], "record 0", "'postcode'")
account_json("is_business_maybe.json", [record(is_business="maybe")], "record 0",
             "'is_business'")
account_json("is_business_float.json", [record(is_business=1.5)], "record 0", "'is_business'")
account_json("internal_test_text.json", [record(internal_test="perhaps")], "record 0",
             "'internal_test'")
account_json("contacts_not_list.json", [record(contacts="a@b.example")], "record 0",
             "'contacts'")
account_json("contact_role_owner.json", [record(contacts=[{"email": "a@b.example",
                                                            "role": "owner"}])],
             "record 0", "contacts[0].role")
account_json("contact_unknown_key.json", [record(contacts=[{"email": "a@b.example",
                                                             "phone": "1"}])],
             "record 0", "contacts[0].phone")
account_json("contact_pan_in_name.json", [record(contacts=[
    {"email": "a@b.example", "name": "5555 5555 5555 4444"}])], "record 0", "contacts[0].name")
account_json("too_many_contacts.json", [record(contacts=[
    {"email": f"c{i}@b.example"} for i in range(21)])], "record 0", "'contacts'")
account_json("iban_lowercase_in_name.json", [record(name="iban fr7630006000011234567890189")],
             "record 0", "'name'")
account_json("second_record_bad.json", [record(), record(reference="N0002", country="XX")],
             "record 1", "'country'")
account("latin1.json", json.dumps([record(name="Müller")], ensure_ascii=False)
        .encode("latin-1"), "not UTF-8")
cases.append({"id": "accounts/ten_mb_name.json", "args": ["import", "accounts", "{file}"],
              "generate": "ten_mb_name.json", "expect": ["record 0", "'name'"]})
cases.append({"id": "accounts/deep.json", "args": ["import", "accounts", "{file}"],
              "generate": "deep.json", "expect": ["nested too deeply"]})
# --- usage, JSONL
usage_line("negative_value.jsonl", "line 1", "value", value="-5")
usage_line("value_1e400.jsonl", "line 1", "value", value="1e400")
usage_line("value_38_digits.jsonl", "line 1", "value", value="9" * 38)
usage_line("value_16_integer_digits_number.jsonl", "line 1", "value", value=10 ** 15)
usage_line("value_missing.jsonl", "line 1", "value", drop="value")
usage_line("value_empty_text.jsonl", "line 1", "value", value="")
usage_line("value_13_decimals.jsonl", "line 1", "value", value="0.0000000000001")
usage_line("value_nan.jsonl", "line 1", "value", value="NaN")
usage_line("value_infinity.jsonl", "line 1", "value", value="Infinity")
usage_line("value_true.jsonl", "line 1", "value", value=True)
usage_line("value_comma_decimal.jsonl", "line 1", "value", value="1,5")
usage_line("unknown_field.jsonl", "line 1", "colour", colour="red")
usage_line("naive_timestamp.jsonl", "line 1", "timestamp", timestamp="2026-10-01T10:00:00")
usage_line("event_id_control.jsonl", "line 1", "event_id", event_id="e\x001")
usage_line("event_id_bidi.jsonl", "line 1", "event_id", event_id="e\u202e1")
usage_line("event_id_129_chars.jsonl", "line 1", "event_id", event_id="e" * 129)
usage_line("unknown_account.jsonl", "line 1", "account_reference", account_reference="NOPE")
usage_line("unknown_metric.jsonl", "line 1", "metric_code", metric_code="nope")
usage_line("archived_account.jsonl", "line 1", "account_reference", "'A0004' is archived",
           account_reference="A0004")
usage_line("property_zero_width.jsonl", "line 1", "properties.region",
           properties={"region": "eu\u200b"})
usage_line("33_properties.jsonl", "line 1", "properties",
           properties={f"p{i}": "x" for i in range(33)})
usage("malformed_line.jsonl", json.dumps(USAGE) + '\n{"event_id": "u2",\n', "line 2",
      "not JSON")
usage("array_line.jsonl", "[1, 2]\n", "line 1", "not an object")
usage("latin1.jsonl", json.dumps({**USAGE, "event_id": "é"}, ensure_ascii=False)
      .encode("latin-1") + b"\n", "line 1", "not UTF-8")
usage("utf16_bom_negative.jsonl", codecs.BOM_UTF16_LE + (json.dumps(
    {**USAGE, "value": "-1"}) + "\n").encode("utf-16-le"), "line 1", "value")
usage("wrong_extension.txt", json.dumps(USAGE) + "\n", "unknown file type")
cases.append({"id": "usage/ten_mb_event_id.jsonl", "args": ["import", "usage", "{file}"],
              "generate": "ten_mb_event_id.jsonl", "expect": ["line 1", "event_id"]})
cases.append({"id": "usage/deep_line.jsonl", "args": ["import", "usage", "{file}"],
              "generate": "deep_line.jsonl", "expect": ["line 1", "not JSON"]})
# --- usage, CSV
usage("header_typo.csv", f"{USAGE_CSV.replace('event_id', 'evnt_id')}\n"
      "u1,A0001,api_calls,2026-10-01T10:00:00Z,3\n", "line 1", "evnt_id")
usage("extra_cells.csv", f"{USAGE_CSV}\nu1,A0001,api_calls,2026-10-01T10:00:00Z,3,4\n",
      "line 2", "cells beyond the header")
usage("missing_timestamp_column.csv", "event_id,account_reference,metric_code,value\n"
      "u1,A0001,api_calls,3\n", "line 1", "'timestamp'")
usage("negative.csv", f"{USAGE_CSV}\nu1,A0001,api_calls,2026-10-01T10:00:00Z,-5\n",
      "line 2", "value")
usage("empty_value_sum.csv", f"{USAGE_CSV}\nu1,A0001,api_calls,2026-10-01T10:00:00Z,\n",
      "line 2", "value")
usage("archived_account.csv", f"{USAGE_CSV}\nu1,A0001,api_calls,2026-10-01T10:00:00Z,3\n"
      "u2,A0004,api_calls,2026-10-01T10:00:00Z,3\n", "line 3", "account_reference",
      "'A0004' is archived")
usage("formula_event_id.csv", f"{USAGE_CSV}\n\"=HYPERLINK(\"\"x\"\")\x07\",A0001,api_calls,"
      "2026-10-01T10:00:00Z,1\n", "line 2", "event_id")
# --- usage against a metric's declared range and precision
usage_line("above_metric_max.jsonl", "line 1", "value", "maximum 1000", metric_code="gb_hours",
           value="1000.01")
usage_line("above_metric_max_number.jsonl", "line 1", "value", "maximum 1000",
           metric_code="gb_hours", value=1001)
usage_line("too_many_places_for_metric.jsonl", "line 1", "value", "2 decimal places",
           metric_code="gb_hours", value="1.234")
usage_line("fraction_for_integer_metric.jsonl", "line 1", "value", "integer",
           metric_code="seats", value="2.5")
usage_line("below_metric_min.jsonl", "line 1", "value", "minimum 1", metric_code="seats",
           value=0)
usage("fraction_for_integer_metric.csv", f"{USAGE_CSV}\nu1,A0001,seats,2026-10-01T10:00:00Z,"
      "3\nu2,A0001,seats,2026-10-01T11:00:00Z,1.5\n", "line 3", "value", "integer")
argument("usage_record_above_metric_max", [
    "usage", "record", "--org", "acme", "--event-id", "r1", "--account", "A0001",
    "--metric", "gb_hours", "--timestamp", "2026-10-01T10:00:00Z", "--value", "5000"],
    "r1", "value", "maximum 1000")
argument("usage_record_fraction_for_integer_metric", [
    "usage", "record", "--org", "acme", "--event-id", "r2", "--account", "A0001",
    "--metric", "seats", "--timestamp", "2026-10-01T10:00:00Z", "--value", "1.5"],
    "r2", "value", "integer")
argument("metric_min_above_max", ["metrics", "create", "disk", "--org", "acme", "--name",
                                  "Disk", "--aggregation", "max", "--min", "10", "--max", "5"],
         "metric", "min_value 10 is above max_value 5")
argument("metric_decimal_places_13", ["metrics", "create", "disk", "--org", "acme", "--name",
                                      "Disk", "--aggregation", "max", "--decimal-places", "13"],
         "decimal_places", "12")
(HERE / "catalog").mkdir(exist_ok=True)
(HERE / "catalog" / "negative_min.yaml").write_text(
    "metrics:\n  - code: disk\n    name: Disk\n    aggregation: max\n    min_value: '-1'\n")
(HERE / "catalog" / "max_1e400.yaml").write_text(
    "metrics:\n  - code: disk\n    name: Disk\n    aggregation: max\n    max_value: 1e400\n")
argument("catalog_negative_min_without_allows_negative", [
    "apply", "-f", "{corpus}/catalog/negative_min.yaml", "--org", "acme"],
    "metrics.0", "allows_negative")
argument("catalog_max_1e400", ["apply", "-f", "{corpus}/catalog/max_1e400.yaml", "--org",
                               "acme"], "metrics.0.max_value", "15 digits")
# --- organization file (sealbill init --organization)
(HERE / "organization").mkdir(exist_ok=True)
(HERE / "organization" / "latin1.json").write_bytes(
    json.dumps({"slug": "neu", "legal_name": "Müller"}, ensure_ascii=False).encode("latin-1"))
(HERE / "organization" / "list.json").write_text("[]\n")
argument("organization_latin1", ["init", "--organization",
                                 "{corpus}/organization/latin1.json"], "line 1", "not UTF-8")
argument("organization_not_an_object", ["init", "--organization",
                                        "{corpus}/organization/list.json"], "list.json",
         "expected a JSON object")
# --- command arguments
argument("void_reason_bidi", ["void", "F-000001", "--org", "acme", "--reason",
                              "erreur \u202eetrauqes"], "--reason")
argument("credit_note_reason_pan", ["credit-note", "F-000001", "--org", "acme",
                                    "--reason=card 4111 1111 1111 1111"], "--reason")
argument("org_zero_width", ["invoices", "list", "--org", "ac\u200bme"], "--org")
argument("incident_title_escape", ["incident", "open", "--org", "acme", "--title",
                                   "leak\x1b[2J", "--aware-at", "2026-10-01T10:00:00+00:00"],
         "--title")
argument("incident_aware_in_future", ["incident", "open", "--org", "acme", "--title", "x",
                                      "--aware-at", "2999-01-01T00:00:00+00:00"], "--aware-at",
         "future")
argument("incident_notified_before_aware", ["incident", "update", "1", "--org", "acme",
                                            "--notified-at", "2000-01-01T00:00:00+00:00"],
         "--notified-at", "before")
argument("incident_breach_end_before_start", [
    "incident", "update", "1", "--org", "acme", "--breach-start", "2026-10-02T00:00:00+00:00",
    "--breach-end", "2026-10-01T00:00:00+00:00"], "--breach-end")
argument("incident_update_after_close", ["incident", "update", "2", "--org", "acme",
                                         "--cause", "found later"], "incident 2", "closed")
argument("incident_close_twice", ["incident", "close", "2", "--org", "acme", "--reason", "again"],
         "incident 2", "closed")
argument("link_base_javascript", ["contacts", "verify", "billing1@client1.example",
                                  "--account", "A0001", "--org", "acme",
                                  "--link-base", "javascript:alert(1)"], "--link-base")
argument("link_base_plain_http", ["contacts", "verify", "billing1@client1.example",
                                  "--account", "A0001", "--org", "acme",
                                  "--link-base", "http://verify.example/"], "--link-base")
argument("drafts_out_is_a_file", ["incident", "drafts", "1", "--org", "acme", "--no-pdf",
                                  "--out", "{existing_file}"], "not a folder")
argument("rejects_is_a_folder", ["import", "usage", "{corpus}/usage/negative.csv",
                                 "--org", "acme", "--rejects", "{folder}"], "--rejects",
         "folder")
argument("period_13", ["run", "bill", "--org", "acme", "--period", "2026-13"], "period")

(HERE / "cases.json").write_text(json.dumps(cases, indent=1, ensure_ascii=True) + "\n")
print(len(cases), "cases")
