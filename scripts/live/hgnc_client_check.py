#!/usr/bin/env python3
"""HGNC's REST API served by gene-api, checked with a real client from PyPI
that we did not write: bioservices' HGNC class (bioservices 1.16.0),
unmodified. Its base URL is fixed (http://rest.genenames.org), so it reaches
gene-api as its HTTP proxy (HTTP_PROXY), which is how such a client is
pointed at gene-api. Every answer is compared with the fixture the service
loaded (data/hgnc_sample.json), not with numbers written here.

Usage: hgnc_client_check.py --base http://127.0.0.1:PORT --sample data/hgnc_sample.json
"""

import argparse
import fnmatch
import json
import os
import sys
import urllib.request
import xml.etree.ElementTree as ET


def fail(msg):
    print(f"!!! hgnc client check: {msg}", file=sys.stderr)
    sys.exit(1)


def ok(msg):
    print(f"    ok: {msg}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--sample", required=True)
    args = ap.parse_args()
    with open(args.sample) as f:
        fixture = json.load(f)["response"]["docs"]
    by_symbol = {d["symbol"]: d for d in fixture}

    # The client talks to "rest.genenames.org"; the proxy setting sends it here.
    os.environ["HTTP_PROXY"] = args.base
    os.environ["http_proxy"] = args.base
    os.environ.pop("NO_PROXY", None)
    os.environ.pop("no_proxy", None)
    from bioservices import HGNC  # noqa: E402 (after the proxy is set)

    h = HGNC(verbose=False)  # asks /info on construction
    with urllib.request.urlopen(urllib.request.Request(
            f"{args.base}/hgnc/info", headers={"Accept": "application/json"})) as r:
        ours = json.load(r)
    if h.searchable_fields != ours["searchableFields"] or not h.searchable_fields:
        fail(f"searchable fields through the proxy {h.searchable_fields} != /hgnc/info's")
    info = h.get_info()
    if info["numDoc"] != len(fixture):
        fail(f"info numDoc {info['numDoc']} != {len(fixture)} records in the fixture")
    ok(f"HGNC() through the proxy: info says {info['numDoc']} records, "
       f"{len(h.searchable_fields)} searchable fields")

    # fetch: whole records, equal to the fixture's; and nothing for a symbol
    # the fixture lacks.
    n = len(fixture)
    checked = [fixture[i]["symbol"] for i in (0, n // 3, 2 * n // 3, n - 1)]
    for symbol in checked + ["NOT-A-SYMBOL-1"]:
        want = by_symbol.get(symbol)
        res = h.fetch("symbol", symbol)
        if not isinstance(res, dict):
            fail(f"fetch symbol {symbol}: {res!r}")
        docs = res["response"]["docs"]
        if want is None:
            if res["response"]["numFound"] != 0 or docs:
                fail(f"fetch symbol {symbol}: not in the fixture, found {docs}")
            continue
        if res["response"]["numFound"] != 1 or docs[0] != want:
            fail(f"fetch symbol {symbol}: {json.dumps(docs)[:300]} != the fixture's record")
    ok(f"fetch('symbol', ...) of {', '.join(checked)}: each record equals the fixture's; "
       "an unknown symbol finds none")
    some = fixture[len(fixture) // 2]
    res = h.fetch("hgnc_id", some["hgnc_id"])
    if res["response"]["docs"] != [some]:
        fail(f"fetch hgnc_id {some['hgnc_id']} != the fixture's record")
    alias = next(d["alias_symbol"][0] for d in fixture if d.get("alias_symbol"))
    want = sorted(d["hgnc_id"] for d in fixture
                  if alias.lower() in (a.lower() for a in d.get("alias_symbol", [])))
    res = h.fetch("alias_symbol", alias)
    got = sorted(d["hgnc_id"] for d in res["response"]["docs"])
    if got != want or res["response"]["numFound"] != len(want):
        fail(f"fetch alias_symbol {alias}: {got} != {want}")
    ok(f"fetch by hgnc_id ({some['hgnc_id']}) and by alias ({alias}: {len(want)} record(s)) match the fixture")

    # search: the matches the fixture has, by the client's own query forms.
    def count(pred):
        return sum(1 for d in fixture if pred(d))

    cases = [
        (("symbol", "ZNF*"), count(lambda d: fnmatch.fnmatchcase(d["symbol"].lower(), "znf*"))),
        (("symbol", "ZNF*+AND+status:Approved"),
         count(lambda d: d["symbol"].lower().startswith("znf") and d["status"] == "Approved")),
        (("symbol", 'ZNF*+NOT+locus_type:"gene+with+protein+product"'),
         count(lambda d: d["symbol"].lower().startswith("znf")
               and d.get("locus_type") != "gene with protein product")),
        (("symbol", "ZNF*+NOT+status:Approved"),
         count(lambda d: d["symbol"].lower().startswith("znf") and d["status"] != "Approved")),
        (("locus_group", '"protein-coding+gene"'),
         count(lambda d: d.get("locus_group") == "protein-coding gene")),
    ]
    for (field, query), want in cases:
        res = h.search(field, query)
        if not isinstance(res, dict):
            fail(f"search {field} {query}: {res!r}")
        found = res["response"]["numFound"]
        docs = res["response"]["docs"]
        if found != want or len(docs) != want:
            fail(f"search('{field}', '{query}'): numFound {found}, {len(docs)} docs; the fixture has {want}")
        if docs and not all({"hgnc_id", "symbol", "score"} <= d.keys() for d in docs):
            fail(f"search docs lack hgnc_id, symbol or score: {docs[:2]}")
    if not all(w for _, w in cases[:3]):
        fail("the fixture has no match for one of the first search cases: the check would prove nothing")
    ok("search('symbol', 'ZNF*' / '+AND+status:Approved' / '+NOT+locus_type:...' / '+NOT+status:...'), "
       "search('locus_group', ...): "
       + ", ".join(str(w) for _, w in cases) + " matches, as in the fixture")
    sym = fixture[0]["symbol"]
    res = h.search(sym)
    if res["response"]["docs"][0]["symbol"] != sym:
        fail(f"search('{sym}'): the best match is {res['response']['docs'][:1]}")
    ok(f"search('{sym}') (all symbol fields): {sym} first of {res['response']['numFound']}")

    # XML, as HGNC answers a client that does not ask for JSON.
    raw = h.fetch("symbol", sym, frmt="xml")
    root = ET.fromstring(raw)
    result = root.find("result")
    if root.tag != "response" or result is None or result.get("numFound") != "1":
        fail(f"fetch as XML: {raw[:300]!r}")
    got = {e.get("name"): e.text for e in result.find("doc") if e.tag == "str"}
    want = {k: v for k, v in fixture[0].items() if isinstance(v, str)}
    if got != want:
        fail(f"fetch as XML: the string fields {got} != the fixture's {want}")
    if root.find("lst[@name='responseHeader']/int[@name='status']").text != "0":
        fail("fetch as XML: no responseHeader status 0")
    ok(f"fetch('symbol', '{sym}', frmt='xml'): Solr XML whose string fields equal the fixture's")
    print("all HGNC client checks passed")


if __name__ == "__main__":
    main()
