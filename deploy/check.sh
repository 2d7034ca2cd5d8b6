#!/usr/bin/env bash
# Validates everything under deploy/ and the root docker-compose.yml without a container
# engine or a cluster (called from .ci/run; runs on its own too: `bash deploy/check.sh`).
#
#   - docker-compose.yml parses (`docker compose config -q`, or Debian's docker-compose 1.29)
#   - the alert rules pass `promtool check rules`, and their unit tests (alerts.test.yml) pass
#   - the Prometheus configs pass `promtool check config` (the Kubernetes one: YAML only when
#     promtool was built without Kubernetes discovery, as Debian's is)
#   - the Grafana dashboard is valid JSON, every panel uses the datasource variable, and every
#     PromQL expression in it parses
#   - every dealflow_* metric the rules and the dashboard use is listed in metrics-used.txt and
#     every listed name is used (tests/e2e/metrics.rs scrapes a running all-in-one for each)
#   - every YAML file parses; the Kubernetes manifests validate against the Kubernetes schemas
#     (kubernetes-validate, schemas shipped in the PyPI package) when it can be installed
#   - the topics Job embeds deploy/kafka/create-topics.sh verbatim, and the script creates every
#     topic named in shared/src/topics.rs
#   - the compose gateway (deploy/nginx/dealflow.conf) in a real nginx: each route reaches the
#     component it belongs to, and the access log masks webhook tokens
#
# Installs what it needs (apt-get / pip, quiet, idempotent). Exits non-zero on any failure.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPLOY="$ROOT/deploy"
cd "$ROOT" || exit 2
START=$(date +%s)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

passed=0
failed=0
skipped=0
ok() { passed=$((passed + 1)); echo "ok    $*"; }
fail() { failed=$((failed + 1)); echo "FAIL  $*"; }
skip() { skipped=$((skipped + 1)); echo "skip  $*"; }
# Runs a command quietly; on failure prints its output and records the failure.
check() {
  local what=$1
  shift
  if "$@" >"$WORK/out" 2>&1; then ok "$what"; else fail "$what"; sed 's/^/      /' "$WORK/out"; fi
}

export DEBIAN_FRONTEND=noninteractive
APT_UPDATED=
apt_install() {
  command -v apt-get >/dev/null || return 1
  if [ -z "$APT_UPDATED" ]; then apt-get update -qq >/dev/null 2>&1; APT_UPDATED=1; fi
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1
}
pip_install() {
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "$@" >/dev/null 2>&1 \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages "$@" >/dev/null 2>&1
}

# --- tools ------------------------------------------------------------------------------------
if ! python3 -c 'import yaml' 2>/dev/null; then pip_install pyyaml || apt_install python3-yaml; fi
if ! python3 -c 'import yaml' 2>/dev/null; then
  echo "FAIL  PyYAML is not available and could not be installed"; exit 1
fi
if ! command -v promtool >/dev/null; then apt_install prometheus; fi
COMPOSE=()
if docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
else
  command -v docker-compose >/dev/null || apt_install docker-compose
  command -v docker-compose >/dev/null && COMPOSE=(docker-compose)
fi
if ! command -v kubernetes-validate >/dev/null; then pip_install kubernetes-validate; fi

