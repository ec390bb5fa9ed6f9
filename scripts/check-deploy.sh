#!/usr/bin/env bash
# Static checks of the deployment artefacts (no Docker engine needed, none is used):
#   docker-compose.yml            docker-compose (v1) config -q
#   deploy/prometheus/*.yml       promtool check rules / check config
#   deploy/grafana/**/*.json      python3 -m json.tool; every dashboard query parsed by promtool
#   deploy/grafana/**/*.yml       parsed as YAML
#   deploy/tusk.example.toml      parsed with tomllib; its keys (set or commented out) are
#                                 exactly the TOML keys of docs/configuration.md
#   helm/tusk                     yamllint (Chart.yaml, values.yaml, ci/*.yaml; deploy/ YAML too),
#                                 values.yaml and ci/*-values.yaml against values.schema.json,
#                                 templates: actions balanced, blocks closed, YAML shape
#                                 (no helm binary: `helm lint` / `helm template` are NOT run)
#   terraform/**/*.tf             parsed with python-hcl2; checkov, no failed check
# Installs docker-compose (Debian), promtool (Debian `prometheus`) and python3-venv if missing;
# yamllint, python-hcl2 and jsonschema into .services/deploy-venv, checkov into its own
# .services/checkov-venv (it pins old dependencies). Runs from any working directory. See
# docs/operations.md.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf -- '-- %s\n' "$*"; }

missing=()
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
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

# --- Helm chart and Terraform -----------------------------------------------------------------
venv() {  # venv DIR PACKAGE...: create DIR with the packages unless it already has them
    local dir=$1; shift
    if [[ ! -x $dir/bin/python ]] || ! "$dir/bin/pip" show -q "$@" >/dev/null 2>&1; then
        local t0=$SECONDS
        say "creating $dir: $*"
        python3 -m venv "$dir"
        "$dir/bin/pip" install -q --disable-pip-version-check "$@"
        say "$dir ready in $((SECONDS - t0))s"
    fi
}
t_venv=$SECONDS
venv .services/deploy-venv yamllint python-hcl2 jsonschema
venv .services/checkov-venv checkov
say "python tools ready ($((SECONDS - t_venv))s)"
py=.services/deploy-venv/bin/python

chart=helm/tusk
say "yamllint ($chart/.yamllint): $chart/Chart.yaml $chart/values.yaml $chart/ci/*.yaml deploy/"
.services/deploy-venv/bin/yamllint --strict -c "$chart/.yamllint" \
    "$chart/Chart.yaml" "$chart/values.yaml" "$chart"/ci/*.yaml deploy/

say "$chart: values.yaml and ci/*-values.yaml against values.schema.json (draft-07)"
"$py" - "$chart" <<'PY'
import copy, glob, json, sys, yaml, jsonschema
chart = sys.argv[1]
schema = json.load(open(chart + "/values.schema.json"))
jsonschema.Draft7Validator.check_schema(schema)
validator = jsonschema.Draft7Validator(schema)
def merge(base, over):  # as helm merges -f files over values.yaml
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
defaults = yaml.safe_load(open(chart + "/values.yaml"))
files = sorted(glob.glob(chart + "/ci/*-values.yaml"))
if not files:
    sys.exit("no ci/*-values.yaml in " + chart)
errors = []
for name, values in [("values.yaml", defaults)] + [
        (f, merge(defaults, yaml.safe_load(open(f)))) for f in files]:
    found = ["%s: %s: %s" % (name, "/".join(map(str, e.path)) or "(top)", e.message)
             for e in validator.iter_errors(values)]
    errors += found
    print("-- %s: %s" % (name, "INVALID" if found else "valid"))
if errors:
    sys.exit("\n".join(errors))
PY

say "$chart/templates: actions balanced, blocks closed, YAML shape with placeholders"
"$py" - "$chart"/templates/* <<'PY'
import re, sys, yaml
ACTION = re.compile(r"\{\{(-?)(.*?)(-?)\}\}", re.S)
OPENERS = ("if", "range", "with", "define", "block")
errors, parsed, skipped = [], 0, []
for path in sys.argv[1:]:
    text = open(path).read()
    stack = []
    for m in ACTION.finditer(text):
        body = m.group(2).strip()
        line = text.count("\n", 0, m.start()) + 1
        if body.startswith("/*"):
            if not body.endswith("*/"):
                errors.append("%s:%d: unterminated comment action" % (path, line))
            continue
        if body.count("(") != body.count(")"):
            errors.append("%s:%d: unbalanced parentheses in {{%s}}" % (path, line, body))
        if len(re.findall(r'(?<!\\)"', body)) % 2:
            errors.append("%s:%d: unbalanced quotes in {{%s}}" % (path, line, body))
        word = body.split(None, 1)[0] if body else ""
        if word in OPENERS:
            stack.append((word, line))
        elif word == "end":
            if not stack:
                errors.append("%s:%d: end without an opener" % (path, line))
            else:
                stack.pop()
        elif word == "else" and not stack:
            errors.append("%s:%d: else outside a block" % (path, line))
    for word, line in stack:
        errors.append("%s:%d: %s without end" % (path, line, word))
    rest = ACTION.sub("", text)
    for tok in ("{{", "}}"):
        if tok in rest:
            errors.append("%s: stray %s outside an action" % (path, tok))
    # YAML shape: drop lines that hold only actions (control flow, includes/toYaml with nindent),
    # replace inline actions with a placeholder, and parse every document. Both branches of an
    # if/else are kept, so this checks indentation and structure, not a rendering.
    if not path.endswith((".yaml", ".yml")):
        skipped.append(path.rsplit("/", 1)[-1])
        continue
    lines = []
    for ln in text.splitlines():
        if ln.strip() and not ACTION.sub("", ln).strip():
            continue
        lines.append(ACTION.sub("PLACEHOLDER", ln))
    try:
        docs = [d for d in yaml.safe_load_all("\n".join(lines)) if d is not None]
        for d in docs:
            if not (isinstance(d, dict) and "apiVersion" in d and "kind" in d):
                errors.append("%s: a document without apiVersion and kind" % path)
        parsed += 1
    except yaml.YAMLError as e:
        errors.append("%s: YAML with placeholders does not parse: %s" % (path, e))
if errors:
    sys.exit("\n".join(errors))
print("-- %d templates: actions balanced, blocks closed; %d parsed as YAML with placeholders "
      "(not YAML: %s)" % (len(sys.argv) - 1, parsed, ", ".join(skipped) or "none"))
PY

tf_files=(terraform/**/*.tf)
((${#tf_files[@]})) || { echo "no .tf files under terraform/" >&2; exit 1; }
say "terraform: python-hcl2 parse of ${#tf_files[@]} files"
"$py" - "${tf_files[@]}" <<'PY'
import sys, hcl2
for f in sys.argv[1:]:
    with open(f) as fh:
        hcl2.load(fh)
PY

t_checkov=$SECONDS
say "terraform: checkov $(.services/checkov-venv/bin/checkov --version)"
# --skip-download: no Prisma Cloud guideline lookups (these machines have no route to them).
.services/checkov-venv/bin/checkov -d terraform --quiet --compact --framework terraform \
    --skip-download
say "checkov passed ($((SECONDS - t_checkov))s)"

say "deployment artefacts OK (${SECONDS}s)"
