#!/usr/bin/env bash
# Static checks of the deployment artefacts (no Docker engine needed, none is used):
#   docker-compose.yml            docker-compose (v1) config -q
#   deploy/prometheus/*.yml       promtool check rules / check config
#   deploy/grafana/**/*.json      python3 -m json.tool; every dashboard query parsed by promtool
#   deploy/grafana/**/*.yml       parsed as YAML
#   deploy/tusk.example.toml      parsed with tomllib; its keys (set or commented out) are
#                                 exactly the TOML keys of docs/configuration.md
# Installs docker-compose (Debian) and promtool (Debian `prometheus`) if missing. Runs from any
# working directory. See docs/operations.md.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf -- '-- %s\n' "$*"; }

missing=()
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

say "docker-compose.yml: docker-compose config -q ($(docker-compose version --short))"
docker-compose -f docker-compose.yml config -q
say "docker-compose.yml: services: $(docker-compose -f docker-compose.yml config --services | tr '\n' ' ')"

say "deploy/prometheus/alerts.yml: promtool check rules"
promtool check rules deploy/prometheus/alerts.yml
say "deploy/prometheus/prometheus.yml: promtool check config"
promtool check config deploy/prometheus/prometheus.yml

shopt -s globstar nullglob
json_files=(deploy/grafana/**/*.json)
((${#json_files[@]})) || { echo "no JSON files under deploy/grafana" >&2; exit 1; }
for f in "${json_files[@]}"; do
    say "$f: python3 -m json.tool"
    python3 -m json.tool "$f" >/dev/null
done

# Every PromQL query of the dashboards, with Grafana's variables filled in, as recording rules:
# promtool then parses each one.
python3 - "$tmp/dashboard-queries.yml" "${json_files[@]}" <<'PY'
import json, sys
out, files = sys.argv[1], sys.argv[2:]
rules = []
def walk(panels):
    for p in panels:
        walk(p.get("panels", []))
        for t in p.get("targets", []):
            if "expr" in t:
                expr = (t["expr"].replace("$__rate_interval", "5m").replace("$__interval", "1m")
                        .replace('"$job"', '".*"').replace('"$instance"', '".*"'))
                rules.append({"record": "dashboard:query:%d" % len(rules), "expr": expr})
for f in files:
    d = json.load(open(f))
    if "panels" in d:
        walk(d["panels"])
with open(out, "w") as fh:
    json.dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}, fh)  # JSON is YAML
print("-- %d dashboard queries collected" % len(rules))
PY
say "dashboard queries: promtool check rules"
promtool check rules "$tmp/dashboard-queries.yml"

yaml_files=(deploy/grafana/**/*.yml deploy/grafana/**/*.yaml)
if python3 -c 'import yaml' 2>/dev/null; then
    for f in "${yaml_files[@]}"; do
        say "$f: YAML parse"
        python3 -c 'import sys, yaml; yaml.safe_load(open(sys.argv[1]))' "$f"
    done
else
    say "python3-yaml not available: Grafana provisioning YAML not parsed"
fi

say "deploy/tusk.example.toml: tomllib parse, keys against docs/configuration.md"
python3 - deploy/tusk.example.toml docs/configuration.md <<'PY'
import re, sys, tomllib
toml_path, doc_path = sys.argv[1], sys.argv[2]
with open(toml_path, "rb") as fh:
    active = set(tomllib.load(fh))
text = open(toml_path).read()
commented = set(re.findall(r"^# ([a-z][a-z0-9_]*) = ", text, re.M))
documented = set()
for line in open(doc_path):
    m = re.match(r"^\| (`[a-z0-9_]+`(?: / `[a-z0-9_]+`)*) \|", line)
    if m:
        documented.update(re.findall(r"`([a-z0-9_]+)`", m.group(1)))
documented.discard("config")  # not a TOML key
errors = []
if not documented:
    errors.append("found no settings table in " + doc_path)
for k in sorted(active - documented):
    errors.append("key %s is not a setting of %s" % (k, doc_path))
for k in sorted(commented - documented):
    errors.append("commented-out key %s is not a setting of %s" % (k, doc_path))
for k in sorted(documented - active - commented):
    errors.append("setting %s is missing from %s" % (k, toml_path))
for k in sorted(active & commented):
    errors.append("key %s is both set and commented out" % k)
if errors:
    sys.exit("\n".join(errors))
print("-- %d keys set, %d commented out, %d documented: all match"
      % (len(active), len(commented), len(documented)))
PY

say "deployment artefacts OK"