# --- docker-compose ---------------------------------------------------------------------------
if [ ${#COMPOSE[@]} -gt 0 ]; then
  # Validation only: interpolation uses the file's defaults, nothing is started.
  check "docker-compose.yml parses (${COMPOSE[*]} config -q)" \
    env -u DOCKER_HOST "${COMPOSE[@]}" -f docker-compose.yml --project-directory "$ROOT" config -q
else
  skip "docker-compose.yml: neither the compose plugin nor docker-compose could be installed"
fi

# --- Prometheus -------------------------------------------------------------------------------
if command -v promtool >/dev/null; then
  check "promtool check rules deploy/prometheus/alerts.yml" promtool check rules "$DEPLOY/prometheus/alerts.yml"
  check "promtool check config deploy/prometheus/prometheus.yml" \
    promtool check config "$DEPLOY/prometheus/prometheus.yml"
  if promtool check config "$DEPLOY/prometheus/kubernetes.yml" >"$WORK/out" 2>&1; then
    ok "promtool check config deploy/prometheus/kubernetes.yml"
  elif grep -q 'kubernetes_sd_configs not found' "$WORK/out"; then
    skip "promtool check config deploy/prometheus/kubernetes.yml (this promtool has no Kubernetes discovery; parsed as YAML below)"
  else
    fail "promtool check config deploy/prometheus/kubernetes.yml"; sed 's/^/      /' "$WORK/out"
  fi
  # The unit tests pin what fires; a copy without annotations keeps them off the wording.
  mkdir -p "$WORK/rules"
  python3 - "$DEPLOY/prometheus/alerts.yml" "$WORK/rules/alerts.yml" <<'EOF'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
for group in doc["groups"]:
    for rule in group["rules"]:
        rule.pop("annotations", None)
yaml.safe_dump(doc, open(sys.argv[2], "w"))
EOF
  cp "$DEPLOY/prometheus/alerts.test.yml" "$WORK/rules/"
  check "promtool test rules deploy/prometheus/alerts.test.yml" \
    bash -c "cd '$WORK/rules' && promtool test rules alerts.test.yml"
else
  fail "promtool is not available and could not be installed (apt package prometheus)"
fi

# --- Grafana dashboard and the metric list ----------------------------------------------------
DASH="$DEPLOY/grafana/dashboards/dealflow.json"
check "dashboard is valid JSON" python3 -m json.tool "$DASH"
python3 - "$DASH" "$DEPLOY/prometheus/alerts.yml" "$DEPLOY/metrics-used.txt" "$WORK" <<'EOF' >"$WORK/metrics.out" 2>&1
import json, re, sys, yaml
dash_path, rules_path, list_path, work = sys.argv[1:5]
dash = json.load(open(dash_path))
problems = []

exprs = []
def walk(panels):
    for p in panels:
        if p.get("type") == "row":
            walk(p.get("panels", []))
            continue
        ds = p.get("datasource", {})
        if ds.get("uid") != "${datasource}":
            problems.append(f"panel {p.get('title')!r} does not use the ${{datasource}} variable")
        for t in p.get("targets", []):
            exprs.append((p.get("title"), t["expr"]))
walk(dash["panels"])
if not exprs:
    problems.append("the dashboard has no queries")

# Every query as a recording rule, Grafana's variables replaced, for promtool to parse.
subst = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$crm_rps": "8"}
rules = []
for i, (title, expr) in enumerate(exprs):
    for k, v in subst.items():
        expr = expr.replace(k, v)
    if "$" in expr:
        problems.append(f"panel {title!r}: unknown variable in {expr!r}")
    rules.append({"record": f"dashboard:query_{i}", "expr": expr})
yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(f"{work}/dashboard-rules.yml", "w"))

name = re.compile(r"\bdealflow_[a-z0-9_]+")
used = set(name.findall(json.dumps(dash)))
for group in yaml.safe_load(open(rules_path))["groups"]:
    for rule in group["rules"]:
        used |= set(name.findall(rule["expr"]))
listed = [l.strip() for l in open(list_path) if l.strip() and not l.startswith("#")]
for n in sorted(used - set(listed)):
    problems.append(f"{n} is used but not listed in deploy/metrics-used.txt")
for n in sorted(set(listed) - used):
    problems.append(f"{n} is listed in deploy/metrics-used.txt but used by no rule or panel")
if len(listed) != len(set(listed)):
    problems.append("deploy/metrics-used.txt lists a name twice")
print(f"{len(exprs)} dashboard queries, {len(used)} metric names")
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
EOF
if [ $? -eq 0 ]; then
  ok "dashboard queries and alert rules use exactly the metrics in deploy/metrics-used.txt ($(head -1 "$WORK/metrics.out"))"
else
  fail "dashboard / metrics-used.txt"; sed 's/^/      /' "$WORK/metrics.out"
fi
if command -v promtool >/dev/null && [ -f "$WORK/dashboard-rules.yml" ]; then
  check "every dashboard query is valid PromQL" promtool check rules "$WORK/dashboard-rules.yml"
fi

# Informational: listed names that no metric registration in the Rust code defines yet. The
# scrape test (tests/e2e/metrics.rs) enforces existence; this only says early what is missing.
python3 - "$ROOT" "$DEPLOY/metrics-used.txt" <<'EOF'
import pathlib, re, sys
root, list_path = pathlib.Path(sys.argv[1]), sys.argv[2]
registered = set()
call = re.compile(r"(counter|gauge|latency|Opts::new|HistogramOpts::new)\(\s*\"([a-z0-9_]+)\"", re.S)
for crate in ("shared", "ingest", "enricher", "projector", "src"):
    for f in (root / crate).rglob("*.rs"):
        registered |= {m.group(2) for m in call.finditer(f.read_text(errors="ignore"))}
missing = []
for n in (l.strip() for l in open(list_path)):
    if not n:
        continue
    base = re.sub(r"_(bucket|sum|count)$", "", n[len("dealflow_"):])
    if base not in registered and n[len("dealflow_"):] not in registered:
        missing.append(n)
if missing:
    print("note  not registered in the Rust code yet (the scrape test will fail until they are):")
    for n in missing:
        print(f"        {n}")
EOF

# --- YAML everywhere, Kubernetes schemas ------------------------------------------------------
python3 - "$ROOT" <<'EOF' >"$WORK/yaml.out" 2>&1
import pathlib, sys, yaml
root = pathlib.Path(sys.argv[1])
files = [root / "docker-compose.yml"] + sorted(
    p for p in (root / "deploy").rglob("*") if p.suffix in (".yml", ".yaml"))
bad = 0
for f in files:
    try:
        docs = [d for d in yaml.safe_load_all(f.read_text()) if d is not None]
        if not docs:
            raise ValueError("no document")
    except Exception as e:
        bad += 1
        print(f"{f.relative_to(root)}: {e}")
print(f"{len(files)} files")
sys.exit(1 if bad else 0)
EOF
if [ $? -eq 0 ]; then ok "every YAML file parses ($(tail -1 "$WORK/yaml.out"))"; else fail "YAML"; sed 's/^/      /' "$WORK/yaml.out"; fi

K8S="$DEPLOY/k8s"
mapfile -t MANIFESTS < <(python3 - "$K8S" <<'EOF'
import pathlib, sys, yaml
k8s = pathlib.Path(sys.argv[1])
kust = yaml.safe_load((k8s / "kustomization.yaml").read_text())
for r in kust["resources"]:
    print(k8s / r)
print(k8s / "secret.example.yaml")
EOF
)
missing_resources=0
for m in "${MANIFESTS[@]}"; do [ -f "$m" ] || { fail "kustomization resource $m does not exist"; missing_resources=1; }; done
[ $missing_resources = 0 ] && ok "every kustomization resource exists (${#MANIFESTS[@]} manifests)"
if command -v kubernetes-validate >/dev/null; then
  check "Kubernetes manifests validate against the Kubernetes schemas (kubernetes-validate --strict)" \
    kubernetes-validate --strict --quiet --no-warn "${MANIFESTS[@]}"
else
  skip "Kubernetes schema validation: kubernetes-validate could not be installed from PyPI (manifests parsed as YAML only)"
fi
skip "kubeconform / helm lint: not available from the package registries this project uses"

# --- topics -----------------------------------------------------------------------------------
SCRIPT="$DEPLOY/kafka/create-topics.sh"
check "create-topics.sh is valid bash" bash -n "$SCRIPT"
python3 - "$K8S/topics-job.yaml" "$SCRIPT" "$ROOT/shared/src/topics.rs" <<'EOF' >"$WORK/topics.out" 2>&1
import re, sys, yaml
job, script_path, topics_rs = sys.argv[1:4]
script = open(script_path).read()
problems = []
cm = next(d for d in yaml.safe_load_all(open(job)) if d and d["kind"] == "ConfigMap")
if cm["data"]["create-topics.sh"] != script:
    problems.append("deploy/k8s/topics-job.yaml does not embed deploy/kafka/create-topics.sh verbatim")
block = re.search(r"pub mod names \{(.*?)\n\}", open(topics_rs).read(), re.S)
names = re.findall(r'"([a-z0-9.-]+)"', block.group(1)) if block else []
if not names:
    problems.append("no topic names found in shared/src/topics.rs")
created = set(re.findall(r'^\s*"([a-z0-9-]+)\s', script, re.M))
for n in names:
    if n not in created:
        problems.append(f"topic {n!r} (shared/src/topics.rs) is not created by create-topics.sh")
print(f"{len(names)} topics in the code, {len(created)} created")
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
EOF
if [ $? -eq 0 ]; then ok "topics: the Job embeds the script, which creates every topic of the code ($(head -1 "$WORK/topics.out"))"; else fail "topics"; sed 's/^/      /' "$WORK/topics.out"; fi

# --- gateway ----------------------------------------------------------------------------------
# The compose gateway's own file in a real nginx (Debian's nginx-light), with two stub
# upstreams that answer their name: every route reaches the component DESIGN gives it, and the
# access log never holds a webhook token.
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || apt_install nginx-light
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ -x "$NGINX" ]; then
  python3 - "$DEPLOY/nginx/dealflow.conf" "$NGINX" "$WORK" <<'EOF' >"$WORK/gateway.out" 2>&1
