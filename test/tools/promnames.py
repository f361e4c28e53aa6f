#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""promnames.py: do the dashboard and the rules name only real metrics?

  promnames.py names EXPR...        the metric names each PromQL EXPR uses
  promnames.py check SCRAPE DASHBOARD.json RULES.yml [--emit-rules OUT]

check reads a scrape of the relay's /metrics (Prometheus text format),
collects every PromQL expression of a Grafana dashboard (panel targets
and query variables) and of a Prometheus rules file, and prints one JSON
line per expression with the metric names it uses and those the scrape
does not have; exit 1 when any is missing or an expression uses an
unknown function.  --emit-rules writes the dashboard's expressions as
recording rules (Grafana's variables replaced by plain values) so that
promtool check rules parses each one.

A small reader, not a PromQL parser: strings, label matchers, ranges and
grouping clauses are removed, then every identifier not followed by "("
and not a keyword is a metric name.
"""
import json
import re
import sys

import yaml

FUNCTIONS = {
    "abs", "absent", "absent_over_time", "avg", "avg_over_time", "bottomk",
    "ceil", "changes", "clamp", "clamp_max", "clamp_min", "count",
    "count_over_time", "count_values", "day_of_month", "day_of_week",
    "deriv", "exp", "floor", "group", "histogram_quantile", "holt_winters",
    "hour", "idelta", "increase", "irate", "label_join", "label_replace",
    "last_over_time", "ln", "log10", "log2", "max", "max_over_time", "min",
    "min_over_time", "minute", "month", "predict_linear", "present_over_time",
    "quantile", "quantile_over_time", "rate", "resets", "round", "scalar",
    "sgn", "sort", "sort_desc", "sqrt", "stddev", "stddev_over_time",
    "stdvar", "stdvar_over_time", "sum", "sum_over_time", "time",
    "timestamp", "topk", "vector", "year",
    # Grafana's query-variable helpers
    "label_values", "metrics", "query_result", "label_names",
}
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring",
            "group_left", "group_right", "bool", "offset", "inf", "nan"}
IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def names(expr):
    """(metric names, unknown functions) of one expression."""
    e = re.sub(r'"(\\.|[^"\\])*"|\'(\\.|[^\'\\])*\'', " ", expr)
    # Grafana: label_values(METRIC, LABEL): only METRIC is a name
    e = re.sub(r"label_values\s*\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,"
               r"[^)]*\)", r"label_values(\1)", e)
    e = re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", " ", e)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*"
               r"\([^)]*\)", " ", e)
    e = re.sub(r"\b\d+(\.\d+)?([eE][+-]?\d+)?[smhdwy]?\b", " ", e)
    found, unknown = set(), set()
    for m in IDENT.finditer(e):
        word = m.group(0)
        rest = e[m.end():].lstrip()
        if rest.startswith("("):
            if word not in FUNCTIONS:
                unknown.add(word)
        elif word.lower() not in KEYWORDS:
            found.add(word)
    return found, unknown


def scraped(path):
    """Sample names of a text-format scrape."""
    have = set()
    with open(path) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            have.add(re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0))
    return have


def dashboard_exprs(path):
    with open(path) as f:
        d = json.load(f)
    out = []

    def panels(ps):
        for p in ps:
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append(("panel '%s'" % p.get("title"), t["expr"]))
            panels(p.get("panels", []))
    panels(d.get("panels", []))
    for v in d.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            out.append(("variable '%s'" % v["name"], q))
    return out


def rules_exprs(path):
    with open(path) as f:
        r = yaml.safe_load(f)
    return [("rule '%s'" % (x.get("alert") or x.get("record")), x["expr"])
            for g in r["groups"] for x in g["rules"]]


def grafana_free(expr):
    """The expression with Grafana's variables as plain values."""
    e = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
    e = e.replace("$__range", "1h")
    return re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", ".*", e)


def check(argv):
    scrape, dash, rules = argv[:3]
    have = scraped(scrape)
    bad = 0
    exprs = dashboard_exprs(dash) + rules_exprs(rules)
    for where, expr in exprs:
        used, unknown = names(expr)
        missing = sorted(used - have)
        print(json.dumps({"where": where, "names": sorted(used),
                          "missing": missing,
                          "unknown_functions": sorted(unknown)}))
        if missing or unknown or not used:
            bad += 1
    if "--emit-rules" in argv:
        out = argv[argv.index("--emit-rules") + 1]
        rec = [{"record": "dashboard:expr_%d" % i,
                "expr": grafana_free(e)}
               for i, (w, e) in enumerate(dashboard_exprs(dash))
               if not w.startswith("variable")]
        with open(out, "w") as f:
            yaml.safe_dump({"groups": [{"name": "dashboard",
                                        "rules": rec}]}, f)
    return 1 if bad else 0


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "names":
        for expr in sys.argv[2:]:
            used, unknown = names(expr)
            print(json.dumps({"names": sorted(used),
                              "unknown_functions": sorted(unknown)}))
        return 0
    if len(sys.argv) >= 5 and sys.argv[1] == "check":
        return check(sys.argv[2:])
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main())