import http.server, os, re, socket, subprocess, sys, threading, time, urllib.request, urllib.error
conf_path, nginx, work = sys.argv[1:4]

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def stub(name):
    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self):
            length = int(self.headers.get("content-length") or 0)
            self.rfile.read(length)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(name.encode())
        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = answer
        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]

ingest, projector, port = stub("ingest"), stub("projector"), free_port()
log = os.path.join(work, "access.log")
conf = open(conf_path).read()
conf = conf.replace("server ingest:8080;", f"server 127.0.0.1:{ingest};")
conf = conf.replace("server projector:8080;", f"server 127.0.0.1:{projector};")
conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{port};")
conf = conf.replace("/var/log/nginx/access.log", log)
open(os.path.join(work, "gateway.conf"), "w").write(conf)
main = f"""daemon off; pid {work}/nginx.pid; error_log {work}/error.log;
events {{ }}
http {{
  client_body_temp_path {work}; proxy_temp_path {work}; fastcgi_temp_path {work};
  uwsgi_temp_path {work}; scgi_temp_path {work};
  include {work}/gateway.conf;
}}
"""
open(os.path.join(work, "nginx.conf"), "w").write(main)
test = subprocess.run([nginx, "-t", "-c", os.path.join(work, "nginx.conf"), "-p", work],
                      capture_output=True, text=True)
if test.returncode != 0:
    print("nginx -t refused the gateway config:", test.stderr)
    sys.exit(1)
proc = subprocess.Popen([nginx, "-c", os.path.join(work, "nginx.conf"), "-p", work],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
problems = []
try:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    token = "Zk9sZWFrZWQtd2ViaG9vay10b2tlbi0wMTIzNDU2Nzg5"
    routes = [
        ("POST", f"/hooks/retailcrm/{token}?orderId=7", "ingest"),
        ("GET", f"/hooks/retailcrm/{token}?orderId=8", "ingest"),
        ("POST", "/api/v1/integrations", "ingest"),
        ("PATCH", "/api/v1/integrations/x", "ingest"),
        ("DELETE", "/api/v1/integrations/x", "ingest"),
        ("POST", "/api/v1/integrations/x/resync", "ingest"),
        ("GET", "/api/v1/integrations", "projector"),
        ("GET", "/api/v1/integrations/x/deals.csv", "projector"),
        ("GET", "/api/v1/tenants", "ingest"),
        ("POST", "/api/v1/tenants/t/tokens", "ingest"),
        ("DELETE", "/api/v1/tenants/t/tokens/k", "ingest"),
        ("GET", "/", "projector"),
        ("GET", "/integrations/x/deals", "projector"),
        # The pages' forms post to the pages (the projector sends the change on to ingest).
        ("POST", "/integrations", "projector"),
        ("POST", "/integrations/x/settings", "projector"),
        ("POST", "/login", "projector"),
        ("GET", "/api/openapi.json", "projector"),
    ]
    for method, path, want in routes:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                         data=b"{}" if method in ("POST", "PATCH") else None)
        try:
            got = urllib.request.urlopen(request, timeout=5).read().decode()
        except urllib.error.HTTPError as e:
            got = f"HTTP {e.code}"
        if got != want:
            problems.append(f"{method} {path} reached {got}, not {want}")
    for path in ("/metrics", "/healthz", "/readyz"):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5)
            problems.append(f"{path} is published")
        except urllib.error.HTTPError as e:
            if e.code != 404:
                problems.append(f"{path} answered {e.code}")
    time.sleep(0.3)
    written = open(log).read() if os.path.exists(log) else ""
    if "/hooks/retailcrm/[token]?orderId=7" not in written:
        problems.append("the access log does not show the masked webhook path: " + written[:300])
    if token in written or token[:16] in written:
        problems.append("a webhook token reached the gateway's access log")
finally:
    proc.terminate()
    proc.wait(timeout=10)
print(f"{len(routes)} routes checked, access log {len(written.splitlines())} lines")
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
EOF
  if [ $? -eq 0 ]; then ok "gateway: nginx routes every path to its component, the access log masks webhook tokens ($(head -1 "$WORK/gateway.out"))"; else fail "gateway"; sed 's/^/      /' "$WORK/gateway.out"; fi
else
  fail "gateway: nginx could not be installed (apt-get install nginx-light)"
fi

echo "deploy: $passed passed, $failed failed, $skipped skipped ($(($(date +%s) - START)) s)"
[ "$failed" -eq 0 ]
